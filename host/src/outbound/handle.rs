//! What the rest of the node holds of a live connection: enough to queue
//! messages for it, invoke a method on it and await the result, or close it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::RequestInfo;
use super::outbox::{Bound, Outbox, PushError};
use super::receipts::{self, Receipts};
use crate::address::{HubKey, OutboundInvocation};
use crate::backplane::{
    Backplane, ClaimMark, Envelope, EnvelopeKind, Fence, PublishError, Receipt, Received,
};
use crate::durable::{Mark, Record, Ring, Step, Track};
use crate::protocol::{CompletionOutcome, HubMessage, Protocol};

type ResultSender = oneshot::Sender<Result<String, String>>;

/// What the node holds of one connection, shared by the router, its hub
/// session and its transport: who it is, its outbound queue, and its state.
#[derive(Debug)]
pub struct ConnectionHandle {
    /// The connection id (SignalR's `connectionId`), by which sends and groups name it.
    pub id: Arc<str>,
    /// The tenant and hub it is connected to.
    pub hub: HubKey,
    /// The user it authenticated as (None: anonymous).
    pub user: Option<Arc<str>>,
    /// The hub protocol chosen in the handshake.
    pub protocol: Protocol,
    /// Encoded frames for the writer; bounded in records and bytes, so a slow
    /// client is noticed.
    pub(crate) outbox: Outbox,
    /// Cancelled when the connection ends, for whatever reason.
    pub(crate) closing: CancellationToken,
    /// The error the client is told in its Close message, if any.
    close_error: Mutex<Option<CloseReason>>,
    /// Client results awaited by plugins, by invocation id.
    pending_results: Mutex<HashMap<String, ResultSender>>,
    next_invocation: AtomicU64,
    /// What plugins may see of the request that opened the connection.
    pub request: RequestInfo,
    /// The connection's items (SignalR's `Context.Items`), kept across invocations.
    items: Mutex<HashMap<String, String>>,
    /// Set for a durable connection: every record reaches it through the
    /// backplane stream (see `crate::durable`).
    durable: Option<Box<Durable>>,
}

/// What a durable connection adds: its place in its hub's stream, and where
/// its direct records are published.
pub(super) struct Durable {
    track: Mutex<Track>,
    backplane: Arc<dyn Backplane>,
    epoch: u64,
    /// The backplane partition of its hub.
    partition: u32,
    /// Checkpoint candidates: where it stood after each delivery.
    ring: Mutex<Ring>,
    /// Another node claimed it: this one writes nothing more to it.
    fenced: std::sync::atomic::AtomicBool,
    /// The stream sequence of the claim that made this node its owner (0:
    /// none, it started here): its writes are stored only while that claim
    /// is the last (see [`crate::backplane::Fence`]).
    last_claim: ClaimMark,
    /// Its session in the cluster, once stored: items are kept there too.
    session: std::sync::OnceLock<Arc<dyn ItemsStore>>,
    /// One change of its items at a time, each stored before the next.
    items_gate: tokio::sync::Mutex<()>,
    /// What its client sent, stored before anyone sees an effect of it.
    receipts: Receipts,
}

