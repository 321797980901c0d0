//! One Switchboard node: its configuration, tenants, plugins, router and
//! backplane, started together and shared by every request.

pub mod cluster_tenants;
mod group_limits;
pub mod plugin_files;
pub mod watch;

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context as _;
use tracing::{error, info, warn};

use crate::address::HubKey;
use crate::backplane::kv::KvStore;
use crate::backplane::memory::MemoryBus;
use crate::backplane::nats::NatsBackplane;
use crate::backplane::{Backplane, Inbox};
use crate::config::{Config, DEMO_TENANT};
use crate::connection::{
    ConnectionEnv, ConnectionSettings, PendingConnections, ResumableConnections,
};
use crate::hub::HubServices;
use crate::plugin::{CompileCache, PluginEngine, Registry, registry};
use crate::router::Router;
use crate::tenant::Tenants;

/// The largest memory limit of any tenant: what the plugin engine is built for.
fn max_memory_mb(config: &Config) -> u64 {
    config
        .tenants
        .values()
        .map(|t| t.limits.memory_mb)
        .max()
        .unwrap_or(64)
}

/// Most negotiated connections waiting for their transport at once.
const MAX_PENDING: usize = 100_000;

/// One switchboard node: its config, tenants, plugins, connections and, in a cluster, its
/// backplane; what every route and background task works on.
pub struct Node {
    /// The config the node started with. What a reload (SIGHUP) can change
    /// is read from [`Node::live_config`] instead.
    pub config: Config,
    /// The config as last reloaded: tenants, `[limits]`, `[admin]` keys, `public_url`.
    live: Arc<arc_swap::ArcSwap<Config>>,
    /// The tenants the node serves, from the config file and the admin API.
    pub tenants: Arc<Tenants>,
    /// Delivers messages and group changes to connections, here or through the cluster.
    pub router: Arc<Router>,
    /// Compiles and runs the plugins.
    pub engine: Arc<PluginEngine>,
    /// The plugin each hub runs now, with its earlier versions.
    pub registry: Arc<Registry>,
    /// Negotiated connections whose transport has not arrived yet.
    pub pending: Arc<PendingConnections>,
    /// Live stateful-reconnect connections, by the token a new WebSocket resumes them with.
    pub resumable: Arc<ResumableConnections>,
    /// Active connections by the `id` clients send, for SSE and long-polling requests.
    pub http_connections: Arc<crate::transport::HttpConnections>,
    /// The NATS backplane when the node is part of a cluster (`[nats]`).
    pub cluster: Option<Arc<NatsBackplane>>,
    /// In a cluster, where the tenants of the admin API are shared by every node.
    pub tenant_store: Option<Arc<crate::tenant::cluster::TenantStore>>,
    /// Cancelled once a drain starts: no new negotiations, not ready for a load balancer,
    /// and every connection finishes what is in flight, then tells its client to reconnect.
    /// One token for the node rather than one per connection (memory of idle connections).
    pub(crate) draining: tokio_util::sync::CancellationToken,
    /// What each tenant uses now (connections, running invocations), against its limits.
    pub usage: Arc<crate::tenant::limits::Usage>,
    /// What connections' hub calls need of the node.
    pub hub_services: HubServices,
    /// What connections need of the node.
    pub connections: Arc<ConnectionEnv>,
    /// When the node started, for its uptime.
    started: std::time::Instant,
}

debug_fields!(Node {});

