//! Which plugin version serves each tenant hub. A version is published only
//! once it compiled, type-checked against the hub world and described itself;
//! publishing is an atomic swap, so running calls keep the version they pinned.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use tracing::{error, info};

use super::{CallEnv, HubPlugin, LoadError, PluginEngine};
use crate::router::{HubKey, Router};
use crate::tenant::{Tenants, is_valid_name};

#[derive(Debug, Default)]
pub struct Registry {
    hubs: RwLock<HashMap<HubKey, Arc<ArcSwap<HubPlugin>>>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The version that serves `hub` now.
    pub fn get(&self, hub: &HubKey) -> Option<Arc<HubPlugin>> {
        self.hubs.read().get(hub).map(|slot| slot.load_full())
    }

    /// Makes `plugin` the version new calls to `hub` use.
    pub fn publish(&self, hub: HubKey, plugin: HubPlugin) {
        let plugin = Arc::new(plugin);
        let mut hubs = self.hubs.write();
        match hubs.get(&hub) {
            Some(slot) => slot.store(plugin),
            None => {
                hubs.insert(hub, Arc::new(ArcSwap::new(plugin)));
            }
        }
    }

    pub fn hubs(&self) -> Vec<HubKey> {
        self.hubs.read().keys().cloned().collect()
    }
}

/// Compiles, validates and describes `wasm`, then publishes it for `hub`.
/// Compilation runs on a blocking thread, never on the async workers.
pub async fn load(
    engine: &Arc<PluginEngine>,
    registry: &Registry,
    tenants: &Tenants,
    router: &Arc<Router>,
    hub: HubKey,
    wasm: Vec<u8>,
    source: String,
) -> Result<(), LoadError> {
    let tenant = tenants
        .get(&hub.tenant)
        .ok_or_else(|| LoadError::Io(format!("unknown tenant '{}'", hub.tenant)))?
        .clone();
    let compiling = engine.clone();
    let mut plugin = tokio::task::spawn_blocking(move || compiling.load_blocking(&wasm, &source))
        .await
        .map_err(|e| LoadError::Io(format!("compilation was interrupted: {e}")))??;
    let env = CallEnv {
        tenant,
        hub: hub.clone(),
        router: router.clone(),
        connection_id: None,
    };
    engine.describe(&mut plugin, env).await?;
    info!(
        hub = %hub,
        source = %plugin.source,
        methods = plugin.methods.len(),
        digest = %&plugin.digest[..12],
        "plugin loaded"
    );
    registry.publish(hub, plugin);
    Ok(())
}

/// Loads every `DIR/{tenant}/{hub}.wasm`. A file that fails is logged with
/// its path and skipped; the other hubs still load. Returns how many loaded.
pub async fn load_dir(
    engine: &Arc<PluginEngine>,
    registry: &Registry,
    tenants: &Tenants,
    router: &Arc<Router>,
    dir: &Path,
) -> std::io::Result<usize> {
    let mut loaded = 0;
    let mut tenant_dirs: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    tenant_dirs.sort_by_key(|e| e.file_name());
    for tenant_dir in tenant_dirs {
        let tenant_name = tenant_dir.file_name().to_string_lossy().into_owned();
        if !tenant_dir.path().is_dir() {
            continue;
        }
        if tenants.get(&tenant_name).is_none() {
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
            let hub_name = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if !is_valid_name(&hub_name) {
                error!(path = %path.display(), "plugin file name is not a valid hub name (a-z, 0-9, '-', '_'); skipped");
                continue;
            }
            let wasm = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    error!(path = %path.display(), error = %e, "cannot read plugin file");
                    continue;
                }
            };
            let hub = HubKey::new(&tenant_name, &hub_name);
            let source = path.display().to_string();
            match load(engine, registry, tenants, router, hub, wasm, source).await {
                Ok(()) => loaded += 1,
                Err(e) => error!(path = %path.display(), error = %e, "plugin rejected"),
            }
        }
    }
    Ok(loaded)
}
