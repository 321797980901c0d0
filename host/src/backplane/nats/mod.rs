//! The cluster backplane on NATS JetStream.
//!
//! - `subject`: names on the wire; every user-chosen name is base64url, so
//!   no name forms a wildcard or leaves its tenant.
//! - `codec`: envelopes as MessagePack; arguments stay JSON text.
//! - `outbox` and `publisher`: one bounded queue and one task per partition
//!   publish in order, wait out NATS outages, retry with message ids that
//!   JetStream deduplicates, and settle each sender's receipt when the
//!   envelope is stored (or refused).
//! - `subscriber`: one ordered consumer per partition per node; stream
//!   sequences detect gaps and duplicates, and a lost consumer is recreated
//!   from the last sequence read, so an outage is recovered from the stream.
//! - `kv`: a tenant's plugin key-value store as a JetStream KV bucket.
//! - `registry`: the cluster's connections and users, in a KV bucket whose
//!   entries expire unless their node refreshes them.
//!
//! Every node reads every partition (targets are resolved by each node
//! against its own connections); partitions spread the streams' load over
//! the NATS cluster, and one hub's envelopes always share a partition, so
//! one sender's envelopes to one target stay in order.

mod codec;
pub mod durable;
pub mod kv;
mod outbox;
pub mod presence;
mod publisher;
pub mod registry;
mod sequence;
mod stats;
pub mod subject;
mod subscriber;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Backplane, Envelope, EnvelopeKind, Inbox, PublishError, Receipt};
use crate::config::NatsConfig;

pub use codec::CodecError;
pub use sequence::Cursor;
pub use stats::{Stats, StatsSnapshot};
use subject::Names;

/// The header naming the node that published an envelope.
const NODE_HEADER: &str = "Sb-Node";
/// Set on an envelope written under a [`crate::backplane::Fence`]: its own
/// node delivers it when reading it back, like another node's.
const FENCED_HEADER: &str = "Sb-Fenced";

/// Why the NATS backplane could not start.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// No server of the configured list accepted the connection.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The configured server list (`nats.url`), as given.
        url: String,
        /// What the client reported.
        source: async_nats::ConnectError,
    },
}

/// What a node's backplane tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub names: Names,
    pub config: NatsConfig,
    /// This node's id, in the `Sb-Node` header of what it publishes.
    pub node_id: String,
    pub stats: Arc<Stats>,
    /// Per-partition metrics, indexed by partition.
    pub metrics: Vec<stats::PartitionMetrics>,
    /// The last cursor applied from each partition.
    pub cursors: parking_lot::Mutex<Vec<Option<u64>>>,
    pub link: Arc<Link>,
    pub cancel: CancellationToken,
    /// The URL other nodes reach this node's HTTP at, once known.
    pub advertise: std::sync::OnceLock<String>,
    /// Whether this node's URL is in the registry (other nodes can forward to it).
    pub announced: std::sync::atomic::AtomicBool,
    /// Wakes the registry task when the advertised URL is set.
    pub registry_wake: tokio::sync::Notify,
    /// The registry bucket, once opened.
    pub registry_store: parking_lot::Mutex<Option<async_nats::jetstream::kv::Store>>,
    /// When the backplane started (the node's uptime, as the registry tells it).
    pub started: std::time::Instant,
    /// Whether the node is draining (it says so in its registry record).
    pub draining: std::sync::atomic::AtomicBool,
    /// Whether the node left the registry (it writes no more entries).
    pub left: std::sync::atomic::AtomicBool,
    /// Held by the registry task while it writes, and by a leave.
    pub registry_writing: tokio::sync::Mutex<()>,
    /// Other nodes' URLs as last read from the registry, and when.
    pub node_urls:
        parking_lot::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
}