impl Node {
    /// Starts a node: on the NATS backplane with the cluster's key-value
    /// buckets when the config has `[nats]`, else on the memory backplane;
    /// then the bundled example plugins for the `demo` tenant when they are
    /// found (see `plugin::bundled`), and every plugin in `plugin_dir`.
    pub async fn start(config: Config, plugin_dir: Option<&Path>) -> anyhow::Result<Arc<Node>> {
        crate::tenant::auth::check_tenants_apart(&config.tenants)
            .map_err(anyhow::Error::msg)
            .context("the tenants' keys")?;
        crate::metrics::install();
        let (backplane, inbox, cluster): (Arc<dyn Backplane>, Option<Inbox>, _) = match &config.nats
        {
            Some(nats) => {
                let backplane = NatsBackplane::connect(nats).await?;
                (backplane.clone(), None, Some(backplane))
            }
            None => {
                let (backplane, inbox) = MemoryBus::new().join();
                (backplane, Some(inbox), None)
            }
        };
        let router = Arc::new(Router::new(backplane));
        if let Some(cluster) = &cluster {
            let local: Weak<Router> = Arc::downgrade(&router);
            // Each partition's reader applies what it reads itself: no queue
            // between it and the connections, one task hand-off fewer.
            cluster.start_consumers(local.clone());
            cluster.start_registry(local.clone());
            cluster.start_presence(local);
        }
        let engine = Arc::new(
            PluginEngine::new(max_memory_mb(&config), &compile_cache(&config))
                .context("cannot start the WebAssembly engine")?,
        );
        let tenants = match &cluster {
            Some(cluster) => {
                let cluster = cluster.clone();
                Tenants::from_config_with(&config, move |tenant| {
                    KvStore::jetstream(cluster.kv_store(tenant))
                })
            }
            None => Tenants::from_config(&config),
        };
        let pending = Arc::new(PendingConnections::new(
            Duration::from_secs(config.disconnect_timeout_secs),
            MAX_PENDING,
        ));
        let resumable = Arc::new(ResumableConnections::new());
        let registry = Arc::new(Registry::with_keep(config.admin.keep_versions));
        let usage = Arc::new(crate::tenant::limits::Usage::default());
        let hub_services = HubServices::new(
            registry.clone(),
            engine.clone(),
            router.clone(),
            usage.clone(),
        );
        let mut tenant_store = None;
        if let (Some(cluster), Some(nats)) = (&cluster, &config.nats) {
            registry.set_store(Arc::new(crate::plugin::store::PluginStore::new(
                cluster.client().clone(),
                &nats.prefix,
                nats.replicas,
            )));
            tenant_store = Some(Arc::new(crate::tenant::cluster::TenantStore::new(
                cluster.client().clone(),
                &nats.prefix,
                nats.replicas,
            )));
        }
        let draining = tokio_util::sync::CancellationToken::new();
        let connections = Arc::new(ConnectionEnv {
            settings: ConnectionSettings::of(&config),
            router: router.clone(),
            usage: usage.clone(),
            pending: pending.clone(),
            resumable: resumable.clone(),
            cluster: cluster.clone(),
            draining: draining.clone(),
            hub: hub_services.clone(),
        });
        let node = Arc::new(Node {
            live: Arc::new(arc_swap::ArcSwap::from_pointee(config.clone())),
            config,
            tenants: Arc::new(tenants),
            router: router.clone(),
            engine,
            registry,
            pending,
            resumable,
            http_connections: Arc::new(crate::transport::HttpConnections::new()),
            cluster,
            tenant_store,
            draining,
            usage,
            hub_services,
            connections,
            started: std::time::Instant::now(),
        });

        router.set_group_limits(Box::new(group_limits::NodeGroupLimits(Arc::downgrade(
            &node,
        ))));
        if let Some(mut inbox) = inbox {
            let remote_router = router.clone();
            tokio::spawn(async move {
                while let Some(envelope) = inbox.recv().await {
                    crate::backplane::LocalIndex::apply(&*remote_router, envelope);
                }
            });
        }

        if node.tenant_store.is_some() {
            // The admin API's tenants, before the plugins that may belong to them.
            let sync = cluster_tenants::sync_all(&node);
            first_sync(
                crate::tenant::cluster::START_SYNC_TIMEOUT,
                sync,
                "tenants",
                "tenant",
            )
            .await;
            watch::tenants(Arc::downgrade(&node));
        }
        if node.tenants.get(DEMO_TENANT).is_some() {
            load_bundled(&node).await;
        }
        if let Some(dir) = plugin_dir {
            let loaded = registry::load_dir(node.plugins(), dir)
                .await
                .with_context(|| format!("cannot read plugin folder {}", dir.display()))?;
            info!(dir = %dir.display(), loaded, "plugin folder loaded");
        }
        if node.registry.store().is_some() {
            // The cluster's deployed versions win over bundled and folder ones.
            let sync = crate::plugin::store::sync_all(node.plugins(), None);
            let within = crate::plugin::store::START_SYNC_TIMEOUT;
            first_sync(within, sync, "plugin versions", "plugin").await;
            watch::plugins(Arc::downgrade(&node));
        }
        if let Some(dir) = plugin_dir {
            plugin_files::spawn(Arc::downgrade(&node), dir.to_path_buf())
                .with_context(|| format!("cannot watch plugin folder {}", dir.display()))?;
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

    /// What the transports read of the node: its connection tables, tenants,
    /// hubs and cluster, and their settings of the start-time config.
    pub fn transport_state(&self) -> crate::transport::TransportState {
        let config = &self.config;
        crate::transport::TransportState {
            tenants: self.tenants.clone(),
            registry: self.registry.clone(),
            http_connections: self.http_connections.clone(),
            settings: crate::transport::TransportSettings {
                long_poll_timeout: Duration::from_secs(config.long_poll_timeout_secs),
                disconnect_timeout: Duration::from_secs(config.disconnect_timeout_secs),
                websocket_read_buffer_bytes: config.websocket_read_buffer_bytes,
                stateful_reconnect: config.stateful_reconnect,
                keep_alive_secs: config.keep_alive_secs,
            },
            connections: self.connections.clone(),
        }
    }

    /// Tells the cluster where this node listens: `nats.advertise_url`, else
    /// `http://{listen address}` when it names one IP. Without either, other
    /// nodes cannot forward requests here (a warning says so).
    pub fn advertise(&self, listening: std::net::SocketAddr) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let configured = self
            .config
            .nats
            .as_ref()
            .and_then(|n| n.advertise_url.clone());
        let url = match configured {
            Some(url) => url,
            None if !listening.ip().is_unspecified() => format!("http://{listening}"),
            None => {
                tracing::warn!(
                    %listening,
                    "set nats.advertise_url: other nodes cannot forward requests for this node's \
                     connections (a load balancer without sticky sessions needs it)"
                );
                return;
            }
        };
        cluster.advertise(url);
    }

    /// The config as last reloaded, shared: it follows every reload.
    pub fn live_handle(&self) -> Arc<arc_swap::ArcSwap<Config>> {
        self.live.clone()
    }

    /// How long the node has run.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ready for traffic: always alone; in a cluster, while NATS is connected.
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.cluster.as_ref().is_none_or(|c| c.is_ready())
    }

