//! Tenants of the admin API, cluster-wide: a JetStream KV bucket
//! (`{prefix}_tenants`, history 1) holds each one under its name, as the
//! JSON of its [`TenantConfig`] with its keys and limits, rewritten after
//! every change.
//!
//! The admin API writes an entry (creation, key rotation; a key change is a
//! compare-and-set on the entry's revision, so two rotations through two
//! nodes never lose one) and applies it on its own node at once; every node
//! watches the bucket and applies the others' (`node::cluster_tenants`). A deletion is a
//! KV delete marker whose body is the reason, so every node closes the
//! tenant's connections with it. A node that starts later loads every entry
//! before it serves.
//!
//! Tenants of a node's config file are that node's: they are never written
//! here, and an entry of the same name leaves them as they are.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use tracing::{info, warn};

use crate::address::is_valid_name;
use crate::backplane::nats::kv::{LazyKv, TimedOut, bounded, live_entry};
use crate::config::TenantConfig;

/// How long a node waits at start for the cluster's tenants.
pub const START_SYNC_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest entry, in bytes (a tenant's settings are a few hundred).
const MAX_ENTRY: i32 = 256 << 10;

/// Why the cluster's tenant store (a JetStream key-value bucket) refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum TenantStoreError {
    /// NATS did not answer in time, or the bucket could not be read or written.
    #[error("the cluster's tenant store is unavailable: {0}")]
    Unavailable(String),
    /// A create found the tenant's entry already there.
    #[error("tenant '{0}' already exists in the cluster")]
    Exists(String),
    /// An update found the entry at another revision than it read: another node changed it
    /// meanwhile.
    #[error("tenant '{0}' was changed through another node at the same time; retry")]
    Conflict(String),
    /// An entry's key is not a tenant name, or its value is not a tenant's settings.
    #[error("the stored tenant '{name}' is not valid: {reason}")]
    BadEntry {
        /// The entry's key.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn unavailable(e: impl std::fmt::Display) -> TenantStoreError {
    TenantStoreError::Unavailable(e.to_string())
}

impl TimedOut for TenantStoreError {
    fn timed_out() -> TenantStoreError {
        unavailable("NATS did not answer in time")
    }
}

/// A change of the store, as a node applies it.
#[derive(Debug)]
pub enum Change {
    /// The tenant was created or changed.
    Put {
        /// The tenant's name (the entry's key).
        name: String,
        /// Its settings, keys included.
        config: Box<TenantConfig>,
        /// The entry's revision in the bucket.
        revision: u64,
    },
    /// The tenant was deleted.
    Delete {
        /// The tenant's name (the entry's key).
        name: String,
        /// What its connections are closed with: the text stored with the delete, else
        /// "tenant 'NAME' was deleted".
        reason: String,
        /// The delete's revision in the bucket.
        revision: u64,
    },
}

impl Change {
    /// The change an entry of the bucket (or of its watch) is.
    pub fn from_entry(entry: &kv::Entry) -> Result<Change, TenantStoreError> {
        let name = entry.key.clone();
        if !is_valid_name(&name) {
            return Err(TenantStoreError::BadEntry {
                name,
                reason: "not a tenant name".into(),
            });
        }
        match entry.operation {
            kv::Operation::Put => {
                let config = Box::new(decode(&name, &entry.value)?);
                Ok(Change::Put {
                    name,
                    config,
                    revision: entry.revision,
                })
            }
            kv::Operation::Delete | kv::Operation::Purge => {
                let reason = std::str::from_utf8(&entry.value)
                    .ok()
                    .filter(|r| !r.is_empty())
                    .map_or_else(|| deleted_reason(&name), str::to_owned);
                Ok(Change::Delete {
                    name,
                    reason,
                    revision: entry.revision,
                })
            }
        }
    }
}

/// The reason a deleted tenant's connections are closed with, when none is given.
pub fn deleted_reason(name: &str) -> String {
    format!("tenant '{name}' was deleted")
}

fn decode(name: &str, value: &[u8]) -> Result<TenantConfig, TenantStoreError> {
    serde_json::from_slice(value).map_err(|e| TenantStoreError::BadEntry {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

fn encode(config: &TenantConfig) -> Result<Bytes, TenantStoreError> {
    serde_json::to_vec(config)
        .map(Bytes::from)
        .map_err(|e| unavailable(format!("cannot encode the tenant: {e}")))
}

/// The cluster's tenant bucket, created on first use.
#[derive(Debug)]
pub struct TenantStore {
    kv: LazyKv,
}

impl TenantStore {
    /// The store in bucket `{prefix}_tenants`, created on first use with `replicas` (at least 1).
    pub fn new(client: async_nats::Client, prefix: &str, replicas: usize) -> TenantStore {
        let config = kv::Config {
            bucket: bucket_name(prefix),
            description: "Switchboard tenants of the admin API".into(),
            history: 1,
            num_replicas: replicas.max(1),
            max_value_size: MAX_ENTRY,
            ..Default::default()
        };
        TenantStore {
            kv: LazyKv::new(jetstream::new(client), config),
        }
    }

    async fn bucket(&self) -> Result<&kv::Store, TenantStoreError> {
        bounded(async { self.kv.store().await.map_err(unavailable) }).await
    }

    /// Adds a tenant; fails if the cluster has one of that name. Returns the entry's revision.
    pub async fn create(&self, name: &str, config: &TenantConfig) -> Result<u64, TenantStoreError> {
        let value = encode(config)?;
        bounded(async {
            let bucket = self.bucket().await?;
            bucket
                .create(name, value)
                .await
                .map_err(|e| match e.kind() {
                    kv::CreateErrorKind::AlreadyExists => TenantStoreError::Exists(name.to_owned()),
                    _ => unavailable(e),
                })
        })
        .await
    }

    /// Replaces a tenant's entry if it is still at `revision` (0: absent).
    /// Returns the new revision.
    pub async fn update(
        &self,
        name: &str,
        config: &TenantConfig,
        revision: u64,
    ) -> Result<u64, TenantStoreError> {
        let value = encode(config)?;
        bounded(async {
            let bucket = self.bucket().await?;
            bucket
                .update(name, value, revision)
                .await
                .map_err(|e| match e.kind() {
                    kv::UpdateErrorKind::WrongLastRevision => {
                        TenantStoreError::Conflict(name.to_owned())
                    }
                    _ => unavailable(e),
                })
        })
        .await
    }

    /// A tenant's settings and the revision of its entry; none if it has no live entry.
    pub async fn get(&self, name: &str) -> Result<Option<(TenantConfig, u64)>, TenantStoreError> {
        bounded(async {
            let bucket = self.bucket().await?;
            match live_entry(bucket, name).await.map_err(unavailable)? {
                Some(entry) => Ok(Some((decode(name, &entry.value)?, entry.revision))),
                None => Ok(None),
            }
        })
        .await
    }

    /// Deletes a tenant everywhere: a delete marker with `reason` as its body.
    pub async fn delete(&self, name: &str, reason: &str) -> Result<u64, TenantStoreError> {
        bounded(async {
            self.bucket().await?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("KV-Operation", "DEL");
            let ack = self
                .kv
                .js()
                .publish_with_headers(
                    self.kv.subject(name),
                    headers,
                    Bytes::from(reason.to_owned()),
                )
                .await
                .map_err(unavailable)?
                .await
                .map_err(unavailable)?;
            Ok(ack.sequence)
        })
        .await
    }

    /// Every tenant with a live entry.
    pub async fn all(&self) -> Result<Vec<Change>, TenantStoreError> {
        let bucket = self.bucket().await?;
        let names: Vec<String> = bounded(async {
            let keys = bucket.keys().await.map_err(unavailable)?;
            keys.collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .map_err(unavailable)
        })
        .await?;
        let mut changes = Vec::with_capacity(names.len());
        for name in names {
            let entry = bounded(async { bucket.entry(&name).await.map_err(unavailable) }).await?;
            match entry.as_ref().map(Change::from_entry) {
                Some(Ok(change)) => changes.push(change),
                Some(Err(e)) => warn!(error = %e, "skipping a stored tenant"),
                None => {}
            }
        }
        Ok(changes)
    }
}

/// The bucket's name for a cluster's `prefix`.
pub fn bucket_name(prefix: &str) -> String {
    format!("{prefix}_tenants")
}

/// Watches the bucket and hands each change to `apply` until the watch ends
/// or fails (`node::watch` starts it again), or `apply` returns false (the
/// node is gone).
pub async fn watch_once<F, Fut>(store: &TenantStore, mut apply: F) -> Result<(), TenantStoreError>
where
    F: FnMut(Change) -> Fut,
    Fut: Future<Output = bool>,
{
    // The last entry of every tenant first, then every change: a watch
    // restarted after an outage catches up (entries already applied are
    // older than or equal to the tenants' revisions, and change nothing).
    let mut watch = store
        .bucket()
        .await?
        .watch_all()
        .await
        .map_err(unavailable)?;
    info!(bucket = %store.kv.bucket(), "watching the cluster's tenants");
    while let Some(entry) = watch.next().await {
        let entry = entry.map_err(unavailable)?;
        let change = match Change::from_entry(&entry) {
            Ok(change) => change,
            Err(e) => {
                warn!(error = %e, "skipping a stored tenant");
                continue;
            }
        };
        if !apply(change).await {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str, operation: kv::Operation) -> kv::Entry {
        kv::Entry {
            bucket: bucket_name("sb"),
            key: key.into(),
            value: Bytes::from(value.to_owned()),
            revision: 7,
            delta: 0,
            created: time::OffsetDateTime::UNIX_EPOCH,
            operation,
            seen_current: true,
        }
    }

    #[test]
    fn entries_become_changes() {
        assert_eq!(bucket_name("sb"), "sb_tenants");
        let config = r#"{"signing_keys":["k"],"limits":{"connections":3}}"#;
        match Change::from_entry(&entry("acme", config, kv::Operation::Put)) {
            Ok(Change::Put {
                name,
                config,
                revision,
            }) => {
                assert_eq!((name.as_str(), revision), ("acme", 7));
                assert_eq!(config.signing_keys, ["k"]);
                assert_eq!(config.limits.connections, 3);
            }
            other => panic!("{other:?}"),
        }
        match Change::from_entry(&entry("acme", "moved away", kv::Operation::Delete)) {
            Ok(Change::Delete { reason, .. }) => assert_eq!(reason, "moved away"),
            other => panic!("{other:?}"),
        }
        match Change::from_entry(&entry("acme", "", kv::Operation::Delete)) {
            Ok(Change::Delete { reason, .. }) => assert_eq!(reason, deleted_reason("acme")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Change::from_entry(&entry("acme", "{", kv::Operation::Put)),
            Err(TenantStoreError::BadEntry { .. })
        ));
        assert!(matches!(
            Change::from_entry(&entry("Not.A.Name", config, kv::Operation::Put)),
            Err(TenantStoreError::BadEntry { .. })
        ));
    }

    #[test]
    fn a_config_round_trips_through_json() {
        let mut config =
            crate::config::Config::builtin().tenants[crate::config::DEMO_TENANT].clone();
        config.limits.connections = 5;
        let back = decode("demo", &encode(&config).expect("encode")).expect("decode");
        assert_eq!(back.signing_keys, config.signing_keys);
        assert_eq!(back.api_keys, config.api_keys);
        assert_eq!(back.limits, config.limits);
        assert_eq!(back.allow_anonymous, config.allow_anonymous);
    }
}
