//! The cluster's plugin store: a JetStream object store bucket
//! (`{prefix}_plugins`) that holds, per hub, the deployed `.wasm` files
//! (`{tenant}/{hub}/{sha256}.wasm`) and the hub's version history
//! (`{tenant}/{hub}/manifest.json`, a [`HubVersions`]).
//!
//! A deploy or rollback through any node writes the manifest; every node
//! watches the bucket and brings its hub to the manifest's current version
//! ([`registry::apply_manifest`]). A node that starts later reads every
//! manifest before it serves ([`sync_all`]).
//!
//! Two deploys of the same hub through two nodes at the same moment both
//! land, but the history of the later one wins (the object store has no
//! compare-and-set); every node still converges on one version.

use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use super::registry::{self, Plugins, sha256_hex};
use super::versions::HubVersions;
use crate::address::HubKey;
use crate::address::is_valid_name;

/// Largest manifest read back, in bytes (a manifest lists at most 1000 versions).
const MAX_MANIFEST: usize = 1 << 20;
/// How long a node waits at start for the cluster's plugin versions.
pub const START_SYNC_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the cluster's plugin store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// NATS refused the operation or could not be reached (its error text).
    #[error("{0}")]
    Nats(String),
    /// A stored `.wasm` file's bytes do not hash to the SHA-256 in its name.
    #[error("the stored plugin {name} does not match its SHA-256")]
    Corrupt {
        /// The object's name, `{tenant}/{hub}/{sha256}.wasm`.
        name: String,
    },
    /// A stored manifest is not a valid version history.
    #[error("the stored manifest {name} is not valid: {reason}")]
    BadManifest {
        /// The object's name, `{tenant}/{hub}/manifest.json`.
        name: String,
        /// Why it does not parse as a [`HubVersions`].
        reason: String,
    },
}

fn nats(e: impl std::fmt::Display) -> StoreError {
    StoreError::Nats(e.to_string())
}

/// The object name of a hub's manifest.
pub fn manifest_name(hub: &HubKey) -> String {
    format!("{}/{}/manifest.json", hub.tenant, hub.hub)
}

/// The object name of one version's bytes.
pub fn wasm_name(hub: &HubKey, sha256: &str) -> String {
    format!("{}/{}/{sha256}.wasm", hub.tenant, hub.hub)
}

/// The hub whose manifest `name` is, if it is one.
pub fn hub_of_manifest(name: &str) -> Option<HubKey> {
    let mut parts = name.split('/');
    let (tenant, hub, file) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none()
        && file == "manifest.json"
        && is_valid_name(tenant)
        && is_valid_name(hub))
    .then(|| HubKey::new(tenant, hub))
}

/// The cluster's plugin bucket, created on first use.
pub struct PluginStore {
    js: jetstream::Context,
    bucket: String,
    replicas: usize,
    store: OnceCell<object_store::ObjectStore>,
}

debug_fields!(PluginStore { bucket });

impl PluginStore {
    /// The store of bucket `{prefix}_plugins`, opened when first used (and
    /// created then, with `replicas` replicas, at least one, if no node made it yet).
    pub fn new(client: async_nats::Client, prefix: &str, replicas: usize) -> PluginStore {
        PluginStore {
            js: jetstream::new(client),
            bucket: format!("{prefix}_plugins"),
            replicas: replicas.max(1),
            store: OnceCell::new(),
        }
    }

    async fn bucket(&self) -> Result<&object_store::ObjectStore, StoreError> {
        self.store
            .get_or_try_init(|| async {
                if let Ok(store) = self.js.get_object_store(&self.bucket).await {
                    return Ok(store);
                }
                match self
                    .js
                    .create_object_store(object_store::Config {
                        bucket: self.bucket.clone(),
                        description: Some("Switchboard plugin versions".into()),
                        num_replicas: self.replicas,
                        ..Default::default()
                    })
                    .await
                {
                    Ok(store) => Ok(store),
                    // Another node created it first.
                    Err(e) => self
                        .js
                        .get_object_store(&self.bucket)
                        .await
                        .map_err(|_| nats(e)),
                }
            })
            .await
    }

    /// Stores one version's bytes under its SHA-256, unless they are stored already.
    pub async fn put_wasm(
        &self,
        hub: &HubKey,
        sha256: &str,
        wasm: &[u8],
    ) -> Result<(), StoreError> {
        let bucket = self.bucket().await?;
        let name = wasm_name(hub, sha256);
        if bucket.info(&name).await.is_ok_and(|i| !i.deleted) {
            return Ok(());
        }
        let mut reader = wasm;
        bucket.put(name.as_str(), &mut reader).await.map_err(nats)?;
        Ok(())
    }