/// The state of the connection to NATS, as the subscribers see it.
#[derive(Debug)]
pub(crate) struct Link {
    /// Whether each partition's consumer is reading now.
    pub live: Vec<std::sync::atomic::AtomicBool>,
    /// Counts reconnections: consumers restart on each, since the server may
    /// have lost them (a restarted NATS forgets ephemeral consumers).
    pub reconnects: tokio::sync::watch::Sender<u64>,
    /// Since when NATS has been disconnected, if it is.
    pub down_since: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl Link {
    /// How long NATS has been disconnected, if it is.
    pub(crate) fn down_for(&self) -> Option<Duration> {
        self.down_since.lock().map(|since| since.elapsed())
    }
}

impl Shared {
    pub(crate) fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// A node's NATS backplane. Dropping it stops its tasks.
#[derive(Debug)]
pub struct NatsBackplane {
    shared: Arc<Shared>,
    lanes: Vec<Arc<publisher::Lane>>,
    /// The longest a sender waits for a receipt (a backstop: the publisher
    /// settles each one within the queue's age limit plus an ack timeout).
    receipt_wait: Duration,
    /// Durable resume's sessions bucket, opened on first use.
    sessions: kv::LazyKv,
}

impl NatsBackplane {
    /// Connects to NATS and starts publishing and consuming. The node starts
    /// even while NATS is unreachable; it connects (and creates the streams)
    /// as soon as NATS answers.
    pub async fn connect(config: &NatsConfig) -> Result<Arc<NatsBackplane>, NatsError> {
        let node_id = format!("{:016x}", rand::random::<u64>());
        let stats = Arc::new(Stats::default());
        let events = stats.clone();
        let partitions = config.partitions.max(1);
        let link = Arc::new(Link {
            live: (0..partitions).map(|_| Default::default()).collect(),
            reconnects: tokio::sync::watch::Sender::new(0),
            down_since: parking_lot::Mutex::new(None),
        });
        let events_link = link.clone();
        let url = config.url.clone();
        let options = async_nats::ConnectOptions::new()
            .name(format!("switchboard-{node_id}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis((100 * attempt as u64).clamp(100, 2000))
            })
            .event_callback(move |event| {
                let stats = events.clone();
                let link = events_link.clone();
                async move {
                    match event {
                        async_nats::Event::Disconnected => {
                            stats::bump(&stats.disconnects);
                            metrics::counter!("switchboard_backplane_disconnects_total")
                                .increment(1);
                            for live in &link.live {
                                live.store(false, std::sync::atomic::Ordering::Relaxed);
                            }
                            link.down_since
                                .lock()
                                .get_or_insert_with(std::time::Instant::now);
                            warn!("NATS disconnected; local connections are still served");
                        }
                        async_nats::Event::Connected => {
                            *link.down_since.lock() = None;
                            link.reconnects.send_modify(|n| *n += 1);
                            info!("NATS connected");
                        }
                        other => info!(event = %other, "NATS event"),
                    }
                }
            });
        // Every server of the list, so the client fails over between them.
        let servers: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let client = options
            .connect(servers)
            .await
            .map_err(|source| NatsError::Connect { url, source })?;
        let js = jetstream::new(client.clone());
        let shared = Arc::new(Shared {
            client,
            js,
            names: Names::new(&config.prefix),
            config: config.clone(),
            node_id,
            stats,
            metrics: (0..partitions).map(stats::PartitionMetrics::new).collect(),
            cursors: parking_lot::Mutex::new(vec![None; partitions as usize]),
            link,
            cancel: CancellationToken::new(),
            advertise: std::sync::OnceLock::new(),
            announced: std::sync::atomic::AtomicBool::new(false),
            registry_wake: tokio::sync::Notify::new(),
            registry_store: parking_lot::Mutex::new(None),
            started: std::time::Instant::now(),
            draining: std::sync::atomic::AtomicBool::new(false),
            left: std::sync::atomic::AtomicBool::new(false),
            registry_writing: tokio::sync::Mutex::new(()),
            node_urls: Default::default(),
        });
        let limits = outbox::Limits {
            max_envelopes: config.publish_queue.max(1),
            max_bytes: config.queue_max_bytes.max(1),
            max_age: config.queue_max_age(),
        };
        let mut lanes = Vec::with_capacity(partitions as usize);
        for partition in 0..partitions {
            let lane = Arc::new(publisher::Lane::new(limits));
            lanes.push(lane.clone());
            tokio::spawn(publisher::run(shared.clone(), partition, lane));
        }
        info!(node = %shared.node_id, url = %config.url, partitions, "NATS backplane started");
        let receipt_wait = limits.max_age + publisher::ACK_TIMEOUT + Duration::from_secs(2);
        let sessions = kv::LazyKv::new(shared.js.clone(), durable::sessions_config(&shared));
        Ok(Arc::new(NatsBackplane {
            shared,
            lanes,
            receipt_wait,
            sessions,
        }))
    }

