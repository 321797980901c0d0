//! One partition's subscriber: an ordered JetStream consumer delivering the
//! partition's stream in sequence. The stream sequence of each message is
//! checked: repeats are skipped, jumps are counted and logged as missed.
//! When the consumer fails (NATS restarted, consumer lost) a new one starts
//! from the sequence after the last one read, so messages stored during a
//! hiccup are recovered from the stream rather than lost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::stream;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::sequence::{Observed, Resume, Tracker};
use super::stats::bump;
use super::{FENCED_HEADER, NODE_HEADER, Shared, codec};
use crate::backplane::{Cursor, Envelope, LocalIndex};

/// How often a consumer compares what it read with the stream's end. A
/// consumer whose server left the NATS cluster can go quiet without an error
/// or a reconnect of this node's own connection; one that made no progress
/// over a whole interval while the stream has more is recreated from the last
/// sequence read, so nothing stored is missed.
const STALL_CHECK: Duration = Duration::from_secs(5);

/// Where a partition's envelopes go.
#[derive(Clone)]
pub(crate) enum Sink {
    /// Applied on the reading task: the partition's order is kept, and what
    /// was read is bounded by the consumer's own window, not by a queue.
    Local(std::sync::Weak<dyn LocalIndex>),
    /// Queued, for tests that look at what arrives.
    Queue(mpsc::UnboundedSender<Envelope>),
}