    /// One version's bytes, checked against its SHA-256.
    pub async fn get_wasm(&self, hub: &HubKey, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let name = wasm_name(hub, sha256);
        // Never more than a deploy may hold: a larger object is cut at the
        // bound and then fails its digest, instead of filling the node's memory.
        let bytes = self.read(&name, super::MAX_PLUGIN_BYTES + 1).await?;
        if sha256_hex(&bytes) != sha256 {
            return Err(StoreError::Corrupt { name });
        }
        Ok(bytes)
    }

    /// Deletes one version's bytes (a version the history dropped).
    pub async fn delete_wasm(&self, hub: &HubKey, sha256: &str) -> Result<(), StoreError> {
        self.bucket()
            .await?
            .delete(wasm_name(hub, sha256))
            .await
            .map_err(nats)
    }

    /// Writes `hub`'s version history; every node watching the bucket then brings
    /// the hub to its current version.
    pub async fn put_manifest(
        &self,
        hub: &HubKey,
        versions: &HubVersions,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_vec(versions).map_err(nats)?;
        let mut reader = text.as_slice();
        self.bucket()
            .await?
            .put(manifest_name(hub).as_str(), &mut reader)
            .await
            .map_err(nats)?;
        Ok(())
    }

    /// The hub's history in the cluster; none if it was never deployed there.
    pub async fn get_manifest(&self, hub: &HubKey) -> Result<Option<HubVersions>, StoreError> {
        let name = manifest_name(hub);
        let bucket = self.bucket().await?;
        match bucket.info(&name).await {
            Ok(info) if !info.deleted => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(nats(e)),
        }
        let bytes = self.read(&name, MAX_MANIFEST).await?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::BadManifest {
                name,
                reason: e.to_string(),
            })
    }

    async fn read(&self, name: &str, limit: usize) -> Result<Vec<u8>, StoreError> {
        let object = self.bucket().await?.get(name).await.map_err(nats)?;
        let mut bytes = Vec::new();
        object
            .take(limit as u64)
            .read_to_end(&mut bytes)
            .await
            .map_err(nats)?;
        Ok(bytes)
    }

    /// Every hub with a manifest in the cluster.
    pub async fn manifests(&self) -> Result<Vec<HubKey>, StoreError> {
        let mut list = self.bucket().await?.list().await.map_err(nats)?;
        let mut hubs = Vec::new();
        while let Some(info) = list.next().await {
            let info = info.map_err(nats)?;
            if let Some(hub) = hub_of_manifest(&info.name) {
                hubs.push(hub);
            }
        }
        Ok(hubs)
    }
}

/// Brings every hub of `tenant` (or of all tenants) on this node to the
/// cluster's current versions.
pub async fn sync_all(plugins: Plugins<'_>, tenant: Option<&str>) -> Result<usize, StoreError> {
    let Some(store) = plugins.registry.store().cloned() else {
        return Ok(0);
    };
    let mut applied = 0;
    for hub in store.manifests().await? {
        if tenant.is_some_and(|t| t != &*hub.tenant) {
            continue;
        }
        match store.get_manifest(&hub).await {
            Ok(Some(manifest)) => {
                registry::apply_manifest(plugins, hub, manifest).await;
                applied += 1;
            }
            Ok(None) => {}
            Err(e) => warn!(hub = %hub, error = %e, "cannot read a plugin manifest"),
        }
    }
    Ok(applied)
}

/// Watches the bucket for changed manifests and hands each to `apply` until
/// the watch ends or fails (`node::watch` starts it again), or `apply`
/// returns false (the node is gone).
pub async fn watch_once<F, Fut>(store: &PluginStore, mut apply: F) -> Result<(), StoreError>
where
    F: FnMut(HubKey, HubVersions) -> Fut,
    Fut: Future<Output = bool>,
{
    // With history: a watch restarted after an outage catches up on what
    // changed meanwhile (applying a manifest already applied does nothing).
    let mut watch = store
        .bucket()
        .await?
        .watch_with_history()
        .await
        .map_err(nats)?;
    info!(bucket = %store.bucket, "watching the cluster's plugin store");
    while let Some(event) = watch.next().await {
        let info = event.map_err(nats)?;
        let Some(hub) = hub_of_manifest(&info.name) else {
            continue;
        };
        if info.deleted {
            continue;
        }
        match store.get_manifest(&hub).await {
            Ok(Some(manifest)) => {
                if !apply(hub, manifest).await {
                    return Ok(());
                }
            }
            Ok(None) => {}
            Err(e) => warn!(hub = %hub, error = %e, "cannot read a plugin manifest"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        let hub = HubKey::new("acme", "orders");
        assert_eq!(manifest_name(&hub), "acme/orders/manifest.json");
        assert_eq!(wasm_name(&hub, "ab12"), "acme/orders/ab12.wasm");
        assert_eq!(hub_of_manifest(&manifest_name(&hub)), Some(hub));
        for other in [
            "acme/orders/ab12.wasm",
            "acme/manifest.json",
            "acme/orders/x/manifest.json",
            "Acme/orders/manifest.json",
        ] {
            assert_eq!(hub_of_manifest(other), None, "{other}");
        }
    }
}