    /// Starts reading every partition, each applying what it reads to
    /// `local` on its own task, in the partition's order. Call it once.
    pub fn start_consumers(&self, local: std::sync::Weak<dyn super::LocalIndex>) {
        self.start_partitions(&subscriber::Sink::Local(local));
    }

    /// Starts reading every partition into a queue instead (tests that look
    /// at what arrives). Call it once, instead of `start_consumers`.
    pub fn subscribe(&self) -> Inbox {
        let (tx, inbox) = tokio::sync::mpsc::unbounded_channel();
        self.start_partitions(&subscriber::Sink::Queue(tx));
        inbox
    }

    fn start_partitions(&self, sink: &subscriber::Sink) {
        for partition in 0..self.shared.config.partitions.max(1) {
            tokio::spawn(subscriber::run(
                self.shared.clone(),
                partition,
                sink.clone(),
            ));
        }
    }

    /// Whether NATS is connected now.
    pub fn is_connected(&self) -> bool {
        self.shared.is_connected()
    }

    /// Whether NATS is connected and every partition is being read: the
    /// node reaches, and is reached by, the rest of the cluster. Once the node
    /// advertises a URL, also: other nodes can find it to forward requests.
    pub fn is_ready(&self) -> bool {
        self.is_connected()
            && self
                .shared
                .link
                .live
                .iter()
                .all(|live| live.load(std::sync::atomic::Ordering::Relaxed))
            && (self.shared.advertise.get().is_none()
                || self
                    .shared
                    .announced
                    .load(std::sync::atomic::Ordering::Acquire))
    }

    /// Sets the URL other nodes forward requests for this node's connections
    /// to, and announces it in the registry (once; later calls are ignored).
    pub fn advertise(&self, url: String) {
        if self.shared.advertise.set(url).is_ok() {
            self.shared.registry_wake.notify_one();
        }
    }

    /// The URL another node advertises, if it is registered now.
    pub async fn node_url(&self, node: &str) -> Option<String> {
        self.registry().node_url(node).await
    }

    /// Waits (at most `timeout`) until `is_ready`; false if it never was.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// This node's id on the wire.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// The backplane's counters as they are now.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The last cursor this node applied from each partition that it read.
    pub fn cursors(&self) -> Vec<Cursor> {
        self.shared
            .cursors
            .lock()
            .iter()
            .enumerate()
            .filter_map(|(p, seq)| {
                seq.map(|sequence| Cursor {
                    partition: p as u32,
                    sequence,
                })
            })
            .collect()
    }

    /// The backplane partition (stream) of `hub`.
    pub fn partition_of(&self, hub: &crate::address::HubKey) -> u32 {
        subject::partition(hub, self.lanes.len() as u32)
    }

    /// The tenant's plugin key-value store in this cluster.
    pub fn kv_store(&self, tenant: &str) -> kv::JetStreamKv {
        kv::JetStreamKv::new(
            self.shared.js.clone(),
            self.shared.names.kv_bucket(tenant),
            self.shared.config.replicas,
        )
    }

    /// Starts keeping this node's connections in the cluster registry.
    pub fn start_registry(&self, local: std::sync::Weak<dyn super::LocalIndex>) {
        tokio::spawn(registry::run(self.shared.clone(), local));
    }

