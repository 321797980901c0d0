//! One partition's publisher: envelopes go out in the order they were
//! queued, over one connection, so JetStream stores them in that order, and
//! each sender's receipt is settled only when JetStream acknowledged the
//! envelope (or it was refused).
//!
//! - While NATS is disconnected envelopes wait in the partition's
//!   [`Outbox`] (bounded in envelopes, bytes and age) and are published in
//!   order once it is back; past the age limit they are refused, and their
//!   senders told.
//! - Every envelope carries a `Nats-Msg-Id`, and the streams' duplicate
//!   window covers the queue's age limit, so publishing an envelope again is
//!   harmless: JetStream stores it once.
//! - When an acknowledgement fails or times out, or the connection is
//!   re-established (acks in flight may never come), nothing new is sent
//!   until every ack in flight is in; then everything unacknowledged is
//!   published again, in its order. What was stored is deduplicated, what
//!   was not is stored now, after what was. An envelope stored while one
//!   before it in the window was not would be out of order: that can only
//!   happen when the stream's leader changes mid-window, and it is counted
//!   and logged.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::outbox::{Limits, Outbox, Queued};
use super::stats::{PartitionMetrics, Stats, bump};
use super::{FENCED_HEADER, NODE_HEADER, Shared};
use crate::backplane::receipt::Settle;
use crate::backplane::{ClaimMark, PublishError};

/// Envelopes published but not yet acknowledged, per partition.
const MAX_IN_FLIGHT: usize = 256;
/// How long JetStream may take to acknowledge (the client's request timeout).
pub(super) const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Which subject JetStream's expected last subject sequence is about
/// (nats-server 2.11 and later).
const EXPECTED_SUBJECT_HEADER: &str = "Nats-Expected-Last-Subject-Sequence-Subject";
/// How often a waiting publisher looks at the clock and the connection.
const TICK: Duration = Duration::from_millis(100);

/// An encoded envelope on its way to a partition's stream.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub subject: String,
    pub payload: Bytes,
    /// `Nats-Msg-Id`: the same on every attempt.
    pub id: String,
    pub settle: Settle,
    /// Queued while NATS was disconnected.
    pub waited: bool,
    pub attempts: u32,
    /// Stored only if the claim subject's last sequence is this one (see
    /// [`crate::backplane::Fence`]).
    pub condition: Option<Condition>,
}

/// JetStream's check before it stores a fenced envelope.
#[derive(Debug, Clone)]
pub(super) struct Condition {
    pub claim_subject: String,
    /// Read when the envelope is sent.
    pub last_claim: ClaimMark,
    /// The envelope is the owner's claim renewed: nothing more is sent until
    /// it is stored, and where it is stored is the condition from then on.
    pub renews: bool,
}

/// A partition's queue, shared by `publish` and the partition's task.
#[derive(Debug)]
pub(super) struct Lane {
    pub outbox: parking_lot::Mutex<Outbox<Outgoing>>,
    pub wake: Notify,
    /// Numbers the lane's envelopes for their message ids.
    next_id: AtomicU64,
}

impl Lane {
    pub(super) fn new(limits: Limits) -> Lane {
        Lane {
            outbox: parking_lot::Mutex::new(Outbox::new(limits)),
            wake: Notify::new(),
            next_id: AtomicU64::new(0),
        }
    }

    /// A message id unique to this node, partition and envelope.
    pub(super) fn message_id(&self, node: &str, partition: u32) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{node}-{partition}-{n}")
    }
}

/// Counts a refusal and tells the sender.
pub(super) fn refuse(
    stats: &Stats,
    metrics: &PartitionMetrics,
    partition: u32,
    settle: Option<Settle>,
    error: PublishError,
) {
    let (counter, metric) = match error {
        PublishError::QueueFull { .. } => (&stats.refused_queue_full, &metrics.refused_queue_full),
        PublishError::Expired(_) => (&stats.refused_expired, &metrics.refused_expired),
        PublishError::Unavailable(_) => (&stats.refused_unavailable, &metrics.refused_unavailable),
        PublishError::Encode(_) | PublishError::Stopped | PublishError::Fenced => {
            (&stats.refused_other, &metrics.refused_other)
        }
    };
    metric.increment(1);
    if bump(counter) {
        warn!(partition, error = %error, refused = counter.load(Ordering::Relaxed),
            "envelope for other nodes refused; its sender is told");
    }
    if let Some(settle) = settle {
        let _ = settle.send(Err(error));
    }
}

