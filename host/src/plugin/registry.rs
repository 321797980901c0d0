//! Which plugin version serves each tenant hub, and the versions kept for
//! rollback. A version is published only once it compiled, type-checked
//! against the hub world and described itself; publishing is an atomic swap,
//! so new calls use the new version at once while running calls finish on
//! the version they pinned (`get` hands out an `Arc` of it).
//!
//! Deploys and rollbacks of one hub are serialized by the hub's lock;
//! compilation (tens to hundreds of milliseconds) runs on blocking threads,
//! at most [`MAX_CONCURRENT_COMPILES`] at once, never on the async workers.
//! In a cluster the hub's history lives in the plugin store (`store`) too,
//! and every node applies it (`apply_manifest`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use parking_lot::RwLock;
use serde::Serialize;
use sha2::Digest;
use tokio::sync::{Mutex, Semaphore};
use tracing::{error, info, warn};

use super::store::{PluginStore, StoreError};
use super::versions::{Deployed, HubVersions, RollbackError, Source, VersionInfo, now_ms};
use super::{CallEnv, HubPlugin, LoadError, PluginEngine};
use crate::address::{HubKey, Unknown, is_valid_name};
use crate::router::Router;
use crate::tenant::Tenants;

/// Components compiled at once; more wait. Compilation is CPU-bound and
/// itself parallel, so more would only slow down the serving threads.
pub const MAX_CONCURRENT_COMPILES: usize = 2;

/// Why a deploy or rollback did not happen. The running version keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The tenant is not configured on this node, or a rollback names a hub the node has no
    /// plugin for.
    #[error(transparent)]
    Unknown(#[from] Unknown),
    /// The hub name is not a valid name (see [`crate::address::is_valid_name`]).
    #[error("'{0}' is not a valid hub name (1-64 characters of a-z, 0-9, '-', '_')")]
    BadHubName(String),
    /// The component could not be loaded (see [`LoadError`]).
    #[error(transparent)]
    Invalid(#[from] LoadError),
    /// The rollback's target is not a kept version other than the current one.
    #[error(transparent)]
    Rollback(#[from] RollbackError),
    /// The cluster's plugin store could not be read or written.
    #[error("the cluster's plugin store is unavailable: {0}")]
    Store(#[from] StoreError),
}

/// What loading, deploying, rolling back and syncing a hub's plugin need of
/// the node: its engine, registry, tenants and router.
#[derive(Clone, Copy)]
pub struct Plugins<'a> {
    /// Compiles the components and runs their `describe`.
    pub engine: &'a Arc<PluginEngine>,
    /// Holds each hub's serving version and history.
    pub registry: &'a Registry,
    /// The node's tenants; a hub must belong to a configured one.
    pub tenants: &'a Tenants,
    /// For the `describe` call's [`CallEnv`].
    pub router: &'a Arc<Router>,
}

// Four shared services; their contents are the node's, not this handle's.
debug_fields!(Plugins<'_> {});

/// One hub: the version that serves, and its history.
#[derive(Debug, Default)]
struct HubSlot {
    current: ArcSwapOption<HubPlugin>,
    /// Held for a whole deploy, rollback or cluster update of this hub.
    state: Mutex<HubState>,
}

#[derive(Debug, Default)]
struct HubState {
    versions: Option<HubVersions>,
    /// The `.wasm` bytes of kept versions, by SHA-256, for rollback. A
    /// node that learned of a version from the cluster fetches it on demand.
    wasm: HashMap<String, Arc<[u8]>>,
}

impl HubState {
    fn keep_only_kept(&mut self) {
        if let Some(versions) = &self.versions {
            self.wasm.retain(|sha, _| versions.has(sha));
        }
    }
}

/// All hubs of the node.
#[derive(Debug)]
pub struct Registry {
    hubs: RwLock<HashMap<HubKey, Arc<HubSlot>>>,
    /// Versions kept per hub.
    keep: usize,
    compiles: Semaphore,
    /// The cluster's plugin store, when the node is part of one.
    store: OnceLock<Arc<PluginStore>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::with_keep(10)
    }
}

/// A hub as `plugins` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct HubListing {
    /// The hub's name, within the listed tenant.
    pub hub: String,
    /// The version that serves (0 when none does).
    pub current: u64,
    /// SHA-256 of the version that serves.
    pub sha256: String,
    /// Names of the methods the serving version offers, sorted.
    pub methods: Vec<String>,
    /// The kept versions, oldest first.
    pub versions: Vec<VersionListing>,
}

/// A kept version as `plugins` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionListing {
    /// The version's number, digest, size, time and source.
    #[serde(flatten)]
    pub info: VersionInfo,
    /// `deployed_at_ms` as RFC 3339 text (UTC).
    pub deployed_at: String,
    /// Whether this version serves now.
    pub current: bool,
}