    /// Starts answering other nodes' questions about this node's groups.
    pub fn start_presence(&self, local: std::sync::Weak<dyn super::LocalIndex>) {
        tokio::spawn(presence::answer(self.shared.clone(), local));
    }

    /// Whether another node holds a member of `group` (see [`presence`]).
    pub async fn group_elsewhere(
        &self,
        hub: &crate::address::HubKey,
        group: &str,
    ) -> Result<bool, presence::PresenceError> {
        presence::group_elsewhere(&self.shared, hub, group, None).await
    }

    /// Whether another node holds a connection of `user` in `group`.
    pub async fn user_in_group_elsewhere(
        &self,
        hub: &crate::address::HubKey,
        user: &str,
        group: &str,
    ) -> Result<bool, presence::PresenceError> {
        presence::group_elsewhere(&self.shared, hub, group, Some(user)).await
    }

    /// Marks the node draining in its registry record from now on (written at once).
    pub fn set_draining(&self) {
        self.shared
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
        self.shared.registry_wake.notify_one();
    }

    /// Leaves the cluster registry: the other nodes stop listing this one and
    /// forwarding to it now. False when NATS did not confirm (the entries
    /// then expire after `registry_ttl_secs`).
    pub async fn leave(&self) -> bool {
        registry::leave(&self.shared).await
    }

    /// A reader of the cluster registry.
    pub fn registry(&self) -> registry::Registry {
        registry::Registry::new(self.shared.clone())
    }

    /// The NATS client, for tests and tools.
    pub fn client(&self) -> &async_nats::Client {
        &self.shared.client
    }
}

impl Backplane for NatsBackplane {
    /// Queues the envelope for its partition's publisher; the receipt is
    /// settled when JetStream stored it, or refused (queue full, NATS away
    /// for longer than the queue's age limit, not encodable).
    fn publish(&self, envelope: Envelope) -> Receipt {
        let partition = subject::partition(&envelope.hub, self.lanes.len() as u32);
        let span = tracing::debug_span!(
            "backplane.publish",
            tenant = %envelope.hub.tenant,
            hub = %envelope.hub.hub,
            partition,
            bytes = tracing::field::Empty,
        )
        .entered();
        let Some(metrics) = self.shared.metrics.get(partition as usize) else {
            return Receipt::refused(PublishError::Stopped);
        };
        let stats = &self.shared.stats;
        let payload = match codec::encode(&envelope.kind) {
            Ok(payload) => {
                span.record("bytes", payload.len());
                Bytes::from(payload)
            }
            Err(e) => {
                warn!(hub = %envelope.hub, error = %e, "cannot encode envelope");
                let error = PublishError::Encode(e.to_string());
                publisher::refuse(stats, metrics, partition, None, error.clone());
                return Receipt::refused(error);
            }
        };
        let Some(lane) = self.lanes.get(partition as usize) else {
            return Receipt::refused(PublishError::Stopped);
        };
        let names = &self.shared.names;
        // Only the owner applies a durable connection's own records live.
        let subject = match &envelope.kind {
            EnvelopeKind::Direct { .. } | EnvelopeKind::Receipt { .. } => {
                names.owned_subject(partition, &envelope.hub, &self.shared.node_id)
            }
            EnvelopeKind::Claim { connection, .. } => {
                names.claim_subject(partition, &envelope.hub, connection)
            }
            _ => names.subject(partition, &envelope.hub),
        };
        let renews = matches!(envelope.kind, EnvelopeKind::Claim { .. });
        let condition = envelope.fence.map(|fence| publisher::Condition {
            claim_subject: names.claim_subject(partition, &envelope.hub, &fence.connection),
            last_claim: fence.after,
            renews,
        });
        let (receipt, settle) = Receipt::pending(self.receipt_wait);
        match publisher::enqueue(
            &self.shared,
            lane,
            partition,
            subject,
            payload,
            condition,
            settle,
        ) {
            Ok(()) => receipt,
            Err(error) => {
                publisher::refuse(stats, metrics, partition, None, error.clone());
                Receipt::refused(error)
            }
        }
    }
}

impl Drop for NatsBackplane {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
