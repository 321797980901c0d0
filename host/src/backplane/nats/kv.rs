//! A tenant's plugin key-value store as a JetStream KV bucket, shared by
//! every node: `registerClient` on one node and `notifyClient` on another
//! see the same entries.
//!
//! Keys are base64url (a KV key allows only `[-/_=.a-zA-Z0-9]`, and a `.`
//! or wildcard must not split or widen a key). TTLs are per entry (the
//! `Nats-TTL` header, nats-server 2.11+, bucket created with limit markers);
//! compare-and-set publishes with `Nats-Expected-Last-Subject-Sequence`, the
//! entry's revision, so of two racing writers exactly one wins.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use tokio::sync::OnceCell;

use super::subject::token;
use crate::backplane::kv::KvError;

/// Longest one key-value or stream-info operation may take before it fails.
const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a deletion marker of an expired entry stays (the server's minimum is 1 s).
const MARKER_TTL: Duration = Duration::from_secs(1);

/// Opens the key-value bucket `config.bucket`, creating it with `config` when
/// it is missing. Nodes start together, so a create that loses the race to
/// another node opens the bucket that node made; the create's error is
/// returned only when the bucket cannot be opened either.
pub async fn open_or_create(
    js: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, jetstream::context::CreateKeyValueError> {
    if let Ok(store) = js.get_key_value(&config.bucket).await {
        return Ok(store);
    }
    let bucket = config.bucket.clone();
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        Err(e) => js.get_key_value(&bucket).await.map_err(|_| e),
    }
}

/// A key-value bucket of the cluster, opened on first use (and created then
/// with its config, if no node made it yet).
pub(crate) struct LazyKv {
    js: jetstream::Context,
    config: kv::Config,
    store: OnceCell<kv::Store>,
}

impl std::fmt::Debug for LazyKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyKv")
            .field("bucket", &self.bucket())
            .finish_non_exhaustive()
    }
}

impl LazyKv {
    /// The bucket `config.bucket`, not opened yet.
    pub(crate) fn new(js: jetstream::Context, config: kv::Config) -> LazyKv {
        LazyKv {
            js,
            config,
            store: OnceCell::new(),
        }
    }

    /// The bucket, opened (or created) the first time.
    pub(crate) async fn store(
        &self,
    ) -> Result<&kv::Store, jetstream::context::CreateKeyValueError> {
        self.store
            .get_or_try_init(|| open_or_create(&self.js, self.config.clone()))
            .await
    }

    /// The bucket's name.
    pub(crate) fn bucket(&self) -> &str {
        &self.config.bucket
    }

    /// The JetStream context the bucket is in, for writes the store has no call for.
    pub(crate) fn js(&self) -> &jetstream::Context {
        &self.js
    }

    /// The subject of `key` (a valid KV key), for such writes.
    pub(crate) fn subject(&self, key: &str) -> String {
        format!("$KV.{}.{key}", self.bucket())
    }
}

/// One tenant's bucket; created on first use.
#[derive(Debug)]
pub struct JetStreamKv {
    kv: LazyKv,
}

fn unavailable(e: impl std::fmt::Display) -> KvError {
    KvError::Unavailable(e.to_string())
}

/// An error that can say NATS did not answer within [`OP_TIMEOUT`].
pub(crate) trait TimedOut {
    /// The error of an operation NATS did not answer in time.
    fn timed_out() -> Self;
}

impl TimedOut for KvError {
    fn timed_out() -> KvError {
        unavailable("NATS did not answer in time")
    }
}

/// `op`, failing as [`TimedOut::timed_out`] after [`OP_TIMEOUT`].
pub(crate) async fn bounded<T, E: TimedOut>(
    op: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::time::timeout(OP_TIMEOUT, op)
        .await
        .unwrap_or_else(|_| Err(E::timed_out()))
}

/// The entry under `key` while it holds a value: none when it never did, or
/// holds a delete or purge marker.
pub(crate) async fn live_entry(
    store: &kv::Store,
    key: &str,
) -> Result<Option<kv::Entry>, kv::EntryError> {
    let entry = store.entry(key).await?;
    Ok(entry.filter(|e| e.operation == kv::Operation::Put))
}