pub(super) async fn run(shared: Arc<Shared>, partition: u32, lane: Arc<Lane>) {
    let Some(metrics) = shared.metrics.get(partition as usize).cloned() else {
        return;
    };
    let mut reconnects = shared.link.reconnects.subscribe();
    reconnects.borrow_and_update();
    let mut publisher = Publisher {
        shared: &shared,
        lane: &lane,
        metrics: &metrics,
        partition,
        in_flight: VecDeque::new(),
        acks: FuturesOrdered::new(),
        failed: Vec::new(),
        failures: 0,
        retry_at: None,
        late: 0,
    };
    loop {
        publisher.housekeeping();
        let sending = publisher.may_send();
        if sending {
            publisher.send_window().await;
        }
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return,
            _ = reconnects.changed() => publisher.reconnected(),
            Some(ack) = publisher.acks.next(), if !publisher.acks.is_empty() => publisher.acked(ack),
            () = lane.wake.notified(), if sending => {}
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

type Ack = Result<
    async_nats::jetstream::publish::PublishAck,
    async_nats::jetstream::context::PublishError,
>;

struct Publisher<'a> {
    shared: &'a Shared,
    lane: &'a Lane,
    metrics: &'a PartitionMetrics,
    partition: u32,
    /// Published, acks awaited, in order (matching `acks`).
    in_flight: VecDeque<Queued<Outgoing>>,
    acks: FuturesOrdered<<PublishAckFuture as std::future::IntoFuture>::IntoFuture>,
    /// Not acknowledged, in order: published again once `acks` is empty.
    failed: Vec<Queued<Outgoing>>,
    /// Consecutive rounds that failed (for the pause before the next).
    failures: u32,
    retry_at: Option<Instant>,
    /// Envelopes stored late (after waiting or retrying) since the last log line.
    late: u64,
}

impl Publisher<'_> {
    /// Refuses an envelope of this lane: counted, and its sender told.
    fn refuse_queued(&self, queued: Queued<Outgoing>, error: PublishError) {
        let settle = Some(queued.item.settle);
        refuse(
            &self.shared.stats,
            self.metrics,
            self.partition,
            settle,
            error,
        );
    }

    /// Requeues what failed once the window is empty, refuses what is too
    /// old, and logs the end of a backlog.
    fn housekeeping(&mut self) {
        let now = Instant::now();
        if self.acks.is_empty() && !self.failed.is_empty() {
            let mut failed = std::mem::take(&mut self.failed);
            // In the order they were queued: one that could not be sent is
            // listed before those in flight whose acks failed after it.
            failed.sort_by_key(|q| q.queued);
            let count = failed.len();
            self.lane.outbox.lock().requeue(failed.into_iter());
            self.failures = self.failures.saturating_add(1);
            let pause = Duration::from_millis((100 * u64::from(self.failures)).min(1000));
            self.retry_at = Some(now + pause);
            debug!(
                partition = self.partition,
                count, "unacknowledged envelopes queued to be published again"
            );
        }
        let (expired, bytes, empty, max_age) = {
            let mut outbox = self.lane.outbox.lock();
            let expired = outbox.expire(now);
            (
                expired,
                outbox.bytes(),
                outbox.is_empty(),
                outbox.limits().max_age,
            )
        };
        self.metrics.queue_bytes.set(bytes as f64);
        for queued in expired {
            self.refuse_queued(queued, PublishError::Expired(max_age.as_millis() as u64));
        }
        if empty && self.acks.is_empty() && self.late > 0 {
            info!(
                partition = self.partition,
                published_late = self.late,
                "envelopes that waited for NATS are stored; the queue is empty"
            );
            self.late = 0;
        }
    }

    fn may_send(&self) -> bool {
        self.failed.is_empty()
            && self.retry_at.is_none_or(|at| Instant::now() >= at)
            && self.shared.is_connected()
    }

    /// A renewed claim is in flight: what follows is sent under it, once
    /// stored. Nothing is sent behind a renewal, so it can only be the last.
    fn renewing(&self) -> bool {
        self.in_flight
            .back()
            .and_then(|q| q.item.condition.as_ref())
            .is_some_and(|c| c.renews)
    }

    /// Publishes queued envelopes until the window is full or the queue empty.
    async fn send_window(&mut self) {
        self.retry_at = None;
        while self.acks.len() < MAX_IN_FLIGHT && !self.renewing() {
            let Some(mut next) = self.lane.outbox.lock().pop() else {
                return;
            };
            next.item.attempts += 1;
            if next.item.attempts > 1 {
                self.metrics.retries.increment(1);
                self.shared.stats.retried.fetch_add(1, Ordering::Relaxed);
            }
            let mut headers = HeaderMap::new();
            headers.insert(NODE_HEADER, self.shared.node_id.as_str());
            if let Some(condition) = &next.item.condition {
                headers.insert(
                    async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                    condition.last_claim.get().to_string().as_str(),
                );
                headers.insert(EXPECTED_SUBJECT_HEADER, condition.claim_subject.as_str());
                headers.insert(FENCED_HEADER, "1");
            }
            let message = PublishMessage::build()
                .payload(next.item.payload.clone())
                .headers(headers)
                .message_id(next.item.id.as_str());
            match self
                .shared
                .js
                .send_publish(next.item.subject.clone(), message)
                .await
            {
                Ok(ack) => {
                    self.acks.push_back(ack.into_future());
                    self.in_flight.push_back(next);
                }
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    self.lane.outbox.lock().release(next.size);
                    self.refuse_queued(next, PublishError::Encode(e.to_string()));
                }
                Err(e) => {
                    debug!(partition = self.partition, error = %e, "cannot publish; will retry");
                    self.failed.push(next);
                    return;
                }
            }
        }
    }

    /// One ack, in publishing order.
    fn acked(&mut self, ack: Ack) {
        let Some(entry) = self.in_flight.pop_front() else {
            return;
        };
        let renewal = entry.item.condition.as_ref().filter(|c| c.renews);
        match ack {
            Ok(ack) => {
                if let Some(renewal) = renewal {
                    renewal.last_claim.advance(ack.sequence);
                }
                if self.failed.iter().any(|f| f.queued < entry.queued) {
                    let stats = &self.shared.stats;
                    self.metrics.reordered.increment(1);
                    if bump(&stats.reordered) {
                        warn!(
                            partition = self.partition,
                            sequence = ack.sequence,
                            "an envelope was stored while one published before it was not; those two may arrive out of order"
                        );
                    }
                }
                self.failures = 0;
                self.lane.outbox.lock().release(entry.size);
                let stats = &self.shared.stats;
                stats.published.fetch_add(1, Ordering::Relaxed);
                self.metrics.published.increment(1);
                if ack.duplicate {
                    stats.deduplicated.fetch_add(1, Ordering::Relaxed);
                }
                if entry.item.waited || entry.item.attempts > 1 {
                    self.late += 1;
                    stats.published_late.fetch_add(1, Ordering::Relaxed);
                    self.metrics.published_late.increment(1);
                }
                let _ = entry.item.settle.send(Ok(()));
            }
            // Another node claimed the connection: final, never retried.
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                self.lane.outbox.lock().release(entry.size);
                self.refuse_queued(entry, PublishError::Fenced);
            }
            Err(e) => {
                if bump(&self.shared.stats.ack_failures) {
                    warn!(partition = self.partition, error = %e,
                        "JetStream did not acknowledge an envelope; it will be published again");
                }
                self.failed.push(entry);
            }
        }
    }

    /// The connection was re-established: acks still awaited may never
    /// come, so everything in flight is published again.
    fn reconnected(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        self.acks = FuturesOrdered::new();
        let count = self.in_flight.len();
        self.failed.extend(self.in_flight.drain(..));
        info!(
            partition = self.partition,
            count, "NATS reconnected; publishing unacknowledged envelopes again"
        );
    }
}

