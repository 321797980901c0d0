//! What the NATS backplane counts: what it sent, what it could not send,
//! what it received, and what it knows it missed.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one node's backplane, shared by its tasks.
#[derive(Debug, Default)]
pub struct Stats {
    /// Envelopes stored in a stream (acknowledged by JetStream).
    pub published: AtomicU64,
    /// Envelopes JetStream refused or did not acknowledge in time: lost.
    pub publish_failed: AtomicU64,
    /// Envelopes not sent because NATS was disconnected: lost.
    pub dropped_disconnected: AtomicU64,
    /// Envelopes not sent because the publish queue was full: lost.
    pub dropped_queue_full: AtomicU64,
    /// Envelopes from other nodes handed to the router.
    pub received: AtomicU64,
    /// This node's own envelopes, read back and ignored.
    pub own_skipped: AtomicU64,
    /// Stream messages seen twice (after a consumer was recreated) and ignored.
    pub duplicates: AtomicU64,
    /// Jumps in a stream's sequence: messages this node never saw.
    pub gaps: AtomicU64,
    /// Messages inside those jumps.
    pub missed: AtomicU64,
    /// Messages that were not valid envelopes.
    pub undecodable: AtomicU64,
    /// Times the connection to NATS was lost.
    pub disconnects: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub published: u64,
    pub publish_failed: u64,
    pub dropped_disconnected: u64,
    pub dropped_queue_full: u64,
    pub received: u64,
    pub own_skipped: u64,
    pub duplicates: u64,
    pub gaps: u64,
    pub missed: u64,
    pub undecodable: u64,
    pub disconnects: u64,
}

impl StatsSnapshot {
    /// Envelopes this node could not hand to the cluster.
    pub fn undelivered(&self) -> u64 {
        self.publish_failed + self.dropped_disconnected + self.dropped_queue_full
    }
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            published: get(&self.published),
            publish_failed: get(&self.publish_failed),
            dropped_disconnected: get(&self.dropped_disconnected),
            dropped_queue_full: get(&self.dropped_queue_full),
            received: get(&self.received),
            own_skipped: get(&self.own_skipped),
            duplicates: get(&self.duplicates),
            gaps: get(&self.gaps),
            missed: get(&self.missed),
            undecodable: get(&self.undecodable),
            disconnects: get(&self.disconnects),
        }
    }
}

/// Adds one to `counter`; true when the new count is worth a log line
/// (1, 2, 4, 8, ...), so a long outage logs a few lines, not millions.
pub fn bump(counter: &AtomicU64) -> bool {
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    n.is_power_of_two()
}

/// The backplane's metrics for one partition (label `partition`, bounded by
/// `nats.partitions`), recorded through the `metrics` facade. The handles are
/// made once, so recording costs no label lookups.
#[derive(Debug, Clone)]
pub struct PartitionMetrics {
    /// Envelopes JetStream stored.
    pub published: metrics::Counter,
    /// Envelopes from other nodes handed to the router.
    pub received: metrics::Counter,
    /// Jumps in the stream sequence.
    pub gaps: metrics::Counter,
    /// Messages inside those jumps: never seen by this node.
    pub lost: metrics::Counter,
    /// Stream messages seen twice and skipped.
    pub duplicates: metrics::Counter,
    /// Envelopes for other nodes that were not stored, by reason.
    pub undeliverable_disconnected: metrics::Counter,
    pub undeliverable_queue_full: metrics::Counter,
    pub undeliverable_failed: metrics::Counter,
    /// Seconds from JetStream storing a message to this node reading it.
    pub lag: metrics::Histogram,
    /// The stream sequence of the last message read: this node's cursor.
    pub sequence: metrics::Gauge,
}

impl PartitionMetrics {
    pub fn new(partition: u32) -> PartitionMetrics {
        let p = partition.to_string();
        let undeliverable = |reason: &'static str| {
            metrics::counter!("switchboard_backplane_undeliverable_total",
                "partition" => p.clone(), "reason" => reason)
        };
        PartitionMetrics {
            published: metrics::counter!("switchboard_backplane_published_total", "partition" => p.clone()),
            received: metrics::counter!("switchboard_backplane_received_total", "partition" => p.clone()),
            gaps: metrics::counter!("switchboard_backplane_gaps_total", "partition" => p.clone()),
            lost: metrics::counter!("switchboard_backplane_lost_messages_total", "partition" => p.clone()),
            duplicates: metrics::counter!("switchboard_backplane_duplicates_total", "partition" => p.clone()),
            undeliverable_disconnected: undeliverable("disconnected"),
            undeliverable_queue_full: undeliverable("queue_full"),
            undeliverable_failed: undeliverable("not_stored"),
            lag: metrics::histogram!("switchboard_backplane_lag_seconds", "partition" => p.clone()),
            sequence: metrics::gauge!("switchboard_backplane_stream_sequence", "partition" => p),
        }
    }
}