impl Sink {
    /// Hands an envelope on; Err when nobody takes them any more.
    fn deliver(&self, envelope: Envelope) -> Result<(), ConsumeError> {
        match self {
            Sink::Local(local) => {
                let local = local.upgrade().ok_or(ConsumeError::SinkGone)?;
                local.apply(envelope);
                Ok(())
            }
            Sink::Queue(tx) => tx.send(envelope).map_err(|_| ConsumeError::SinkGone),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error("stream: {0}")]
    Stream(String),
    #[error("consumer: {0}")]
    Consumer(String),
    #[error("nobody takes the envelopes any more")]
    SinkGone,
    #[error("NATS reconnected")]
    Reconnected,
}

pub(super) async fn run(shared: Arc<Shared>, partition: u32, inbox: Sink) {
    let mut tracker = Tracker::default();
    let mut failures: u32 = 0;
    // Records were lost since the last envelope handed on (see `Envelope::broken`).
    let mut broken = false;
    loop {
        let outcome = tokio::select! {
            () = shared.cancel.cancelled() => return,
            outcome = consume(&shared, partition, &mut tracker, &mut broken, &inbox) => outcome,
        };
        set_live(&shared, partition, false);
        match outcome {
            Err(ConsumeError::SinkGone) => return,
            Err(ConsumeError::Reconnected) => {
                debug!(partition, "NATS reconnected; restarting the consumer");
                failures = 0;
                continue;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures.is_power_of_two() {
                    warn!(partition, error = %e, failures, "backplane consumer failed; restarting");
                } else {
                    debug!(partition, error = %e, "backplane consumer failed; restarting");
                }
            }
            Ok(()) => failures = 0,
        }
        let pause = Duration::from_millis((50 * u64::from(failures)).clamp(50, 1000));
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Whether `node` wrote the message and delivered it in place already. A
/// fenced envelope was not delivered where it was written: its own node
/// delivers it when it reads it back, as another node's.
pub(super) fn delivered_in_place(headers: Option<&async_nats::HeaderMap>, node: &str) -> bool {
    headers.is_some_and(|h| {
        h.get(NODE_HEADER).is_some_and(|n| n.as_str() == node) && h.get(FENCED_HEADER).is_none()
    })
}

fn set_live(shared: &Shared, partition: u32, live: bool) {
    if let Some(flag) = shared.link.live.get(partition as usize) {
        flag.store(live, Ordering::Relaxed);
    }
}

/// The stream of a partition, created if missing. Its duplicate window
/// covers the publish queue's age limit plus an ack timeout, so an envelope
/// published again (same message id) after an outage is stored once; an
/// older stream with a shorter window is updated.
pub(super) async fn ensure_stream(
    shared: &Shared,
    partition: u32,
) -> Result<stream::Stream, String> {
    let config = &shared.config;
    let duplicate_window = duplicate_window(config);
    let mut stream = shared
        .js
        .get_or_create_stream(stream::Config {
            name: shared.names.stream(partition),
            subjects: vec![shared.names.partition_wildcard(partition)],
            max_age: Duration::from_secs(config.max_age_secs),
            max_bytes: config.max_bytes,
            num_replicas: config.replicas,
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            duplicate_window,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let current = stream.cached_info().config.clone();
    if current.duplicate_window < duplicate_window {
        info!(
            partition,
            from = ?current.duplicate_window,
            to = ?duplicate_window,
            "widening the stream's duplicate window to cover the publish queue"
        );
        shared
            .js
            .update_stream(stream::Config {
                duplicate_window,
                ..current
            })
            .await
            .map_err(|e| e.to_string())?;
        stream = shared
            .js
            .get_stream(shared.names.stream(partition))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(stream)
}

/// How long JetStream remembers message ids: past the last possible retry
/// (but no longer than the stream keeps messages, which JetStream requires).
fn duplicate_window(config: &crate::config::NatsConfig) -> Duration {
    (config.queue_max_age() + 2 * super::publisher::ACK_TIMEOUT)
        .min(Duration::from_secs(config.max_age_secs))
}

async fn consume(
    shared: &Shared,
    partition: u32,
    tracker: &mut Tracker,
    broken: &mut bool,
    inbox: &Sink,
) -> Result<(), ConsumeError> {
    let mut reconnects = shared.link.reconnects.subscribe();
    reconnects.borrow_and_update();
    let mut stream = ensure_stream(shared, partition)
        .await
        .map_err(ConsumeError::Stream)?;
    let deliver_policy = match tracker.last() {
        None => DeliverPolicy::New,
        Some(last) => {
            let last_in_stream = stream
                .info()
                .await
                .map_err(|e| ConsumeError::Stream(e.to_string()))?
                .state
                .last_sequence;
            match tracker.resume(last_in_stream) {
                Resume::New => DeliverPolicy::New,
                Resume::Recreated => {
                    warn!(
                        partition,
                        last, "backplane stream was recreated; reading it from its end"
                    );
                    tracker.reset();
                    *broken = true;
                    DeliverPolicy::New
                }
                Resume::From(start_sequence) => {
                    if last_in_stream >= start_sequence {
                        info!(
                            partition,
                            from = start_sequence,
                            to = last_in_stream,
                            "recovering backplane messages from the stream"
                        );
                    }
                    DeliverPolicy::ByStartSequence { start_sequence }
                }
            }
        }
    };
    // With durable resume, each node reads the hubs' subjects and the records
    // of its own durable connections only (see `subject`): the stream's
    // sequence then skips what others own, so a jump is no gap.
    let filtered = shared.config.durable_resume;
    let filter = if filtered {
        pull::OrderedConfig {
            filter_subjects: shared.names.live_filters(partition, &shared.node_id),
            ..Default::default()
        }
    } else {
        pull::OrderedConfig {
            filter_subject: shared.names.partition_wildcard(partition),
            ..Default::default()
        }
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy,
            ..filter
        })
        .await
        .map_err(|e| ConsumeError::Consumer(e.to_string()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| ConsumeError::Consumer(e.to_string()))?;
    set_live(shared, partition, shared.is_connected());
    let Some(metrics) = shared.metrics.get(partition as usize) else {
        return Err(ConsumeError::Stream(format!("no partition {partition}")));
    };
    let mut stall_check =
        tokio::time::interval_at(tokio::time::Instant::now() + STALL_CHECK, STALL_CHECK);
    // The last sequence read when the previous check found the stream ahead.
    let mut behind_at: Option<u64> = None;
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            _ = reconnects.changed() => return Err(ConsumeError::Reconnected),
            _ = stall_check.tick() => {
                let Some(read) = tracker.last() else { continue };
                let ahead = if filtered {
                    next_for_me(shared, &stream, partition, read).await
                } else {
                    let Ok(Ok(info)) = tokio::time::timeout(STALL_CHECK, stream.info()).await else {
                        continue;
                    };
                    Some(info.state.last_sequence)
                };
                let Some(in_stream) = ahead else { continue };
                if in_stream <= read {
                    behind_at = None;
                } else if behind_at == Some(read) {
                    return Err(ConsumeError::Consumer(format!(
                        "no progress for {STALL_CHECK:?} at sequence {read} while the stream holds {in_stream}"
                    )));
                } else {
                    behind_at = Some(read);
                }
                continue;
            }
        };
        let Some(message) = message else { break };
        let message = message.map_err(|e| ConsumeError::Consumer(e.to_string()))?;
        let Ok(info) = message.info() else {
            bump(&shared.stats.undecodable);
            continue;
        };
        // The message's place in the cluster, the same on every node.
        let cursor = Cursor {
            partition,
            sequence: info.stream_sequence,
        };
        let sequence = cursor.sequence;
        let observed = if filtered {
            // A consumer (re)starts after the last sequence read; what it
            // skips is another node's, unless the stream dropped it since.
            let previous = tracker.last();
            match tracker.observe(sequence) {
                Observed::Gap(_) if info.consumer_sequence == 1 => {
                    dropped_since(&stream, previous.unwrap_or(0), sequence).await
                }
                Observed::Gap(_) => Observed::Next,
                observed => observed,
            }
        } else {
            tracker.observe(sequence)
        };
        match observed {
            Observed::Duplicate => {
                shared.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                metrics.duplicates.increment(1);
                debug!(partition, sequence, "backplane message seen twice; skipped");
                continue;
            }
            Observed::Gap(missed) => {
                *broken = true;
                shared.stats.gaps.fetch_add(1, Ordering::Relaxed);
                shared.stats.missed.fetch_add(missed, Ordering::Relaxed);
                metrics.gaps.increment(1);
                metrics.lost.increment(missed);
                warn!(
                    partition,
                    from = sequence - missed,
                    to = sequence - 1,
                    missed,
                    "backplane messages missed (no longer in the stream); they are lost for this node"
                );
            }
            Observed::First | Observed::Next => {}
        }
        if let Some(slot) = shared.cursors.lock().get_mut(partition as usize) {
            *slot = Some(sequence);
        }
        metrics.sequence.set(sequence as f64);
        let lag = lag_seconds(info.published.unix_timestamp_nanos());
        metrics.lag.record(lag);
        shared.stats.lag.record(lag);
        let own = delivered_in_place(message.headers.as_ref(), &shared.node_id);
        // A node's own envelopes were applied where it sent them, except for
        // durable connections, which get everything in stream order.
        if own && !shared.config.durable_resume {
            shared.stats.own_skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Some((_, hub)) = shared.names.parse_subject(message.subject.as_str()) else {
            bump(&shared.stats.undecodable);
            continue;
        };
        match codec::decode(hub, &message.payload) {
            Ok(mut envelope) => {
                envelope.cursor = Some(cursor);
                envelope.own = own;
                envelope.broken = std::mem::take(broken);
                shared.stats.received.fetch_add(1, Ordering::Relaxed);
                metrics.received.increment(1);
                inbox.deliver(envelope)?;
            }
            Err(e) => {
                if bump(&shared.stats.undecodable) {
                    warn!(partition, sequence, error = %e, "undecodable backplane message");
                }
            }
        }
    }
    Ok(())
}

/// The first sequence after `read` that this node's filtered consumer of
/// `partition` should deliver, if the stream holds one; None when it holds
/// none, or NATS did not answer in time.
async fn next_for_me(
    shared: &Shared,
    stream: &stream::Stream,
    partition: u32,
    read: u64,
) -> Option<u64> {
    for filter in shared.names.live_filters(partition, &shared.node_id) {
        let next = stream
            .raw_message_builder()
            .sequence(read + 1)
            .next_by_subject(filter)
            .send();
        if let Ok(Ok(message)) = tokio::time::timeout(STALL_CHECK, next).await {
            return Some(message.sequence);
        }
    }
    None
}

/// What a jump from `last` to `sequence` at the start of a filtered
/// consumer means: a gap if the stream no longer holds all of what lay
/// between (some of it may have been this node's), else nothing missed.
/// A stream that cannot be asked counts as a gap: honest rather than silent.
async fn dropped_since(stream: &stream::Stream, last: u64, sequence: u64) -> Observed {
    let first = match tokio::time::timeout(STALL_CHECK, stream.get_info()).await {
        Ok(Ok(info)) => info.state.first_sequence,
        _ => sequence,
    };
    if first > last + 1 {
        Observed::Gap(first.min(sequence) - last - 1)
    } else {
        Observed::Next
    }
}

/// Seconds from `published` (Unix nanoseconds, JetStream's clock) until now
/// (this node's clock); never negative, since the clocks may disagree a little.
fn lag_seconds(published_nanos: i128) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    ((now - published_nanos).max(0) as f64) / 1e9
}