/// Where a durable connection's items are kept beside it (its session in
/// the cluster), so that a node taking the connection over has them.
pub trait ItemsStore: Send + Sync + std::fmt::Debug {
    /// Stores all of the connection's `items`; an error says why they were
    /// not, and the change does not count.
    fn store_items(
        &self,
        items: Vec<(String, String)>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// Longest a durable connection's receipt may take to come back from the
/// stream before an effect or a message that waits for it.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Checkpoint candidates kept per durable connection.
const RING_MARKS: usize = 16;

debug_fields!(Durable { epoch });

/// The Close error of a durable connection whose records the cluster did not store.
pub(super) const NOT_STORED: &str =
    "The cluster did not store a message for this connection; it must reconnect.";

/// Most items one connection may hold, and the largest item, in bytes.
pub(super) const MAX_ITEMS: usize = 256;
pub(super) const MAX_ITEM_BYTES: usize = 64 * 1024;

/// Changes an item of `items`, within the item limits and `max_bytes` of
/// keys and values in all.
fn change_item(
    items: &mut HashMap<String, String>,
    key: &str,
    value: Option<String>,
    max_bytes: usize,
) -> Result<(), String> {
    let Some(value) = value else {
        items.remove(key);
        return Ok(());
    };
    if key.len() + value.len() > MAX_ITEM_BYTES {
        return Err(format!("an item may hold at most {MAX_ITEM_BYTES} bytes"));
    }
    if items.len() >= MAX_ITEMS && !items.contains_key(key) {
        return Err(format!("a connection may hold at most {MAX_ITEMS} items"));
    }
    if max_bytes != usize::MAX {
        let others = crate::durable::session::items_bytes(items.iter().filter(|(k, _)| *k != key));
        if others + key.len() + value.len() > max_bytes {
            return Err(format!(
                "the items of a connection that can resume on another node may hold at most {max_bytes} bytes of keys and values"
            ));
        }
    }
    items.insert(key.to_owned(), value);
    Ok(())
}

/// Bytes a detached connection (tests, tools) may have queued.
const DETACHED_BUDGET: usize = 64 << 20;

/// The Close error of a connection closed because its client is too slow.
pub const TOO_SLOW: &str = "The connection could not keep up with its messages.";

/// Why a client was found too slow; the `reason` label of
/// `switchboard_slow_consumers_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowConsumer {
    /// Its outbound queue holds its byte budget.
    QueueBytes,
    /// Its outbound queue holds its most records.
    QueueRecords,
    /// A write to its transport made no progress within the write timeout.
    WriteTimeout,
}

impl SlowConsumer {
    /// The reason as the metric's `reason` label spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SlowConsumer::QueueBytes => "queue_bytes",
            SlowConsumer::QueueRecords => "queue_records",
            SlowConsumer::WriteTimeout => "write_timeout",
        }
    }
}

