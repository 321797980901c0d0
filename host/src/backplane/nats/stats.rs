//! What the NATS backplane counts: what it sent, what it could not send,
//! what it received, and what it knows it missed.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one node's backplane, shared by its tasks.
#[derive(Debug, Default)]
pub struct Stats {
    /// Envelopes stored in a stream (acknowledged by JetStream).
    pub published: AtomicU64,
    /// Of those, stored after waiting for NATS or after a retry.
    pub published_late: AtomicU64,
    /// Publish attempts after the first (same message id).
    pub retried: AtomicU64,
    /// Acks saying JetStream had the envelope already (a retry deduplicated).
    pub deduplicated: AtomicU64,
    /// Acks that failed or timed out (the envelope is published again).
    pub ack_failures: AtomicU64,
    /// Envelopes stored while one published before them was not yet.
    pub reordered: AtomicU64,
    /// Envelopes queued while NATS was disconnected.
    pub queued_disconnected: AtomicU64,
    /// Envelopes refused (their sender was told), by reason.
    pub refused_queue_full: AtomicU64,
    /// Refused as [`PublishError::Expired`](crate::backplane::PublishError::Expired).
    pub refused_expired: AtomicU64,
    /// Refused as [`PublishError::Unavailable`](crate::backplane::PublishError::Unavailable).
    pub refused_unavailable: AtomicU64,
    /// Refused for another reason: encoding, shutdown, or fenced.
    pub refused_other: AtomicU64,
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
    /// Lag of the messages read (see [`Lag`]).
    pub lag: Lag,
}

/// Upper bounds (seconds) of the lag buckets this node reports to the cluster.
pub(super) const LAG_BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// How long messages took from JetStream to this node, in fixed buckets (the
/// last one is everything beyond [`LAG_BOUNDS`]): cumulative counts that a
/// reader subtracts from an earlier reading, as with a Prometheus histogram.
#[derive(Debug, Default)]
pub struct Lag {
    counts: [AtomicU64; LAG_BOUNDS.len() + 1],
}

impl Lag {
    pub fn record(&self, seconds: f64) {
        let i = LAG_BOUNDS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(LAG_BOUNDS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative `(le, count)` pairs, `+Inf` last.
    pub fn buckets(&self) -> Vec<(f64, f64)> {
        let mut total = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                total += c.load(Ordering::Relaxed);
                let le = LAG_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY);
                (le, total as f64)
            })
            .collect()
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Envelopes stored in a stream.
    pub published: u64,
    /// Of those, stored after waiting for NATS or after a retry.
    pub published_late: u64,
    /// Publish attempts after the first.
    pub retried: u64,
    /// Retries JetStream had stored already.
    pub deduplicated: u64,
    /// Acks that failed or timed out.
    pub ack_failures: u64,
    /// Envelopes stored while one published before them was not yet.
    pub reordered: u64,
    /// Envelopes queued while NATS was disconnected.
    pub queued_disconnected: u64,
    /// Refused: the partition's publish queue was full.
    pub refused_queue_full: u64,
    /// Refused: waited longer than `nats.queue_max_age_ms`.
    pub refused_expired: u64,
    /// Refused: NATS had been down longer than `nats.queue_max_age_ms`.
    pub refused_unavailable: u64,
    /// Refused for another reason: encoding, shutdown, or fenced.
    pub refused_other: u64,
    /// Envelopes from other nodes handed to the router.
    pub received: u64,
    /// This node's own envelopes, read back and ignored.
    pub own_skipped: u64,
    /// Stream messages seen twice and ignored.
    pub duplicates: u64,
    /// Jumps in a stream's sequence.
    pub gaps: u64,
    /// Messages inside those jumps, never seen by this node.
    pub missed: u64,
    /// Messages that were not valid envelopes.
    pub undecodable: u64,
    /// Times the connection to NATS was lost.
    pub disconnects: u64,
}