    /// Whether the node is shutting down (new connections belong elsewhere).
    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Closes every connection gracefully: each finishes what is in flight,
    /// then tells its client to reconnect. Waits up to `timeout`.
    pub async fn drain(&self, timeout: Duration) {
        info!(
            connections = self.router.connection_count(),
            "draining connections"
        );
        // A client that negotiated just before the drain and connects during it
        // finds the token cancelled and drains at once.
        self.draining.cancel();
        if let Some(cluster) = &self.cluster {
            cluster.set_draining();
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while self.router.connection_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.router.connection_count();
        if left > 0 {
            tracing::warn!(left, "connections still open after the drain timeout");
        }
        // Gone from the cluster at once, not when its registry entries expire.
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
    }

    /// The config as last reloaded (the start-time one until a reload).
    pub fn live_config(&self) -> Arc<Config> {
        self.live.load_full()
    }

    /// Applies a reloaded config: the file's tenants (keys, limits, new and
    /// removed tenants), the node's `[limits]`, `[admin]` keys and
    /// `public_url`. Open connections are kept. Settings of the listener,
    /// the transports and NATS apply at the next start. Refused as a whole
    /// (nothing changes) when the tenants conflict or a tenant's `memory_mb`
    /// is above what the plugin engine was started for.
    pub fn reload(&self, config: Config) -> Result<crate::tenant::Reloaded, String> {
        let engine_mb = max_memory_mb(&self.config);
        if let Some((name, t)) = config
            .tenants
            .iter()
            .find(|(_, t)| t.limits.memory_mb > engine_mb)
        {
            return Err(format!(
                "tenant '{name}': limits.memory_mb {} is above the {engine_mb} MiB the node started with (restart to raise it)",
                t.limits.memory_mb
            ));
        }
        let done = self
            .tenants
            .reload_file(&config.tenants)
            .map_err(|e| e.to_string())?;
        self.live.store(Arc::new(config));
        Ok(done)
    }

    /// What loading, deploying and syncing plugins needs of the node.
    pub fn plugins(&self) -> registry::Plugins<'_> {
        registry::Plugins {
            engine: &self.engine,
            registry: &self.registry,
            tenants: &self.tenants,
            router: &self.router,
        }
    }