/// A TTL as the `Nats-TTL` header: whole seconds, at least one.
fn ttl_header(ttl: Duration) -> String {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    format!("{}s", secs.max(1))
}

impl JetStreamKv {
    /// The store of bucket `bucket`, opened when first used (and created then,
    /// with `replicas` replicas, if no node made it yet).
    pub fn new(js: jetstream::Context, bucket: String, replicas: usize) -> JetStreamKv {
        let config = kv::Config {
            bucket,
            history: 1,
            num_replicas: replicas,
            max_value_size: crate::backplane::kv::MAX_VALUE_LEN as i32,
            limit_markers: Some(MARKER_TTL),
            ..Default::default()
        };
        JetStreamKv {
            kv: LazyKv::new(js, config),
        }
    }

    async fn store(&self) -> Result<&kv::Store, KvError> {
        // Fail fast while NATS is away, rather than hold the plugin call.
        if self.kv.js().client().connection_state() != async_nats::connection::State::Connected {
            return Err(KvError::Unavailable("NATS is disconnected".into()));
        }
        self.kv.store().await.map_err(unavailable)
    }

    fn subject(&self, key: &str) -> String {
        self.kv.subject(&token(key))
    }

    /// The live value and the revision a compare-and-set must expect (0: never written).
    async fn current(&self, key: &str) -> Result<(Option<String>, u64), KvError> {
        let store = self.store().await?;
        match store.entry(token(key)).await.map_err(unavailable)? {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let value = String::from_utf8(entry.value.to_vec())
                    .map_err(|_| KvError::Unavailable("stored value is not UTF-8".into()))?;
                Ok((Some(value), entry.revision))
            }
            Some(entry) => Ok((None, entry.revision)),
            None => Ok((None, 0)),
        }
    }

    /// The live value of `key` (None: absent, deleted or expired).
    pub async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        bounded(async { Ok(self.current(key).await?.0) }).await
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
        expect_revision: Option<u64>,
    ) -> Result<bool, KvError> {
        self.store().await?;
        let mut headers = HeaderMap::new();
        if let Some(ttl) = ttl {
            headers.insert("Nats-TTL", ttl_header(ttl).as_str());
        }
        if let Some(revision) = expect_revision {
            headers.insert(
                "Nats-Expected-Last-Subject-Sequence",
                revision.to_string().as_str(),
            );
        }
        let ack = self
            .kv
            .js()
            .publish_with_headers(
                self.subject(key),
                headers,
                Bytes::copy_from_slice(value.as_bytes()),
            )
            .await
            .map_err(unavailable)?;
        match ack.await {
            Ok(_) => Ok(true),
            // The only refusal a correct request meets is a lost race.
            Err(e)
                if expect_revision.is_some() && e.to_string().contains("wrong last sequence") =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Stores `value` under `key`; `ttl` is rounded up to whole seconds (None: no expiry).
    pub async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), KvError> {
        bounded(async { self.put(key, value, ttl, None).await.map(|_| ()) }).await
    }

    /// Removes `key` (a delete marker in the bucket).
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        bounded(async {
            let store = self.store().await?;
            store.delete(token(key)).await.map_err(unavailable)
        })
        .await
    }

    /// Sets `key` to `value` only if it holds `expected` (None: absent); false when
    /// it does not, or when another writer got in between.
    pub async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, KvError> {
        bounded(async {
            let (current, revision) = self.current(key).await?;
            if current.as_deref() != expected {
                return Ok(false);
            }
            self.put(key, value, ttl, Some(revision)).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_header(Duration::from_millis(1)), "1s");
        assert_eq!(ttl_header(Duration::from_millis(1500)), "2s");
        assert_eq!(ttl_header(Duration::from_secs(86_400)), "86400s");
        assert_eq!(ttl_header(Duration::ZERO), "1s");
    }
}
