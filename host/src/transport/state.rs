//! What the transports read of the node: its tables of negotiated, resumable
//! and HTTP connections, the tenants and hubs a URL may name, the cluster
//! that ids are tagged with and requests forwarded in, and the few settings
//! of the transports. The node builds it; the transport routes hold it.

use std::sync::Arc;
use std::time::Duration;

use super::HttpConnections;
use crate::address::HubKey;
use crate::connection::ConnectionEnv;
use crate::plugin::Registry;
use crate::tenant::{Tenant, Tenants};

/// The transports' view of the node.
pub struct TransportState {
    /// The tenants this node serves: a URL's tenant, and how its clients authenticate.
    pub tenants: Arc<Tenants>,
    /// The deployed hubs: a URL naming a hub without a plugin is refused.
    pub registry: Arc<Registry>,
    /// Active connections by the `id` clients send, for SSE and long-polling requests.
    pub http_connections: Arc<HttpConnections>,
    /// Timeouts and options from the node's config.
    pub settings: TransportSettings,
    /// What the connection layer starts a connection with; the transports
    /// also read its tables of negotiated and resumable connections, the
    /// tenants' use of the node, the cluster and the draining signal there,
    /// so each is held once.
    pub connections: Connections,
}

/// What the connection layer's entry points (`run`, `run_resumable`,
/// `run_taken`, the takeover checks) take.
pub type Connections = Arc<ConnectionEnv>;

/// The settings the transports read (the node's start-time config).
#[derive(Debug, Clone, Copy)]
pub struct TransportSettings {
    /// How long a long poll waits for something to send.
    pub long_poll_timeout: Duration,
    /// How long a connection without a transport request lives on.
    pub disconnect_timeout: Duration,
    /// The read buffer of a WebSocket.
    pub websocket_read_buffer_bytes: usize,
    /// Whether negotiate may agree to stateful reconnect.
    pub stateful_reconnect: bool,
    /// The keep-alive interval, in seconds (at least 1 counted).
    pub keep_alive_secs: u64,
}

debug_fields!(TransportState { settings });

impl TransportState {
    /// The tenant and hub a URL names, if both exist. Names are matched
    /// case-insensitively, as SignalR matches hub paths.
    pub fn resolve_hub(&self, tenant: &str, hub: &str) -> Option<(Arc<Tenant>, HubKey)> {
        resolve_hub(&self.tenants, &self.registry, tenant, hub)
    }

    /// A new connection id or token. In a cluster it names this node (see
    /// [`super::forward`]), so a request for it that another node receives
    /// is forwarded here.
    pub fn new_id(&self) -> String {
        let id = crate::connection::new_id();
        match &self.connections.cluster {
            Some(cluster) => super::forward::tag(&id, cluster.node_id()),
            None => id,
        }
    }

    /// Whether the node is shutting down (new connections belong elsewhere).
    pub fn is_draining(&self) -> bool {
        self.connections.draining.is_cancelled()
    }

    /// This node's id in the cluster ("" alone).
    pub fn own_id(&self) -> &str {
        self.connections
            .cluster
            .as_ref()
            .map_or("", |c| c.node_id())
    }

    /// The silence after which a forwarded WebSocket counts as hung: three
    /// keep-alive intervals without a byte from its owner.
    pub fn silence(&self) -> Duration {
        Duration::from_secs(self.settings.keep_alive_secs.max(1).saturating_mul(3))
    }
}

/// The tenant and hub a URL names, if both exist (see [`TransportState::resolve_hub`]).
pub fn resolve_hub(
    tenants: &Tenants,
    registry: &Registry,
    tenant: &str,
    hub: &str,
) -> Option<(Arc<Tenant>, HubKey)> {
    let tenant = tenants.get(&tenant.to_ascii_lowercase())?.clone();
    let key = HubKey::new(&tenant.name, &hub.to_ascii_lowercase());
    registry.get(&key)?;
    Some((tenant, key))
}
