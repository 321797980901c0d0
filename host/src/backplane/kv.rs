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

/// Why a key-value operation failed; the plugin gets the message as its error.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KvError {
    /// The key is empty or longer than [`MAX_KEY_LEN`].
    #[error("key must be 1 to {MAX_KEY_LEN} bytes")]
    BadKey,
    /// The value is longer than [`MAX_VALUE_LEN`].
    #[error("value is larger than {MAX_VALUE_LEN} bytes")]
    ValueTooLarge,
    /// A new key for an in-memory store that holds its limit of live keys (the limit).
    #[error("too many keys: the tenant's store holds at most {0}")]
    Full(usize),
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
    /// A fresh in-memory store of at most a million keys.
    pub fn memory() -> KvStore {
        KvStore::Memory(MemoryKv::new(1_000_000))
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

/// The in-memory store. Expired entries are dropped when read, and swept when
/// the map grows, so a store of TTL'd keys does not grow without bound.
#[derive(Debug)]
pub struct MemoryKv {
    entries: Mutex<HashMap<String, Entry>>,
    max_entries: usize,
}

impl MemoryKv {
    /// An empty store that takes at most `max_entries` live keys.
    pub fn new(max_entries: usize) -> MemoryKv {
        MemoryKv {
            entries: Mutex::new(HashMap::new()),
            max_entries,
        }
    }

    fn get(&self, key: &str, now: Instant) -> Option<String> {
        let mut entries = self.entries.lock();
        match entries.get(key) {
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
        entries: &mut HashMap<String, Entry>,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<(), KvError> {
        self.make_room(entries, key, now)?;
        entries.insert(
            key.to_owned(),
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
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.as_str());
        if current != expected {
            return Ok(false);
        }
        self.put(&mut entries, key, value, ttl, now)?;
        Ok(true)
    }

    /// Before inserting a new key into a full map, drop expired entries; if it
    /// is still full, refuse.
    fn make_room(
        &self,
        entries: &mut HashMap<String, Entry>,
        key: &str,
        now: Instant,
    ) -> Result<(), KvError> {
        if entries.len() < self.max_entries || entries.contains_key(key) {
            return Ok(());
        }
        entries.retain(|_, e| e.live(now));
        if entries.len() >= self.max_entries {
            return Err(KvError::Full(self.max_entries));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_expires_entries() {
        let kv = MemoryKv::new(10);
        let t0 = Instant::now();
        kv.set("a", "1", Some(Duration::from_secs(10)), t0)
            .expect("set");
        assert_eq!(kv.get("a", t0 + Duration::from_secs(9)), Some("1".into()));
        assert_eq!(kv.get("a", t0 + Duration::from_secs(10)), None);
    }

    #[test]
    fn compare_and_set_semantics() {
        let kv = MemoryKv::new(10);
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
        let kv = MemoryKv::new(2);
        let t = Instant::now();
        kv.set("a", "1", Some(Duration::from_secs(1)), t)
            .expect("a");
        kv.set("b", "1", None, t).expect("b");
        assert_eq!(kv.set("c", "1", None, t), Err(KvError::Full(2)));
        // Replacing an existing key is always fine.
        kv.set("b", "2", None, t).expect("replace");
        // Once `a` expired there is room again.
        kv.set("c", "1", None, t + Duration::from_secs(2))
            .expect("c after sweep");
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