impl Registry {
    /// A registry that keeps 10 versions of each hub.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// A registry that keeps the last `keep` versions of each hub.
    pub fn with_keep(keep: usize) -> Registry {
        Registry {
            hubs: RwLock::default(),
            keep: keep.max(1),
            compiles: Semaphore::new(MAX_CONCURRENT_COMPILES),
            store: OnceLock::new(),
        }
    }

    /// Makes deploys and rollbacks cluster-wide through `store`.
    pub fn set_store(&self, store: Arc<PluginStore>) {
        let _ = self.store.set(store);
    }

    /// The cluster's plugin store, once [`Registry::set_store`] gave it one.
    pub fn store(&self) -> Option<&Arc<PluginStore>> {
        self.store.get()
    }

    /// The version that serves `hub` now.
    pub fn get(&self, hub: &HubKey) -> Option<Arc<HubPlugin>> {
        self.hubs
            .read()
            .get(hub)
            .and_then(|s| s.current.load_full())
    }

    /// Makes `plugin` the version new calls to `hub` use, outside any history.
    pub fn publish(&self, hub: HubKey, plugin: HubPlugin) {
        self.slot(&hub).current.store(Some(Arc::new(plugin)));
    }

    /// Every hub that has a serving version.
    pub fn hubs(&self) -> Vec<HubKey> {
        self.hubs
            .read()
            .iter()
            .filter(|(_, s)| s.current.load().is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Forgets every hub of `tenant` (the tenant was deleted).
    pub fn remove_tenant(&self, tenant: &str) {
        self.hubs.write().retain(|k, _| &*k.tenant != tenant);
    }

    fn slot(&self, hub: &HubKey) -> Arc<HubSlot> {
        if let Some(slot) = self.hubs.read().get(hub) {
            return slot.clone();
        }
        self.hubs
            .write()
            .entry(hub.clone())
            .or_insert_with(|| {
                crate::metrics::start_hub_series(&hub.tenant, &hub.hub);
                Arc::default()
            })
            .clone()
    }

    fn existing_slot(&self, hub: &HubKey) -> Option<Arc<HubSlot>> {
        self.hubs.read().get(hub).cloned()
    }

    /// The hubs of `tenant` with their versions, sorted by hub name.
    pub async fn listing(&self, tenant: &str) -> Vec<HubListing> {
        let mut slots: Vec<(HubKey, Arc<HubSlot>)> = self
            .hubs
            .read()
            .iter()
            .filter(|(k, _)| &*k.tenant == tenant)
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        slots.sort_by(|a, b| a.0.hub.cmp(&b.0.hub));
        let mut out = Vec::with_capacity(slots.len());
        for (key, slot) in slots {
            let Some(plugin) = slot.current.load_full() else {
                continue;
            };
            let state = slot.state.lock().await;
            let mut methods: Vec<String> = plugin.methods().map(|m| m.name.clone()).collect();
            methods.sort();
            let (current, versions) = match &state.versions {
                Some(v) => (
                    v.current,
                    v.versions
                        .iter()
                        .map(|info| VersionListing {
                            deployed_at: info.deployed_at(),
                            current: info.version == v.current,
                            info: info.clone(),
                        })
                        .collect(),
                ),
                None => (0, Vec::new()),
            };
            out.push(HubListing {
                hub: key.hub.to_string(),
                current,
                sha256: plugin.digest.clone(),
                methods,
                versions,
            });
        }
        out
    }
}

impl Plugins<'_> {
    /// Compiles, validates and describes `wasm` for `hub`, off the async
    /// workers and at most [`MAX_CONCURRENT_COMPILES`] at once.
    async fn compile(
        self,
        hub: &HubKey,
        wasm: Arc<[u8]>,
        source: String,
    ) -> Result<HubPlugin, LoadError> {
        let tenant = self
            .tenants
            .get(&hub.tenant)
            .ok_or_else(|| LoadError::Io(format!("unknown tenant '{}'", hub.tenant)))?;
        let plugin = {
            let _slot = self
                .registry
                .compiles
                .acquire()
                .await
                .map_err(|_| LoadError::Io("the node is shutting down".into()))?;
            let compiling = self.engine.clone();
            tokio::task::spawn_blocking(move || compiling.load_blocking(&wasm, &source))
                .await
                .map_err(|e| LoadError::Io(format!("compilation was interrupted: {e}")))??
        };
        let mut plugin = plugin;
        let env = CallEnv {
            tenant,
            hub: hub.clone(),
            router: self.router.clone(),
            caller: None,
            receipts: Default::default(),
        };
        self.engine.describe(&mut plugin, env).await?;
        Ok(plugin)
    }
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compiles, validates and describes `wasm`, then publishes it for `hub` on
/// this node only, as a new version from `kind` (`source` names it in logs).
pub async fn load(
    plugins: Plugins<'_>,
    hub: HubKey,
    wasm: Vec<u8>,
    source: String,
    kind: Source,
) -> Result<Deployed, LoadError> {
    let wasm: Arc<[u8]> = Arc::from(wasm);
    let plugin = plugins.compile(&hub, wasm.clone(), source).await?;
    let registry = plugins.registry;
    let slot = registry.slot(&hub);
    let mut state = slot.state.lock().await;
    Ok(install(
        registry, &slot, &mut state, &hub, plugin, wasm, kind,
    ))
}

/// Records `plugin` as a new version of `hub` and makes it serve.
fn install(
    registry: &Registry,
    slot: &HubSlot,
    state: &mut HubState,
    hub: &HubKey,
    plugin: HubPlugin,
    wasm: Arc<[u8]>,
    kind: Source,
) -> Deployed {
    let sha = plugin.digest.clone();
    let size = wasm.len() as u64;
    let deployed = match &mut state.versions {
        Some(versions) => versions.deploy(&sha, size, now_ms(), kind, registry.keep),
        None => {
            let versions = HubVersions::first(&sha, size, now_ms(), kind);
            let info = versions.current().cloned();
            state.versions = Some(versions);
            Deployed {
                info: info.unwrap_or_else(|| unreachable!("a first version is current")),
                changed: true,
                dropped: Vec::new(),
            }
        }
    };
    let unchanged = slot
        .current
        .load()
        .as_ref()
        .is_some_and(|p| p.digest == sha);
    if deployed.changed || !unchanged {
        log_loaded(hub, &plugin, &deployed.info);
        state.wasm.insert(sha, wasm);
        slot.current.store(Some(Arc::new(plugin)));
    }
    state.keep_only_kept();
    deployed
}

fn log_loaded(hub: &HubKey, plugin: &HubPlugin, info: &VersionInfo) {
    info!(
        hub = %hub,
        version = info.version,
        source = %info.source,
        from = %plugin.source,
        methods = plugin.methods.len(),
        sha256 = %&plugin.digest[..12],
        "plugin loaded"
    );
}

/// Deploys `wasm` as the next version of `hub`: validated and compiled
/// first (an invalid component changes nothing), then, in a cluster, stored
/// for every node, then swapped in here. Deploying the bytes that already
/// serve changes nothing.
pub async fn deploy(
    plugins: Plugins<'_>,
    hub: HubKey,
    wasm: Vec<u8>,
    kind: Source,
    source: String,
) -> Result<Deployed, DeployError> {
    if plugins.tenants.get(&hub.tenant).is_none() {
        return Err(Unknown::Tenant(hub.tenant.to_string()).into());
    }
    if !is_valid_name(&hub.hub) {
        return Err(DeployError::BadHubName(hub.hub.to_string()));
    }
    let registry = plugins.registry;
    let sha = sha256_hex(&wasm);
    if let Some(current) = registry.get(&hub).filter(|p| p.digest == sha) {
        let slot = registry.slot(&hub);
        let state = slot.state.lock().await;
        if let Some(info) = state.versions.as_ref().and_then(|v| v.current())
            && info.sha256 == current.digest
        {
            return Ok(Deployed {
                info: info.clone(),
                changed: false,
                dropped: Vec::new(),
            });
        }
    }
    let wasm: Arc<[u8]> = Arc::from(wasm);
    let plugin = plugins.compile(&hub, wasm.clone(), source).await?;
    let slot = registry.slot(&hub);
    let mut state = slot.state.lock().await;
    match registry.store() {
        None => Ok(install(
            registry, &slot, &mut state, &hub, plugin, wasm, kind,
        )),
        Some(store) => {
            // The cluster's history is the truth: start from it, so a
            // deploy through any node numbers versions the same way.
            let mut versions = match store.get_manifest(&hub).await? {
                Some(v) => v,
                None => state.versions.clone().unwrap_or_else(|| HubVersions {
                    versions: Vec::new(),
                    current: 0,
                }),
            };
            let deployed = versions.deploy(&sha, wasm.len() as u64, now_ms(), kind, registry.keep);
            store.put_wasm(&hub, &sha, &wasm).await?;
            store.put_manifest(&hub, &versions).await?;
            for old in &deployed.dropped {
                if !versions.has(&old.sha256)
                    && let Err(e) = store.delete_wasm(&hub, &old.sha256).await
                {
                    warn!(hub = %hub, error = %e, "cannot delete a dropped plugin version from the store");
                }
            }
            log_loaded(&hub, &plugin, &deployed.info);
            state.versions = Some(versions);
            state.wasm.insert(sha, wasm);
            slot.current.store(Some(Arc::new(plugin)));
            state.keep_only_kept();
            Ok(deployed)
        }
    }
}

/// Makes an earlier version of `hub` serve again: `to`, or the one before
/// the current version. In a cluster, on every node.
pub async fn rollback(
    plugins: Plugins<'_>,
    hub: HubKey,
    to: Option<u64>,
) -> Result<VersionInfo, DeployError> {
    if plugins.tenants.get(&hub.tenant).is_none() {
        return Err(Unknown::Tenant(hub.tenant.to_string()).into());
    }
    let registry = plugins.registry;
    let unknown_hub = || Unknown::hub(&hub);
    let slot = registry.existing_slot(&hub).ok_or_else(unknown_hub)?;
    let mut state = slot.state.lock().await;
    let store = registry.store();
    let mut versions = match store {
        Some(store) => store.get_manifest(&hub).await?.or(state.versions.clone()),
        None => state.versions.clone(),
    }
    .ok_or_else(unknown_hub)?;
    let target = versions.rollback(to)?;
    let wasm = match (state.wasm.get(&target.sha256), store) {
        (Some(bytes), _) => bytes.clone(),
        (None, Some(store)) => Arc::from(store.get_wasm(&hub, &target.sha256).await?),
        (None, None) => {
            return Err(DeployError::Invalid(LoadError::Io(format!(
                "the bytes of version {} are no longer kept",
                target.version
            ))));
        }
    };
    let source = format!("rollback to version {}", target.version);
    let plugin = plugins.compile(&hub, wasm.clone(), source).await?;
    if let Some(store) = store {
        store.put_manifest(&hub, &versions).await?;
    }
    info!(hub = %hub, version = target.version, sha256 = %&target.sha256[..12], "plugin rolled back");
    state.versions = Some(versions);
    state.wasm.insert(target.sha256.clone(), wasm);
    slot.current.store(Some(Arc::new(plugin)));
    Ok(target)
}

/// Brings `hub` on this node to the cluster's `manifest`: loads its current
/// version if another one serves here. A version that fails to load here is
/// logged, and the running one keeps serving.
pub async fn apply_manifest(plugins: Plugins<'_>, hub: HubKey, manifest: HubVersions) {
    if plugins.tenants.get(&hub.tenant).is_none() {
        return;
    }
    let Some(target) = manifest.current().cloned() else {
        return;
    };
    let registry = plugins.registry;
    let slot = registry.slot(&hub);
    let mut state = slot.state.lock().await;
    let serving = slot.current.load_full();
    if serving.as_ref().is_some_and(|p| p.digest == target.sha256) {
        state.versions = Some(manifest);
        state.keep_only_kept();
        return;
    }
    let wasm = match state.wasm.get(&target.sha256) {
        Some(bytes) => bytes.clone(),
        None => {
            let Some(store) = registry.store() else {
                return;
            };
            match store.get_wasm(&hub, &target.sha256).await {
                Ok(bytes) => Arc::from(bytes),
                Err(e) => {
                    error!(hub = %hub, version = target.version, error = %e, "cannot fetch a plugin version from the cluster store");
                    return;
                }
            }
        }
    };
    let source = format!("cluster version {}", target.version);
    let compiled = plugins.compile(&hub, wasm.clone(), source).await;
    match compiled {
        Ok(plugin) => {
            log_loaded(&hub, &plugin, &target);
            state.versions = Some(manifest);
            state.wasm.insert(target.sha256.clone(), wasm);
            slot.current.store(Some(Arc::new(plugin)));
            state.keep_only_kept();
        }
        Err(e) => {
            error!(hub = %hub, version = target.version, error = %e, "cluster plugin version rejected on this node; the running version keeps serving");
        }
    }
}

/// The hub a plugin file stands for: `DIR/{tenant}/{hub}.wasm`.
pub fn hub_of_file(dir: &Path, path: &Path) -> Option<HubKey> {
    let rel = path.strip_prefix(dir).ok()?;
    let mut parts = rel.components();
    let tenant = parts.next()?.as_os_str().to_str()?;
    let file = parts.next()?.as_os_str().to_str()?;
    if parts.next().is_some() {
        return None;
    }
    let hub = file.strip_suffix(".wasm")?.to_ascii_lowercase();
    (is_valid_name(tenant) && is_valid_name(&hub)).then(|| HubKey::new(tenant, &hub))
}

/// Loads every `DIR/{tenant}/{hub}.wasm`. A file that fails is logged with
/// its path and skipped; the other hubs still load. Returns how many loaded.
pub async fn load_dir(plugins: Plugins<'_>, dir: &Path) -> std::io::Result<usize> {
    let mut loaded = 0;
    let mut tenant_dirs: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    tenant_dirs.sort_by_key(|e| e.file_name());
    for tenant_dir in tenant_dirs {
        let tenant_name = tenant_dir.file_name().to_string_lossy().into_owned();
        if !tenant_dir.path().is_dir() {
            continue;
        }
        if plugins.tenants.get(&tenant_name).is_none() {
            error!(path = %tenant_dir.path().display(), "plugin folder for an unknown tenant; skipped");
            continue;
        }
        let mut files: Vec<_> = std::fs::read_dir(tenant_dir.path())?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        files.sort();
        for path in files {
            let Some(hub) = hub_of_file(dir, &path) else {
                error!(path = %path.display(), "plugin file name is not a valid hub name (a-z, 0-9, '-', '_'); skipped");
                continue;
            };
            let wasm = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    error!(path = %path.display(), error = %e, "cannot read plugin file");
                    continue;
                }
            };
            let source = path.display().to_string();
            match load(plugins, hub, wasm, source, Source::File).await {
                Ok(_) => loaded += 1,
                Err(e) => error!(path = %path.display(), error = %e, "plugin rejected"),
            }
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_files_name_their_hub() {
        let dir = Path::new("/p");
        let hub = hub_of_file(dir, Path::new("/p/acme/Orders.wasm")).expect("hub");
        assert_eq!((&*hub.tenant, &*hub.hub), ("acme", "orders"));
        for bad in [
            "/p/acme/orders.wasm.tmp",
            "/p/acme/.orders.wasm.swp",
            "/p/acme/sub/orders.wasm",
            "/p/orders.wasm",
            "/p/Acme/orders.wasm",
            "/q/acme/orders.wasm",
            "/p/acme/or ders.wasm",
        ] {
            assert!(hub_of_file(dir, Path::new(bad)).is_none(), "{bad}");
        }
    }

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