impl StatsSnapshot {
    /// Envelopes this node refused to other nodes (each sender was told).
    pub fn refused(&self) -> u64 {
        self.refused_queue_full
            + self.refused_expired
            + self.refused_unavailable
            + self.refused_other
    }
}

impl Stats {
    /// The counters as they are now (each read on its own, not as one moment).
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            published: get(&self.published),
            published_late: get(&self.published_late),
            retried: get(&self.retried),
            deduplicated: get(&self.deduplicated),
            ack_failures: get(&self.ack_failures),
            reordered: get(&self.reordered),
            queued_disconnected: get(&self.queued_disconnected),
            refused_queue_full: get(&self.refused_queue_full),
            refused_expired: get(&self.refused_expired),
            refused_unavailable: get(&self.refused_unavailable),
            refused_other: get(&self.refused_other),
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
pub(super) fn bump(counter: &AtomicU64) -> bool {
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    n.is_power_of_two()
}

/// The backplane's metrics for one partition (label `partition`, bounded by
/// `nats.partitions`), recorded through the `metrics` facade. The handles are
/// made once, so recording costs no label lookups.
#[derive(Debug, Clone)]
pub(crate) struct PartitionMetrics {
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
    /// Envelopes stored after waiting for NATS or after a retry.
    pub published_late: metrics::Counter,
    /// Publish attempts after the first.
    pub retries: metrics::Counter,
    /// Envelopes stored while one before them was not yet.
    pub reordered: metrics::Counter,
    /// Envelopes queued while NATS was disconnected.
    pub queued_disconnected: metrics::Counter,
    /// Bytes waiting for NATS or for their ack.
    pub queue_bytes: metrics::Gauge,
    /// Envelopes for other nodes refused (the sender was told), by reason.
    pub refused_queue_full: metrics::Counter,
    pub refused_expired: metrics::Counter,
    pub refused_unavailable: metrics::Counter,
    pub refused_other: metrics::Counter,
    /// Seconds from JetStream storing a message to this node reading it.
    pub lag: metrics::Histogram,
    /// The stream sequence of the last message read: this node's cursor.
    pub sequence: metrics::Gauge,
}

impl PartitionMetrics {
    pub(crate) fn new(partition: u32) -> PartitionMetrics {
        let p = partition.to_string();
        let refused = |reason: &'static str| {
            metrics::counter!("switchboard_backplane_refused_total",
                "partition" => p.clone(), "reason" => reason)
        };
        PartitionMetrics {
            published: metrics::counter!("switchboard_backplane_published_total", "partition" => p.clone()),
            received: metrics::counter!("switchboard_backplane_received_total", "partition" => p.clone()),
            gaps: metrics::counter!("switchboard_backplane_gaps_total", "partition" => p.clone()),
            lost: metrics::counter!("switchboard_backplane_lost_messages_total", "partition" => p.clone()),
            duplicates: metrics::counter!("switchboard_backplane_duplicates_total", "partition" => p.clone()),
            published_late: metrics::counter!("switchboard_backplane_published_late_total", "partition" => p.clone()),
            retries: metrics::counter!("switchboard_backplane_publish_retries_total", "partition" => p.clone()),
            reordered: metrics::counter!("switchboard_backplane_reordered_total", "partition" => p.clone()),
            queued_disconnected: metrics::counter!("switchboard_backplane_queued_disconnected_total", "partition" => p.clone()),
            queue_bytes: metrics::gauge!("switchboard_backplane_queue_bytes", "partition" => p.clone()),
            refused_queue_full: refused("queue_full"),
            refused_expired: refused("expired"),
            refused_unavailable: refused("unavailable"),
            refused_other: refused("other"),
            lag: metrics::histogram!("switchboard_backplane_lag_seconds", "partition" => p.clone()),
            sequence: metrics::gauge!("switchboard_backplane_stream_sequence", "partition" => p),
        }
    }
}