    /// Compiles `wasm` and serves it for `hub` on this node only, as a bundled plugin (`source`
    /// names it in logs).
    pub async fn load_plugin(
        &self,
        hub: HubKey,
        wasm: Vec<u8>,
        source: String,
    ) -> Result<(), crate::plugin::LoadError> {
        registry::load(
            self.plugins(),
            hub,
            wasm,
            source,
            crate::plugin::versions::Source::Bundled,
        )
        .await
        .map(|_| ())
    }
}

/// The first read of a cluster store (`store`, holding `what`) at start,
/// waited for at most `within`; logs how many entries it applied, or why
/// none (the store's watch catches up later).
async fn first_sync<E: std::fmt::Display>(
    within: Duration,
    sync: impl std::future::Future<Output = Result<usize, E>>,
    what: &str,
    store: &str,
) {
    match tokio::time::timeout(within, sync).await {
        Ok(Ok(count)) => info!(count, "cluster {what} loaded"),
        Ok(Err(e)) => {
            error!(error = %e, "cannot read the cluster's {what}; watching for them")
        }
        Err(_) => {
            error!("the cluster's {store} store did not answer in time; watching for it")
        }
    }
}

/// Loads the example hubs for the `demo` tenant from the folder
/// `crate::plugin::bundled::find` picks. Without them the node serves
/// everything else; one line says where it looked.
async fn load_bundled(node: &Node) {
    use crate::plugin::bundled;
    let dir = match bundled::find(node.config.bundled_plugins_dir.as_deref()) {
        Ok(dir) => dir,
        Err(looked_in) => {
            let looked_in: Vec<String> =
                looked_in.iter().map(|d| d.display().to_string()).collect();
            warn!(
                looked_in = %looked_in.join(", "),
                "no bundled example plugins found, so the demo tenant has no hubs: build them with `./dev serve` (or `cd plugins && cargo build --release --target wasm32-wasip2`), or set bundled_plugins_dir (SWITCHBOARD_BUNDLED_PLUGINS_DIR)"
            );
            return;
        }
    };
    let mut loaded = 0;
    for hub in bundled::HUBS {
        let path = bundled::component(&dir, hub);
        let wasm = match bundled::read(&path).await {
            Ok(wasm) => wasm,
            Err(e) => {
                warn!(hub, path = %path.display(), error = %e, "bundled plugin not loaded");
                continue;
            }
        };
        let key = HubKey::new(DEMO_TENANT, hub);
        match node.load_plugin(key, wasm, format!("bundled:{hub}")).await {
            Ok(()) => loaded += 1,
            Err(e) => error!(hub, error = %e, "bundled plugin rejected"),
        }
    }
    info!(dir = %dir.display(), loaded, "bundled example plugins loaded");
}

/// The compile cache the config asks for.
fn compile_cache(config: &Config) -> CompileCache {
    match (&config.compile_cache, &config.compile_cache_dir) {
        (false, _) => CompileCache::Off,
        (true, None) => CompileCache::UserDefault,
        (true, Some(dir)) => CompileCache::Dir(dir.clone()),
    }
}
