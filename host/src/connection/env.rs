//! What the connection layer needs of the node, as one handle.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{PendingConnections, ResumableConnections};
use crate::backplane::nats::NatsBackplane;
use crate::config::Config;
use crate::hub::HubServices;
use crate::router::Router;
use crate::tenant::limits::Usage;

/// The node's settings a connection reads, fixed when the node starts.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    /// Longest the client may take to send its handshake.
    pub handshake_timeout: Duration,
    /// The largest handshake request (the node's `max_message_size`).
    pub max_message_size: usize,
    /// Between two pings to the client, when the transport needs them.
    pub keep_alive: Duration,
    /// Longest the client may stay silent once it pinged.
    pub client_timeout: Duration,
    /// Longest a stateful connection waits for its client to resume.
    pub disconnect_timeout: Duration,
    /// Longest one write to the transport may take.
    pub write_timeout: Duration,
    /// Records the outbox holds before the connection is too slow.
    pub outbound_queue: usize,
    /// Bytes a stateful connection keeps for its client's replay.
    pub stateful_reconnect_buffer_bytes: usize,
    /// Whether the cluster's stateful connections resume on any node.
    pub durable_resume: bool,
    /// How often a node renews its claim of a connection it took over: a
    /// third of the backplane streams' retention, which would drop it.
    pub claim_renewal: Duration,
}

impl ConnectionSettings {
    /// What `config` sets for connections.
    pub fn of(config: &Config) -> ConnectionSettings {
        ConnectionSettings {
            handshake_timeout: Duration::from_secs(config.handshake_timeout_secs),
            max_message_size: config.max_message_size,
            keep_alive: Duration::from_secs(config.keep_alive_secs),
            client_timeout: Duration::from_secs(config.client_timeout_secs),
            disconnect_timeout: Duration::from_secs(config.disconnect_timeout_secs),
            write_timeout: Duration::from_secs(config.write_timeout_secs),
            outbound_queue: config.outbound_queue,
            stateful_reconnect_buffer_bytes: config.stateful_reconnect_buffer_bytes,
            durable_resume: config.nats.as_ref().is_some_and(|nats| nats.durable_resume),
            claim_renewal: config
                .nats
                .as_ref()
                .map_or(Duration::from_secs(200), |nats| {
                    Duration::from_secs(nats.max_age_secs / 3).max(Duration::from_secs(1))
                }),
        }
    }
}

/// What a connection uses of its node: settings, the router it registers
/// with, each tenant's use of the node, the tables of connections waiting
/// for a transport and of those a new one may resume, the cluster (for
/// durable resume), the node's draining signal and what its hub calls need.
/// Built by the node; every connection holds one pointer to it.
pub struct ConnectionEnv {
    /// Timeouts and limits from the node's config.
    pub settings: ConnectionSettings,
    /// Where the connection registers, and through which messages reach it.
    pub router: Arc<Router>,
    /// Each tenant's use of the node, for its limits.
    pub usage: Arc<Usage>,
    /// Negotiated connections whose transport has not arrived yet.
    pub pending: Arc<PendingConnections>,
    /// Live stateful connections, for a new transport to resume.
    pub resumable: Arc<ResumableConnections>,
    /// The NATS backplane when the node is part of a cluster.
    pub cluster: Option<Arc<NatsBackplane>>,
    /// Cancelled once the node drains: connections finish what is in
    /// flight, then tell their clients to reconnect.
    pub draining: CancellationToken,
    /// What hub method calls need: the plugins, their engine, the router and the usage.
    pub hub: HubServices,
}

debug_fields!(ConnectionEnv { settings });
