//! The tenant's key-value store that plugins use (`kv` in the WIT contract).
//!
//! One node keeps it in memory; a cluster keeps it in a JetStream KV bucket
//! per tenant. Both offer the same operations: get, set with an optional TTL,
//! delete, and compare-and-set.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::nats::kv::JetStreamKv;

/// Longest key a plugin may use, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Largest value a plugin may store, in bytes.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;
/// Most keys one tenant's in-memory store holds.
pub const MEMORY_MAX_KEYS: usize = 1_000_000;
/// Most bytes of keys and values one tenant's in-memory store holds: the
/// key count alone would let a plugin keep a terabyte of 1 MiB values in
/// the node's memory. (A cluster's buckets are on JetStream's disk, under
/// the limits the NATS servers set.)
pub const MEMORY_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Why a key-value operation failed; the plugin gets the message as its error.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KvError {
    /// The key is empty or longer than [`MAX_KEY_LEN`].
    #[error("key must be 1 to {MAX_KEY_LEN} bytes")]
    BadKey,
    /// The value is longer than [`MAX_VALUE_LEN`].
    #[error("value is larger than {MAX_VALUE_LEN} bytes")]
    ValueTooLarge,
    /// A write that an in-memory store has no room for, its expired entries
    /// swept: a new key past its key limit, or bytes past its byte limit.
    #[error(
        "the tenant's key-value store is full: it holds at most {max_keys} keys and {max_bytes} bytes of keys and values"
    )]
    Full {
        /// The store's key limit.
        max_keys: usize,
        /// The store's limit on the bytes of its keys and values.
        max_bytes: usize,
    },
    /// NATS is disconnected, did not answer within 5 s, or refused the operation.
    #[error("the cluster's key-value store is unavailable: {0}")]
    Unavailable(String),
}

/// A tenant's key-value store.
#[derive(Debug)]
pub enum KvStore {
    /// This node's own store, for a node without a cluster.
    Memory(MemoryKv),
    /// The tenant's JetStream KV bucket, shared by the cluster.
    JetStream(Box<JetStreamKv>),
}

impl KvStore {
    /// A fresh in-memory store of at most [`MEMORY_MAX_KEYS`] keys and
    /// [`MEMORY_MAX_BYTES`] bytes.
    pub fn memory() -> KvStore {
        KvStore::Memory(MemoryKv::new(MEMORY_MAX_KEYS, MEMORY_MAX_BYTES))
    }

    /// The cluster's store: a JetStream KV bucket.
    pub fn jetstream(kv: JetStreamKv) -> KvStore {
        KvStore::JetStream(Box::new(kv))
    }

    /// The live value of `key` (None: absent or expired).
    pub async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        check_key(key)?;
        match self {
            KvStore::Memory(m) => Ok(m.get(key, Instant::now())),
            KvStore::JetStream(j) => j.get(key).await,
        }
    }

    /// Stores `value` under `key`, expiring after `ttl` (None: kept until deleted).
    pub async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), KvError> {
        check_entry(key, value)?;
        match self {
            KvStore::Memory(m) => m.set(key, value, ttl, Instant::now()),
            KvStore::JetStream(j) => j.set(key, value, ttl).await,
        }
    }

    /// Removes `key`; removing an absent key succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        check_key(key)?;
        match self {
            KvStore::Memory(m) => {
                m.delete(key);
                Ok(())
            }
            KvStore::JetStream(j) => j.delete(key).await,
        }
    }

    /// Sets `key` to `value` only if it currently holds `expected` (none: absent).
    pub async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, KvError> {
        check_entry(key, value)?;
        match self {
            KvStore::Memory(m) => m.compare_and_set(key, expected, value, ttl, Instant::now()),
            KvStore::JetStream(j) => j.compare_and_set(key, expected, value, ttl).await,
        }
    }
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(KvError::BadKey);
    }
    Ok(())
}

fn check_entry(key: &str, value: &str) -> Result<(), KvError> {
    check_key(key)?;
    if value.len() > MAX_VALUE_LEN {
        return Err(KvError::ValueTooLarge);
    }
    Ok(())
}

#[derive(Debug)]
struct Entry {
    value: String,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

/// The entries of a store and the bytes of their keys and values.
#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, Entry>,
    bytes: usize,
}

impl Entries {
    /// The bytes `key`'s entry takes (0: none).
    fn size_of(&self, key: &str) -> usize {
        self.map.get(key).map_or(0, |e| key.len() + e.value.len())
    }

    fn insert(&mut self, key: &str, entry: Entry) {
        self.bytes = self.bytes - self.size_of(key) + key.len() + entry.value.len();
        self.map.insert(key.to_owned(), entry);
    }

    fn remove(&mut self, key: &str) {
        self.bytes -= self.size_of(key);
        self.map.remove(key);
    }

    fn sweep(&mut self, now: Instant) {
        self.map.retain(|_, e| e.live(now));
        self.bytes = self.map.iter().map(|(k, e)| k.len() + e.value.len()).sum();
    }
}

/// The in-memory store. Expired entries are dropped when read, and swept when
/// the map grows, so a store of TTL'd keys does not grow without bound.
#[derive(Debug)]
pub struct MemoryKv {
    entries: Mutex<Entries>,
    max_keys: usize,
    max_bytes: usize,
}

impl MemoryKv {
    /// An empty store that takes at most `max_keys` live keys and
    /// `max_bytes` bytes of keys and values.
    pub fn new(max_keys: usize, max_bytes: usize) -> MemoryKv {
        MemoryKv {
            entries: Mutex::new(Entries::default()),
            max_keys,
            max_bytes,
        }
    }