impl From<Bound> for SlowConsumer {
    fn from(bound: Bound) -> SlowConsumer {
        match bound {
            Bound::Bytes => SlowConsumer::QueueBytes,
            Bound::Records => SlowConsumer::QueueRecords,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CloseReason {
    pub error: String,
    pub allow_reconnect: bool,
}

impl ConnectionHandle {
    pub(crate) fn new(
        id: Arc<str>,
        hub: HubKey,
        user: Option<Arc<str>>,
        protocol: Protocol,
        queue_capacity: usize,
        queue_budget: usize,
        request: RequestInfo,
    ) -> ConnectionHandle {
        ConnectionHandle {
            id,
            hub,
            user,
            protocol,
            outbox: Outbox::new(queue_capacity, queue_budget),
            closing: CancellationToken::new(),
            close_error: Mutex::new(None),
            pending_results: Mutex::new(HashMap::new()),
            next_invocation: AtomicU64::new(0),
            request,
            items: Mutex::new(HashMap::new()),
            durable: None,
        }
    }

    /// Makes the connection durable: `track` starts where the node's read of
    /// the hub's stream is, and direct records are published on `backplane`.
    pub(crate) fn make_durable(
        &mut self,
        track: Track,
        backplane: Arc<dyn Backplane>,
        partition: u32,
        epoch: u64,
        last_claim: u64,
    ) {
        let mut ring = Ring::new(RING_MARKS);
        ring.push(track.mark());
        // What the client sent up to the checkpoint is stored already (for a
        // taker; a new connection starts at 0); a catch-up applies the rest.
        let receipts = Receipts::new(track.inbound());
        self.durable = Some(Box::new(Durable {
            track: Mutex::new(track),
            backplane,
            epoch,
            partition,
            ring: Mutex::new(ring),
            fenced: Default::default(),
            last_claim: ClaimMark::new(last_claim),
            session: std::sync::OnceLock::new(),
            items_gate: tokio::sync::Mutex::new(()),
            receipts,
        }));
    }

    /// The epoch of this node's ownership of a durable connection.
    pub fn durable_epoch(&self) -> u64 {
        self.durable.as_ref().map_or(0, |d| d.epoch)
    }

    /// Where a durable connection stands now.
    pub fn durable_mark(&self) -> Option<Mark> {
        Some(self.durable.as_ref()?.track.lock().mark())
    }

    /// The newest checkpoint candidate the client has everything of, having
    /// acknowledged `acked`; older candidates are forgotten.
    pub fn durable_checkpoint(&self, acked: u64) -> Option<Mark> {
        let durable = self.durable.as_ref()?;
        let mut ring = durable.ring.lock();
        let mark = ring.at_or_below(acked).cloned();
        ring.stored(acked);
        mark
    }

    /// Another node took the connection over: it ends here without a word to
    /// the client (whose socket is the other node's now), what was queued dropped.
    /// Counted once, however many ways the node learns it.
    pub fn fence(&self) {
        if let Some(durable) = &self.durable
            && !durable
                .fenced
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            metrics::counter!(crate::metrics::RESUME_FENCED).increment(1);
        }
        self.outbox.discard();
        self.closing.cancel();
    }

    /// The condition of a durable connection's writes: stored only while
    /// no other node has claimed it. None for a plain connection.
    pub fn durable_fence(&self) -> Option<Fence> {
        let durable = self.durable.as_ref()?;
        Some(Fence {
            connection: self.id.to_string(),
            after: durable.last_claim.clone(),
        })
    }

    /// Whether another node took the connection over.
    pub fn is_fenced(&self) -> bool {
        self.durable
            .as_ref()
            .is_some_and(|d| d.fenced.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The backplane partition of a durable connection's hub.
    pub fn durable_partition(&self) -> Option<u32> {
        self.durable.as_ref().map(|d| d.partition)
    }

    /// Starts a durable connection after stream sequence `cursor`, the last
    /// one applied when it is registered.
    pub(crate) fn begin_durable(&self, cursor: u64) {
        if let Some(durable) = &self.durable {
            let mark = {
                let mut track = durable.track.lock();
                track.begin(cursor);
                track.mark()
            };
            durable.ring.lock().push(mark);
        }
    }

    /// Whether every record reaches this connection through the stream.
    pub fn is_durable(&self) -> bool {
        self.durable.is_some()
    }

    /// Applies the stream record at `cursor` to a durable connection: what
    /// targets it is queued, in stream order, so its sequence ids follow the
    /// stream. The step says what else the record did (membership, close).
    pub fn apply_durable(&self, cursor: u64, kind: &EnvelopeKind) -> Step {
        let Some(durable) = &self.durable else {
            return Step::Skip;
        };
        let protocol = self.protocol;
        let record = match kind {
            EnvelopeKind::Direct {
                connection,
                epoch,
                completes,
                received,
                ..
            } => Record::Direct {
                connection,
                epoch: *epoch,
                completes: completes.as_deref(),
                received: received.as_ref().map(|r| (r.up_to, r.opens.as_slice())),
            },
            EnvelopeKind::Receipt {
                connection,
                epoch,
                up_to,
                opens,
            } => Record::Receipt {
                connection,
                epoch: *epoch,
                up_to: *up_to,
                opens,
            },
            EnvelopeKind::Claim { connection, epoch } => Record::Claim {
                connection,
                epoch: *epoch,
            },
            other => Record::Envelope(other),
        };
        let (step, mark) = {
            let mut track = durable.track.lock();
            let step = track.apply(cursor, record, |message| message.encoded(protocol).is_ok());
            let mark = matches!(step, Step::Deliver { .. } | Step::Changed).then(|| track.mark());
            (step, mark)
        };
        if let Some(mark) = mark {
            durable.ring.lock().push(mark);
        }
        // A receipt read back in stream order: any claim stored before it
        // has been applied by now (see `receipt_applied`).
        match (&step, kind) {
            (Step::Received { up_to }, _) => durable.receipts.stored(*up_to),
            (
                Step::Deliver { .. },
                EnvelopeKind::Direct {
                    received: Some(received),
                    ..
                },
            ) => durable.receipts.stored(received.up_to),
            _ => {}
        }
        if let Step::Deliver { .. } = step {
            let queued = match kind {
                EnvelopeKind::Send { message, .. } => self.deliver(message),
                EnvelopeKind::Direct { record, .. } => self.send_frame(record.clone()),
                _ => Ok(()),
            };
            if let Err(slow) = queued {
                self.close_slow(slow);
            }
        }
        step
    }

    /// The value of item `key` (SignalR's `Context.Items`), as a plugin set it.
    pub fn item(&self, key: &str) -> Option<String> {
        self.items.lock().get(key).cloned()
    }

    /// Every item, sorted by key.
    pub fn items(&self) -> Vec<(String, String)> {
        let mut items: Vec<_> = self
            .items
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        items.sort();
        items
    }

    /// The items of a connection taken over, as its session kept them.
    pub(crate) fn restore_items(&self, items: Vec<(String, String)>) {
        *self.items.lock() = items.into_iter().collect();
    }

    /// A durable connection's session is stored: its items go there too.
    pub(crate) fn link_session(&self, link: Arc<dyn ItemsStore>) {
        if let Some(durable) = &self.durable {
            let _ = durable.session.set(link);
        }
    }

    /// Sets or (with none) removes an item. On a durable connection the
    /// change is stored in its session in the cluster first, so it survives
    /// a takeover; its items then hold at most
    /// [`MAX_ITEMS_BYTES`](crate::durable::session::MAX_ITEMS_BYTES) in all.
    pub async fn set_item(&self, key: &str, value: Option<String>) -> Result<(), String> {
        let link = self
            .durable
            .as_ref()
            .and_then(|d| Some((d.session.get()?, d)));
        let Some((link, durable)) = link else {
            return change_item(&mut self.items.lock(), key, value, usize::MAX);
        };
        let _gate = durable.items_gate.lock().await;
        let mut next = self.items.lock().clone();
        change_item(
            &mut next,
            key,
            value,
            crate::durable::session::MAX_ITEMS_BYTES,
        )?;
        let mut sorted: Vec<_> = next.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        sorted.sort();
        link.store_items(sorted).await?;
        *self.items.lock() = next;
        Ok(())
    }

    /// A connection no transport serves (tests, tools): its encoded frames
    /// arrive on the returned receiver, which holds up to `capacity`.
    pub fn new_detached(
        id: &str,
        hub: HubKey,
        user: Option<&str>,
        protocol: Protocol,
        capacity: usize,
    ) -> (Arc<ConnectionHandle>, Detached) {
        let handle = Arc::new(ConnectionHandle::new(
            Arc::from(id),
            hub,
            user.map(Arc::from),
            protocol,
            capacity,
            DETACHED_BUDGET,
            RequestInfo::default(),
        ));
        (handle.clone(), Detached(handle))
    }

    /// A durable connection no transport serves (tests, tools): see
    /// [`ConnectionHandle::new_detached`] and [`ConnectionHandle::apply_durable`].
    pub fn new_detached_durable(
        id: &str,
        hub: HubKey,
        user: Option<&str>,
        protocol: Protocol,
        track: Track,
        backplane: Arc<dyn Backplane>,
    ) -> (Arc<ConnectionHandle>, Detached) {
        let mut handle = ConnectionHandle::new(
            Arc::from(id),
            hub,
            user.map(Arc::from),
            protocol,
            1024,
            DETACHED_BUDGET,
            RequestInfo::default(),
        );
        handle.make_durable(track, backplane, 0, 1, 0);
        let handle = Arc::new(handle);
        (handle.clone(), Detached(handle))
    }

    /// Queues an invocation. Err when the queue is full: the client is too
    /// slow, and the caller should [`ConnectionHandle::close_slow`] it.
    pub fn deliver(&self, message: &OutboundInvocation) -> Result<(), SlowConsumer> {
        match message.encoded(self.protocol) {
            Ok(frame) => self.send_frame(frame),
            Err(e) => {
                warn!(connection = %self.id, error = %e, "cannot encode message; dropped");
                Ok(())
            }
        }
    }

    /// Queues an encoded frame without waiting. Err when the queue is full.
    pub fn send_frame(&self, frame: Bytes) -> Result<(), SlowConsumer> {
        match self.outbox.try_push(frame) {
            Err(PushError::Full(bound)) => Err(bound.into()),
            Ok(()) | Err(PushError::Closed) => Ok(()),
        }
    }

    /// Ends the connection of a client too slow for its messages: what is
    /// queued for it is dropped at once, its writer gives up the write it is
    /// in, and its transport is dropped without a goodbye (a client that does
    /// not read would not get it).
    pub fn close_slow(&self, why: SlowConsumer) {
        {
            let mut reason = self.close_error.lock();
            if reason.is_none() {
                *reason = Some(CloseReason {
                    error: TOO_SLOW.to_owned(),
                    allow_reconnect: false,
                });
            }
        }
        let first = self.outbox.discard();
        self.closing.cancel();
        if first {
            warn!(
                connection = %self.id,
                reason = why.as_str(),
                "client too slow for its messages; closing"
            );
            metrics::counter!(
                crate::metrics::SLOW_CONSUMERS_CLOSED,
                "tenant" => self.hub.tenant.clone(),
                "hub" => self.hub.hub.clone(),
                "reason" => why.as_str()
            )
            .increment(1);
        }
    }

    /// Whether the connection was closed as too slow (see [`ConnectionHandle::close_slow`]).
    pub(crate) fn closed_as_slow(&self) -> bool {
        self.outbox.is_discarded()
    }

    /// Queues an encoded frame, waiting for room (backpressure for streams).
    pub async fn send_frame_waiting(&self, frame: Bytes) -> Result<(), ()> {
        self.outbox.push(frame).await.map_err(|_| ())
    }

    /// Encodes and queues one hub message, waiting for room. A durable
    /// connection's message goes through the stream: this waits until it is
    /// stored, and a message the cluster did not store ends the connection.
    /// It carries the receipt of what the client sent meanwhile, if any.
    pub async fn send_message(&self, message: &HubMessage) -> Result<(), ()> {
        let mut out = Vec::new();
        if let Err(e) = self.protocol.write_message(message, &mut out) {
            warn!(connection = %self.id, error = %e, "cannot encode message; dropped");
            return Ok(());
        }
        let Some(durable) = &self.durable else {
            return self.send_frame_waiting(Bytes::from(out)).await;
        };
        if self.is_closed() {
            return Err(());
        }
        let completes = match message {
            HubMessage::Completion { invocation_id, .. } => Some(invocation_id.clone()),
            _ => None,
        };
        let received = durable.receipts.take();
        let envelope = Envelope::new(
            self.hub.clone(),
            EnvelopeKind::Direct {
                connection: self.id.to_string(),
                epoch: durable.epoch,
                record: Bytes::from(out),
                completes,
                received,
            },
        )
        .fenced(self.durable_fence());
        let receipt = durable.backplane.publish(envelope);
        self.store_or_close(receipt, "a record for a durable connection")
            .await
    }

    /// Stores, before they are handled, that the client of a durable
    /// connection sent its messages up to sequence id `up_to`, `opens` being
    /// the invocations among them that expect a Completion (with whatever
    /// receipt was waiting for an effect). Err (the connection is closed
    /// then, with a reconnect allowed) when the cluster did not store it:
    /// the messages must not run, since a node taking the connection over
    /// could not know they did. Ok at once for a plain connection.
    pub async fn store_receipt(&self, up_to: u64, opens: Vec<String>) -> Result<(), ()> {
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        let received = durable.receipts.take_with(up_to, opens);
        let up_to = received.up_to;
        self.store_or_close(
            durable
                .backplane
                .publish(self.receipt_envelope(durable, received)),
            "what a durable connection's client sent",
        )
        .await?;
        self.wait_applied(durable, up_to).await
    }

    /// A durable connection's client sent messages up to `up_to` that only
    /// invoke methods (`opens` expect a Completion): they run now, and their
    /// receipt waits for their first effect (see [`receipts`]).
    pub fn defer_receipt(&self, up_to: u64, opens: Vec<String>) {
        if let Some(durable) = &self.durable {
            durable.receipts.defer(up_to, opens);
        }
    }

    /// After a read was handled: a receipt that no effect took yet is
    /// published after [`receipts::LINGER`], unless one takes it first.
    pub fn linger_receipt(self: &Arc<Self>) {
        let Some(durable) = &self.durable else {
            return;
        };
        if durable.receipts.arm() {
            // Weak: a timer does not keep an ended connection alive.
            let handle = Arc::downgrade(self);
            tokio::spawn(async move {
                tokio::time::sleep(receipts::LINGER).await;
                let Some(handle) = handle.upgrade() else {
                    return;
                };
                if let Some(durable) = &handle.durable
                    && let Some(received) = durable.receipts.timer_fired()
                {
                    handle.publish_received(durable, received);
                }
            });
        }
    }

    /// Before an effect anyone else may see (a send, a group change, a
    /// client invocation, a KV write, items): publishes the receipt waiting
    /// for one and waits until this node has read every receipt of the
    /// connection back from the stream. A claim of another node stored
    /// before them has been applied by then, so a paused owner that woke up
    /// learns it was fenced here, before the effect, not after. Err when the
    /// connection ended (or was fenced) first, or the stream did not come
    /// back in time.
    pub async fn receipt_applied(self: &Arc<Self>) -> Result<(), ()> {
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        if let Some(received) = durable.receipts.take() {
            self.publish_received(durable, received);
        }
        self.wait_applied(durable, durable.receipts.published())
            .await
    }

    /// Before an effect outside the stream, which the store's condition
    /// cannot cover (a plugin's KV write, a client invocation of another
    /// connection here): [`Self::receipt_applied`], then one more record under
    /// the connection's fence, stored. A paused owner that another node
    /// claimed meanwhile learns it from the store's refusal here, however late
    /// it reads the claim, instead of writing. Left open: a claim stored
    /// between this record and the effect (a pause of that one round trip).
    /// The record is a receipt of nothing (up to 0), which every reader
    /// skips. Not the highest id published: the reader may have taken a
    /// receipt up to that id, with invocations in it, and not published it
    /// yet; an empty one for the same id stored first would hide them.
    pub async fn still_owner(self: &Arc<Self>) -> Result<(), ()> {
        self.receipt_applied().await?;
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        self.store_or_close(
            self.ownership_probe(durable),
            "a durable connection's check that it is still this node's",
        )
        .await?;
        if self.is_fenced() { Err(()) } else { Ok(()) }
    }

    /// Whether the connection, ended here, was still this node's, asked of
    /// the store as in [`Self::still_owner`]: a node paused past the
    /// connection's grace period may end it before it reads another node's
    /// claim, and the hub's disconnect handler must not run for a
    /// connection that lives on there. False too when the store cannot say.
    /// True at once for a plain connection.
    pub async fn ended_as_owner(&self) -> bool {
        let Some(durable) = &self.durable else {
            return true;
        };
        if self.is_fenced() {
            return false;
        }
        match self.ownership_probe(durable).wait().await {
            Ok(()) => !self.is_fenced(),
            Err(PublishError::Fenced) => {
                self.fence();
                false
            }
            Err(error) => {
                warn!(connection = %self.id, %error, "cannot confirm that an ended durable connection was still this node's; its hub's disconnect handler does not run");
                false
            }
        }
    }

    /// A record of nothing (a receipt up to 0, which every reader skips)
    /// under the connection's fence: stored only while it is this node's.
    fn ownership_probe(&self, durable: &Durable) -> Receipt {
        let nothing = Received {
            up_to: 0,
            opens: Vec::new(),
        };
        durable
            .backplane
            .publish(self.receipt_envelope(durable, nothing))
    }

    /// Waits until the connection's receipts up to `up_to` are read back in
    /// stream order, then checks it is still this node's.
    async fn wait_applied(&self, durable: &Durable, up_to: u64) -> Result<(), ()> {
        let applied = tokio::select! {
            // Stored already wins over ended: a call whose connection ended
            // after its receipt came back goes on as on a plain connection,
            // rather than by the toss of a coin.
            biased;
            applied = tokio::time::timeout(APPLY_TIMEOUT, durable.receipts.wait_stored(up_to)) => applied,
            () = self.closing.cancelled() => return Err(()),
        };
        if applied.is_err() {
            warn!(connection = %self.id, "what a durable connection's client sent did not come back from the stream in time; closing it");
            self.abort_allow_reconnect(NOT_STORED);
            return Err(());
        }
        if self.is_fenced() { Err(()) } else { Ok(()) }
    }

    /// From now on `acks` (what the writer acknowledges) follows what the
    /// stream stored of what the client sent.
    pub(crate) fn link_acks(&self, acks: Arc<tokio::sync::watch::Sender<u64>>) {
        if let Some(durable) = &self.durable {
            durable.receipts.link_acks(acks);
        }
    }

    fn receipt_envelope(&self, durable: &Durable, received: Received) -> Envelope {
        Envelope::new(
            self.hub.clone(),
            EnvelopeKind::Receipt {
                connection: self.id.to_string(),
                epoch: durable.epoch,
                up_to: received.up_to,
                opens: received.opens,
            },
        )
        .fenced(self.durable_fence())
    }

    /// Publishes a receipt now and settles it in the background.
    fn publish_received(self: &Arc<Self>, durable: &Durable, received: Received) {
        let receipt = durable
            .backplane
            .publish(self.receipt_envelope(durable, received));
        let handle = self.clone();
        // Read back, it counts as stored (see `apply_durable`).
        tokio::spawn(async move {
            if let Err(e) = receipt.wait().await {
                handle.not_stored(&e, "what a durable connection's client sent");
            }
        });
    }

    /// Waits until the stream stored a record of a durable connection
    /// (published already, so that the envelope is no part of the caller's
    /// future); when it was not (`what` names it in the log), the
    /// connection is closed with a reconnect allowed, or dropped here if
    /// another node claimed it, and Err.
    async fn store_or_close(&self, receipt: Receipt, what: &str) -> Result<(), ()> {
        receipt.wait().await.map_err(|e| self.not_stored(&e, what))
    }

    /// A record of a durable connection (`what`) was not stored: another
    /// node claimed the connection (it ends here without a word, as when
    /// this node reads the claim), or the cluster refused it (the client is
    /// told, with a reconnect allowed).
    fn not_stored(&self, error: &PublishError, what: &str) {
        if matches!(error, PublishError::Fenced) {
            warn!(connection = %self.id, "{what} was refused: another node took the connection over; dropping it here");
            self.fence();
        } else {
            warn!(connection = %self.id, %error, "{what} was not stored; closing it");
            self.abort_allow_reconnect(NOT_STORED);
        }
    }

    /// A durable connection's client invocations stored and not completed.
    pub fn durable_open(&self) -> Vec<String> {
        self.durable.as_ref().map_or_else(Vec::new, |d| {
            d.track.lock().open().iter().cloned().collect()
        })
    }

    /// Whether a durable connection may join `group` (Ok for a plain one,
    /// whose limit the router's index keeps).
    pub fn durable_may_join(&self, group: &str) -> Result<(), crate::durable::JoinRefused> {
        self.durable
            .as_ref()
            .map_or(Ok(()), |d| d.track.lock().may_join(group))
    }

    /// A durable connection's client's highest sequence id stored.
    pub fn durable_inbound(&self) -> u64 {
        self.durable
            .as_ref()
            .map_or(0, |d| d.track.lock().inbound())
    }

    /// Ends the connection, telling the client `error` in a Close message.
    pub fn abort(&self, error: &str) {
        self.close_with(error, false);
    }

    /// Ends the connection with an error after which clients reconnect.
    pub fn abort_allow_reconnect(&self, error: &str) {
        self.close_with(error, true);
    }

    fn close_with(&self, error: &str, allow_reconnect: bool) {
        {
            let mut reason = self.close_error.lock();
            if reason.is_none() {
                *reason = Some(CloseReason {
                    error: error.to_owned(),
                    allow_reconnect,
                });
            }
        }
        self.close();
    }

    /// Ends the connection without an error.
    pub fn close(&self) {
        self.outbox.close();
        self.closing.cancel();
    }

    /// Cancelled when the connection ends.
    pub fn closing_token(&self) -> &CancellationToken {
        &self.closing
    }

    /// Whether the connection has ended, or is ending.
    pub fn is_closed(&self) -> bool {
        self.closing.is_cancelled()
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.close_error.lock().clone()
    }

    /// Invokes `message` on the client and waits for its result (a SignalR
    /// client result): the value as JSON text, or the client's error.
    pub async fn invoke_client(
        &self,
        message: OutboundInvocation,
        timeout: Duration,
    ) -> Result<String, String> {
        let n = self.next_invocation.fetch_add(1, Ordering::Relaxed);
        let invocation_id = format!("s{n}");
        let (tx, rx) = oneshot::channel();
        self.pending_results
            .lock()
            .insert(invocation_id.clone(), tx);
        let request =
            HubMessage::invocation(Some(invocation_id.clone()), message.method, message.args);
        if self.send_message(&request).await.is_err() {
            self.pending_results.lock().remove(&invocation_id);
            return Err("the connection closed".into());
        }
        let outcome = tokio::time::timeout(timeout, rx).await;
        self.pending_results.lock().remove(&invocation_id);
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the connection closed before the client answered".into()),
            Err(_) => Err(format!(
                "the client did not answer within {} ms",
                timeout.as_millis()
            )),
        }
    }

    /// Hands a Completion from the client to the plugin awaiting it. False
    /// when nobody awaits that id (ASP.NET ignores such completions too).
    pub fn complete_client_result(&self, invocation_id: &str, outcome: CompletionOutcome) -> bool {
        let Some(tx) = self.pending_results.lock().remove(invocation_id) else {
            return false;
        };
        let result = match outcome {
            CompletionOutcome::Result(value) => Ok(value.get().to_owned()),
            CompletionOutcome::Void => Ok("null".to_owned()),
            CompletionOutcome::Error(e) => Err(e),
        };
        let _ = tx.send(result);
        true
    }

    /// Fails every awaited client result: the connection is gone.
    pub(crate) fn fail_pending_results(&self) {
        self.pending_results.lock().clear();
    }
}

/// The outbound side of a detached connection: what the writer would send.
#[derive(Debug)]
pub struct Detached(Arc<ConnectionHandle>);

impl Detached {
    /// The next queued frame; None once the connection closed and nothing is left.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let outbox = &self.0.outbox;
        std::future::poll_fn(|cx| {
            let mut batch = Vec::with_capacity(1);
            match outbox.poll_take(cx, &mut batch, 1) {
                std::task::Poll::Ready(super::outbox::Taken::Records) => {
                    std::task::Poll::Ready(batch.pop())
                }
                std::task::Poll::Ready(super::outbox::Taken::Closed) => {
                    std::task::Poll::Ready(outbox.try_pop())
                }
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        })
        .await
    }

    /// The next queued frame, if one is there now.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.0.outbox.try_pop()
    }
}
