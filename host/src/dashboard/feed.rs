//! The once-a-second snapshot every open dashboard receives. One sampler
//! task for the node, started by the first dashboard that opens and ended
//! when the last one closes: no dashboard open, no work. Each snapshot is
//! encoded once, as the SignalR record the hub sends, and shared by every
//! dashboard through a `watch` channel (a slow page skips snapshots, it never
//! queues them).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::debug;

use super::prom;
use super::snapshot::{ClusterNode, HubConnections, Inputs, NodeFacts, Sampler};
use crate::backplane::nats::registry::{DOWN_AFTER, ListedNode};
use crate::node::Node;
use crate::plugin::versions::now_ms;
use crate::protocol::Protocol;

/// How often a snapshot is taken.
pub const EVERY: Duration = Duration::from_secs(1);

/// The node's dashboard feed, held by the server's routes (not the node:
/// the dashboard sits above it).
#[derive(Debug)]
pub struct Feed {
    tx: watch::Sender<Option<Bytes>>,
    /// Whether the sampler task runs; changed only with the lock held, as is
    /// the receiver count it checks, so a dashboard never waits on a sampler
    /// that just ended.
    running: Mutex<bool>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl Feed {
    /// A feed with no sampler running.
    pub fn new() -> Feed {
        Feed {
            tx: watch::channel(None).0,
            running: Mutex::new(false),
        }
    }

    /// Snapshots for one dashboard, from now on; starts the sampler if none runs.
    pub fn subscribe(self: &Arc<Feed>, node: &Arc<Node>) -> watch::Receiver<Option<Bytes>> {
        let mut running = self.running.lock();
        let rx = self.tx.subscribe();
        if !*running {
            *running = true;
            debug!("dashboard feed started");
            tokio::spawn(sample(Arc::downgrade(node), Arc::downgrade(self)));
        }
        rx
    }

    /// How many dashboards receive the feed now.
    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// Takes a snapshot every [`EVERY`] while anyone watches.
async fn sample(node: Weak<Node>, feed: Weak<Feed>) {
    let mut sampler = Sampler::default();
    let mut liveness = Liveness::default();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (Some(node), Some(feed)) = (node.upgrade(), feed.upgrade()) else {
            return;
        };
        {
            let mut running = feed.running.lock();
            if feed.tx.receiver_count() == 0 {
                *running = false;
                debug!("dashboard feed stopped: no dashboard open");
                return;
            }
        }
        let inputs = gather(&node, &mut liveness).await;
        let snapshot = sampler.snapshot(inputs);
        feed.tx.send_replace(Some(record(&snapshot)));
    }
}

/// The snapshot as one SignalR JSON invocation record of `snapshot`.
fn record(snapshot: &serde_json::Value) -> Bytes {
    let mut out = serde_json::to_vec(&serde_json::json!({
        "type": 1,
        "target": "snapshot",
        "arguments": [snapshot],
    }))
    .unwrap_or_default();
    out.push(0x1e);
    Bytes::from(out)
}

/// The longest a snapshot waits for the cluster registry.
const REGISTRY_WAIT: Duration = Duration::from_millis(500);

/// When each listed node's record last changed, by this node's clock, so a
/// node whose record stops changing shows as down whatever the clocks say.
#[derive(Debug, Default)]
struct Liveness {
    seen: HashMap<String, (u64, Instant)>,
}

impl Liveness {
    /// The other nodes of `listed`, each down when its record has not
    /// changed for [`DOWN_AFTER`] (or was that old when first read).
    fn judge(&mut self, listed: Vec<ListedNode>, own: &str) -> Vec<ClusterNode> {
        let now = Instant::now();
        let mut seen = HashMap::with_capacity(listed.len());
        let mut nodes = Vec::with_capacity(listed.len());
        for node in listed {
            let record = node.record;
            if record.id == own {
                continue;
            }
            let changed = match self.seen.get(&record.id) {
                Some(&(revision, at)) if revision == node.revision => at,
                // Rewritten since the last reading.
                Some(_) => now,
                // First seen: as old as NATS says it is.
                None => now.checked_sub(node.age).unwrap_or(now),
            };
            let quiet = now.saturating_duration_since(changed);
            seen.insert(record.id.clone(), (node.revision, changed));
            nodes.push(ClusterNode {
                record,
                down: quiet >= DOWN_AFTER,
                this: false,
                seen_secs_ago: quiet.as_secs(),
            });
        }
        self.seen = seen;
        nodes
    }
}

/// What the node knows now, through narrow reads: its metrics text, its
/// connection index, its transports' table, its plugin registry, and in a
/// cluster the other nodes' records.
async fn gather(node: &Arc<Node>, liveness: &mut Liveness) -> Inputs {
    let samples = crate::metrics::render()
        .map(|text| prom::parse(&text, "switchboard_"))
        .unwrap_or_default();
    let mut connections: BTreeMap<(String, String), HubConnections> = BTreeMap::new();
    for handle in node.router.local_connections() {
        let hub = connections
            .entry((handle.hub.tenant.to_string(), handle.hub.hub.to_string()))
            .or_default();
        hub.total += 1;
        let protocol = match handle.protocol {
            Protocol::Json => "json",
            Protocol::MessagePack => "messagepack",
        };
        *hub.protocols.entry(protocol).or_default() += 1;
    }
    for (key, (sse, long_polling)) in node.http_connections.http_transports_by_hub() {
        if let Some(hub) = connections.get_mut(&key) {
            hub.transports.insert("ServerSentEvents", sse);
            hub.transports.insert("LongPolling", long_polling);
        }
    }
    for hub in connections.values_mut() {
        let others: usize = hub.transports.values().sum();
        hub.transports
            .insert("WebSockets", hub.total.saturating_sub(others));
    }
    let mut plugins = Vec::new();
    for tenant in node.tenants.names() {
        let hubs = node.registry.listing(&tenant).await;
        plugins.push((tenant, hubs));
    }
    let facts = NodeFacts {
        id: node
            .cluster
            .as_ref()
            .map_or_else(|| "single".to_owned(), |c| c.node_id().to_owned()),
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: node.uptime().as_secs(),
        ready: node.is_ready(),
        draining: node.is_draining(),
        cluster: node.cluster.is_some(),
        nats_connected: node.cluster.as_ref().map(|c| c.is_connected()),
        connections: node.router.connection_count(),
    };
    let others = match &node.cluster {
        None => Ok(Vec::new()),
        Some(cluster) => {
            match tokio::time::timeout(REGISTRY_WAIT, cluster.registry().nodes()).await {
                Ok(Ok(listed)) => Ok(liveness.judge(listed, &facts.id)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the cluster registry did not answer in time".to_owned()),
            }
        }
    };
    Inputs {
        now_ms: now_ms(),
        node: facts,
        samples,
        connections,
        plugins,
        others,
    }
}