/// Queues a new envelope for `lane`, or says why it is refused (then
/// `settle` is dropped and the caller reports the refusal itself).
pub(super) fn enqueue(
    shared: &Shared,
    lane: &Lane,
    partition: u32,
    subject: String,
    payload: Bytes,
    condition: Option<Condition>,
    settle: Settle,
) -> Result<(), PublishError> {
    let connected = shared.is_connected();
    let max_age = lane.outbox.lock().limits().max_age;
    if !connected && shared.link.down_for().is_some_and(|down| down > max_age) {
        return Err(PublishError::Unavailable(max_age.as_millis() as u64));
    }
    let id = lane.message_id(&shared.node_id, partition);
    let size = subject.len() + payload.len() + id.len() + 64;
    let outgoing = Outgoing {
        subject,
        payload,
        id,
        settle,
        waited: !connected,
        attempts: 0,
        condition,
    };
    let pushed = lane.outbox.lock().push(outgoing, size, Instant::now());
    match pushed {
        Ok(()) => {
            lane.wake.notify_one();
            if !connected {
                let stats = &shared.stats;
                if let Some(metrics) = shared.metrics.get(partition as usize) {
                    metrics.queued_disconnected.increment(1);
                }
                if bump(&stats.queued_disconnected) {
                    warn!(
                        partition,
                        queued = stats.queued_disconnected.load(Ordering::Relaxed),
                        "NATS is disconnected; envelopes for other nodes wait in the queue"
                    );
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}