    fn get(&self, key: &str, now: Instant) -> Option<String> {
        let mut entries = self.entries.lock();
        match entries.map.get(key) {
            Some(e) if e.live(now) => Some(e.value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn set(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<(), KvError> {
        self.put(&mut self.entries.lock(), key, value, ttl, now)
    }

    /// Stores `value` under `key` in `entries` (locked), room permitting.
    fn put(
        &self,
        entries: &mut Entries,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<(), KvError> {
        self.make_room(entries, key, value.len(), now)?;
        entries.insert(
            key,
            Entry {
                value: value.to_owned(),
                expires: ttl.map(|t| now + t),
            },
        );
        Ok(())
    }

    fn delete(&self, key: &str) {
        self.entries.lock().remove(key);
    }

    fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<bool, KvError> {
        let mut entries = self.entries.lock();
        let current = entries
            .map
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.as_str());
        if current != expected {
            return Ok(false);
        }
        self.put(&mut entries, key, value, ttl, now)?;
        Ok(true)
    }

    /// Before writing `value_len` bytes under `key` into a full store, drop
    /// expired entries; if it is still full, refuse.
    fn make_room(
        &self,
        entries: &mut Entries,
        key: &str,
        value_len: usize,
        now: Instant,
    ) -> Result<(), KvError> {
        let fits = |entries: &Entries| {
            let keys_fit = entries.map.len() < self.max_keys || entries.map.contains_key(key);
            let bytes = entries.bytes - entries.size_of(key) + key.len() + value_len;
            keys_fit && bytes <= self.max_bytes
        };
        if fits(entries) {
            return Ok(());
        }
        entries.sweep(now);
        if fits(entries) {
            Ok(())
        } else {
            Err(KvError::Full {
                max_keys: self.max_keys,
                max_bytes: self.max_bytes,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_expires_entries() {
        let kv = MemoryKv::new(10, MEMORY_MAX_BYTES);
        let t0 = Instant::now();
        kv.set("a", "1", Some(Duration::from_secs(10)), t0)
            .expect("set");
        assert_eq!(kv.get("a", t0 + Duration::from_secs(9)), Some("1".into()));
        assert_eq!(kv.get("a", t0 + Duration::from_secs(10)), None);
    }

    #[test]
    fn compare_and_set_semantics() {
        let kv = MemoryKv::new(10, MEMORY_MAX_BYTES);
        let t = Instant::now();
        // In order: what the caller expects, the new value, whether it was set.
        for (expected, value, set) in [
            (None, "v1", true),
            (None, "v2", false),
            (Some("x"), "v2", false),
            (Some("v1"), "v2", true),
        ] {
            let result = kv.compare_and_set("k", expected, value, None, t);
            assert_eq!(result, Ok(set), "expecting {expected:?}, set {value}");
        }
        assert_eq!(kv.get("k", t), Some("v2".into()));
        // An expired entry counts as absent.
        kv.set("e", "old", Some(Duration::from_secs(1)), t)
            .expect("set");
        assert!(
            kv.compare_and_set("e", None, "new", None, t + Duration::from_secs(2))
                .expect("cas")
        );
    }

    #[test]
    fn full_store_sweeps_expired_then_refuses() {
        let kv = MemoryKv::new(2, MEMORY_MAX_BYTES);
        let t = Instant::now();
        kv.set("a", "1", Some(Duration::from_secs(1)), t)
            .expect("a");
        kv.set("b", "1", None, t).expect("b");
        assert_eq!(
            kv.set("c", "1", None, t),
            Err(KvError::Full {
                max_keys: 2,
                max_bytes: MEMORY_MAX_BYTES
            })
        );
        // Replacing an existing key is always fine.
        kv.set("b", "2", None, t).expect("replace");
        // Once `a` expired there is room again.
        kv.set("c", "1", None, t + Duration::from_secs(2))
            .expect("c after sweep");
    }

    #[test]
    fn the_bytes_of_keys_and_values_are_bounded_too() {
        let kv = MemoryKv::new(100, 20);
        let t = Instant::now();
        let full = || KvError::Full {
            max_keys: 100,
            max_bytes: 20,
        };
        kv.set("a", &"x".repeat(9), None, t).expect("10 bytes");
        assert_eq!(
            kv.set("b", &"x".repeat(10), None, t),
            Err(full()),
            "21 bytes"
        );
        kv.set("b", &"x".repeat(9), None, t).expect("20 bytes");
        // A replaced value counts once, at its new size.
        kv.set("a", &"x".repeat(4), None, t).expect("15 bytes");
        assert_eq!(
            kv.set("a", &"x".repeat(15), None, t),
            Err(full()),
            "26 bytes"
        );
        assert_eq!(
            kv.compare_and_set("c", None, &"x".repeat(5), None, t),
            Err(full()),
            "21 bytes"
        );
        kv.delete("b");
        kv.set("c", &"x".repeat(9), Some(Duration::from_secs(1)), t)
            .expect("15 bytes");
        // Expired entries are swept to make room.
        kv.set("d", &"x".repeat(14), None, t + Duration::from_secs(2))
            .expect("after the sweep: 20 bytes");
        assert_eq!(kv.entries.lock().bytes, 20);
    }

    #[tokio::test]
    async fn validates_keys_and_values() {
        let kv = KvStore::memory();
        assert_eq!(kv.get("").await, Err(KvError::BadKey));
        assert_eq!(
            kv.set(&"k".repeat(MAX_KEY_LEN + 1), "v", None).await,
            Err(KvError::BadKey)
        );
        assert_eq!(
            kv.set("k", &"v".repeat(MAX_VALUE_LEN + 1), None).await,
            Err(KvError::ValueTooLarge)
        );
    }
}
