//! One Switchboard node: its configuration, tenants, plugins, router and
//! backplane, started together and shared by every request.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tracing::{error, info};

use crate::backplane::memory::MemoryBus;
use crate::config::{Config, DEMO_TENANT};
use crate::connection::PendingConnections;
use crate::plugin::{PluginEngine, Registry, registry};
use crate::router::{HubKey, Router};
use crate::tenant::Tenants;

/// Most negotiated connections waiting for their transport at once.
const MAX_PENDING: usize = 100_000;

pub struct Node {
    pub config: Config,
    pub tenants: Tenants,
    pub router: Arc<Router>,
    pub engine: Arc<PluginEngine>,
    pub registry: Registry,
    pub pending: PendingConnections,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node on the memory backplane: the bundled plugins for the
    /// `demo` tenant, then every plugin in `plugin_dir`.
    pub async fn start(config: Config, plugin_dir: Option<&Path>) -> anyhow::Result<Arc<Node>> {
        let (backplane, mut inbox) = MemoryBus::new().join();
        let router = Arc::new(Router::new(backplane));
        let max_memory_mb = config
            .tenants
            .values()
            .map(|t| t.limits.memory_mb)
            .max()
            .unwrap_or(64);
        let engine = Arc::new(
            PluginEngine::new(max_memory_mb).context("cannot start the WebAssembly engine")?,
        );
        let tenants = Tenants::from_config(&config);
        let pending = PendingConnections::new(
            Duration::from_secs(config.disconnect_timeout_secs),
            MAX_PENDING,
        );
        let node = Arc::new(Node {
            config,
            tenants,
            router: router.clone(),
            engine,
            registry: Registry::new(),
            pending,
        });

        let remote_router = router.clone();
        tokio::spawn(async move {
            while let Some(envelope) = inbox.recv().await {
                remote_router.apply_remote(envelope);
            }
        });

        if node.tenants.get(DEMO_TENANT).is_some() {
            for (hub, wasm) in crate::plugin::BUNDLED {
                let key = HubKey::new(DEMO_TENANT, hub);
                if let Err(e) = node
                    .load_plugin(key, wasm.to_vec(), format!("bundled:{hub}"))
                    .await
                {
                    error!(hub, error = %e, "bundled plugin rejected");
                }
            }
        }
        if let Some(dir) = plugin_dir {
            let loaded = registry::load_dir(
                &node.engine,
                &node.registry,
                &node.tenants,
                &node.router,
                dir,
            )
            .await
            .with_context(|| format!("cannot read plugin folder {}", dir.display()))?;
            info!(dir = %dir.display(), loaded, "plugin folder loaded");
        }

        let sweeper = Arc::downgrade(&node);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(node) = sweeper.upgrade() else {
                    return;
                };
                node.pending.sweep();
            }
        });
        Ok(node)
    }

    pub async fn load_plugin(
        &self,
        hub: HubKey,
        wasm: Vec<u8>,
        source: String,
    ) -> Result<(), crate::plugin::LoadError> {
        registry::load(
            &self.engine,
            &self.registry,
            &self.tenants,
            &self.router,
            hub,
            wasm,
            source,
        )
        .await
    }
}
