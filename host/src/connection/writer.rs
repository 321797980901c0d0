//! The writer half of a connection: drains the outbound queue into the
//! transport, several queued records per frame, pings when idle, and on close
//! flushes what was queued, tells the client why, and ends the transport.
//!
//! With stateful reconnect it also numbers what it sends and keeps it in a
//! [`ReplayBuffer`] until the client acknowledges it, acknowledges what the
//! client sent (at most once a second, as ASP.NET does), and outlives its
//! transport: when the socket drops it keeps buffering, and when the reader
//! hands it a new socket it sends `Sequence` and replays what is unacknowledged.
//!
//! Every write has a deadline: one that makes no progress for the write
//! timeout means the client is too slow ([`ConnectionHandle::close_slow`]),
//! and so does a queue that overflows meanwhile, which also makes the writer
//! give up the write it is in. Either way the transport is dropped at once,
//! with what was queued, and the last flush of a normal close has the same
//! deadline.
//!
//! Every item in the outbound queue is exactly one trackable record (an
//! Invocation, StreamItem or Completion): Pings, Acks, Sequences and the Close
//! are made here and never queued, so one item is one sequence id.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, Sleep, sleep, sleep_until};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::debug;

use super::OutFrame;
use super::replay::ReplayBuffer;
use super::resume::BoxOutbound;
use crate::outbound::outbox::Taken;
use crate::outbound::{ConnectionHandle, SlowConsumer};
use crate::protocol::{HubMessage, Protocol, TransferFormat};

/// Most bytes joined into one outbound frame.
const MAX_BATCH: usize = 64 * 1024;
/// How long received messages wait before the writer acknowledges them (ASP.NET's timer).
const ACK_DELAY: Duration = Duration::from_secs(1);

/// What the writer of a stateful-reconnect connection gets from its reader.
#[derive(Debug)]
pub(super) struct StatefulOut {
    pub buffer: ReplayBuffer,
    /// The newest sequence id the client acknowledged.
    pub acks: watch::Receiver<u64>,
    /// The newest sequence id received from the client, to acknowledge.
    pub received: watch::Receiver<u64>,
    /// Acknowledge now rather than on the timer: much arrived since the last Ack.
    pub ack_now: Arc<Notify>,
    /// Transports that replace the current one.
    pub sinks: mpsc::Receiver<BoxOutbound>,
}

struct Writer {
    /// None while a stateful connection waits for its client to reconnect.
    sink: Option<BoxOutbound>,
    handle: Arc<ConnectionHandle>,
    /// Records taken from the outbox for the next frame; kept for its capacity.
    batch: Vec<Bytes>,
    /// Where several records are joined into one frame. Its memory comes back
    /// once the transport has copied the frame out, so a busy connection does
    /// not allocate per frame.
    joined: BytesMut,
    protocol: Protocol,
    binary: bool,
    /// Pings after this long without a write; none on long polling.
    keep_alive: Option<Duration>,
    /// How long one write may make no progress.
    write_timeout: Duration,
    stateful: Option<StatefulOut>,
    /// The newest id acknowledged to the client, and when the next Ack is due.
    acked: u64,
    ack_due: Option<Instant>,
}

/// What woke the writer.
enum Event {
    /// Records are in `Writer::batch`.
    Frames,
    Ping,
    NewSink(BoxOutbound),
    Acked,
    Received,
    SendAck,
    Stop,
}

/// The writer's future. Not an async fn: that would keep its arguments
/// beside the `Writer` made of them for the connection's life.
pub(super) fn run(
    sink: Option<BoxOutbound>,
    handle: Arc<ConnectionHandle>,
    protocol: Protocol,
    keep_alive: Option<Duration>,
    write_timeout: Duration,
    stateful: Option<StatefulOut>,
) -> impl Future<Output = ()> + Send + 'static {
    let mut writer = Writer {
        sink,
        handle,
        batch: Vec::new(),
        joined: BytesMut::new(),
        protocol,
        binary: protocol.transfer_format() == TransferFormat::Binary,
        keep_alive,
        write_timeout,
        stateful,
        acked: 0,
        ack_due: None,
    };
    async move { writer.run().await }
}

impl Writer {
    async fn run(&mut self) {
        let protocol = self.protocol;
        let keep_alive = self.keep_alive;
        let ping = encode(protocol, &HubMessage::Ping);
        let idle = keep_alive.unwrap_or(Duration::from_secs(365 * 24 * 3600));
        // One timer for the connection's life, moved only when it fires: re-arming
        // a timer per message costs two timer-wheel updates per recipient of every
        // broadcast. A write only notes the time; when the timer fires early (the
        // connection was busy), it moves to `idle` after the last write instead.
        let mut last_write = Instant::now();
        let mut ping_timer = std::pin::pin!(sleep_until(last_write + idle));
        loop {
            match self.next_event(ping_timer.as_mut()).await {
                Event::Stop => break,
                Event::Ping if last_write + idle > Instant::now() => {
                    ping_timer.as_mut().reset(last_write + idle);
                    continue;
                }
                Event::Frames => {
                    if let Some(st) = self.stateful.as_mut() {
                        for frame in &self.batch {
                            st.buffer.push(frame.clone());
                        }
                    }
                    let frame = join_into(&mut self.joined, &self.batch);
                    self.batch.clear();
                    if !self.send(frame).await {
                        return;
                    }
                }
                Event::Ping => {
                    if !self.send(ping.clone()).await {
                        return;
                    }
                    let now = Instant::now();
                    ping_timer.as_mut().reset(now + idle);
                }
                Event::NewSink(sink) => Box::pin(self.install(sink)).await,
                Event::Acked => {
                    if let Some(st) = self.stateful.as_mut() {
                        let acked = *st.acks.borrow_and_update();
                        st.buffer.ack(acked);
                    }
                    continue;
                }
                Event::Received => {
                    if self.ack_due.is_none() {
                        self.ack_due = Some(Instant::now() + ACK_DELAY);
                    }
                    continue;
                }
                Event::SendAck => {
                    if self.sink.is_none() {
                        // Parked: the Ack goes out once the client is back (see `install`).
                        continue;
                    }
                    self.ack_due = None;
                    let Some(received) = self
                        .stateful
                        .as_mut()
                        .map(|st| *st.received.borrow_and_update())
                    else {
                        continue;
                    };
                    if received > self.acked {
                        self.acked = received;
                        let ack = encode(
                            protocol,
                            &HubMessage::Ack {
                                sequence_id: received,
                            },
                        );
                        if !self.send(ack).await {
                            return;
                        }
                    }
                }
            }
            last_write = Instant::now();
        }
        Box::pin(self.finish()).await;
    }
}

impl Writer {
    async fn next_event(&mut self, mut ping_timer: Pin<&mut Sleep>) -> Event {
        if self.stateful.is_some() {
            // Boxed: its futures would otherwise be part of every connection's writer.
            return Box::pin(self.next_stateful_event(ping_timer)).await;
        }
        // Most connections: no futures are made per message, and the outbox
        // both wakes the writer and tells it the connection closes. Without
        // stateful reconnect the sink is always there.
        let pings = self.keep_alive.is_some();
        let Writer { handle, batch, .. } = self;
        std::future::poll_fn(|cx| {
            match handle.outbox.poll_take(cx, batch, MAX_BATCH) {
                Poll::Ready(Taken::Records) => return Poll::Ready(Event::Frames),
                Poll::Ready(Taken::Closed) => return Poll::Ready(Event::Stop),
                Poll::Pending => {}
            }
            if pings && ping_timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Ping);
            }
            Poll::Pending
        })
        .await
    }

    /// What wakes the writer of a stateful-reconnect connection.
    async fn next_stateful_event(&mut self, ping_timer: Pin<&mut Sleep>) -> Event {
        let connected = self.sink.is_some();
        let pings = self.keep_alive.is_some();
        let Writer {
            handle,
            batch,
            stateful,
            ..
        } = self;
        let Some(st) = stateful.as_mut() else {
            return Event::Stop;
        };
        // A full replay buffer takes nothing more until the client acknowledges: the queue
        // fills, senders that wait are held back, and past the queue's bound the connection
        // counts as too slow, as any other connection does.
        let room = st.buffer.room();
        let may_take = st.buffer.has_room();
        let ack_due = self.ack_due;
        let take =
            std::future::poll_fn(|cx| handle.outbox.poll_take(cx, batch, MAX_BATCH.min(room)));
        // A branch whose sender is gone (the reader ended) is disabled; the
        // connection is closing then. With an Ack already due, what arrives
        // meanwhile goes into it: no need to wake for every message.
        tokio::select! {
            biased;
            () = handle.closing.cancelled() => Event::Stop,
            Some(sink) = st.sinks.recv() => Event::NewSink(sink),
            Ok(()) = st.acks.changed() => Event::Acked,
            Ok(()) = st.received.changed(), if ack_due.is_none() => Event::Received,
            () = st.ack_now.notified() => Event::SendAck,
            taken = take, if may_take => match taken {
                Taken::Records => Event::Frames,
                Taken::Closed => Event::Stop,
            },
            () = sleep_until(ack_due.unwrap_or_else(Instant::now)), if connected && ack_due.is_some() => Event::SendAck,
            () = ping_timer, if connected && pings => Event::Ping,
        }
    }

    /// Sends one frame. False when the connection is over (a transport failed without
    /// stateful reconnect). With stateful reconnect a failed transport only parks the writer
    /// (what it carried is in the replay buffer), and a new transport arriving mid-send
    /// replaces a stuck one.
    async fn send(&mut self, data: Bytes) -> bool {
        let binary = self.binary;
        let Some(sink) = self.sink.as_mut() else {
            return true;
        };
        if self.stateful.is_none() {
            let sent = bounded(
                sink.send(OutFrame::Data { data, binary }),
                &self.handle,
                self.write_timeout,
            )
            .await;
            return match sent {
                Sent::Done => true,
                Sent::Failed => {
                    self.handle.close();
                    false
                }
                Sent::TimedOut => {
                    self.handle.close_slow(SlowConsumer::WriteTimeout);
                    false
                }
                Sent::Abandoned => false,
            };
        }
        // Boxed: its futures would otherwise be part of every connection's writer.
        Box::pin(self.send_stateful(data)).await
    }

    /// Sends on the transport of a stateful-reconnect connection.
    async fn send_stateful(&mut self, data: Bytes) -> bool {
        let binary = self.binary;
        let (Some(sink), Some(st)) = (self.sink.as_mut(), self.stateful.as_mut()) else {
            return true;
        };
        let send = bounded(
            sink.send(OutFrame::Data { data, binary }),
            &self.handle,
            self.write_timeout,
        );
        let replaced = tokio::select! {
            sent = send => match sent {
                Sent::Done => return true,
                Sent::Abandoned => return false,
                // A stuck transport is dropped like a failed one; the client may resume.
                Sent::Failed | Sent::TimedOut => None,
            },
            sink = st.sinks.recv() => sink,
        };
        self.sink = None;
        match replaced {
            Some(sink) => self.install(sink).await,
            None => {
                debug!(connection = %self.handle.id, "transport lost; buffering until the client resumes")
            }
        }
        true
    }

    /// Takes over a new transport: `Sequence`, then every unacknowledged message, in order
    /// (HubProtocol.md). A transport that fails meanwhile parks the writer again; one that
    /// arrives meanwhile starts the replay over on it.
    async fn install(&mut self, sink: BoxOutbound) {
        let binary = self.binary;
        let Some(st) = self.stateful.as_mut() else {
            return;
        };
        let mut next = Some(sink);
        'transports: while let Some(mut sink) = next.take() {
            let sequence = encode(
                self.protocol,
                &HubMessage::Sequence {
                    sequence_id: st.buffer.resend_from(),
                },
            );
            let mut frames = vec![sequence];
            frames.extend(st.buffer.unacked().cloned());
            debug!(
                connection = %self.handle.id,
                from = st.buffer.resend_from(),
                messages = st.buffer.len(),
                "transport resumed; replaying"
            );
            for chunk in chunks(&frames) {
                tokio::select! {
                    sent = sink.send(OutFrame::Data { data: chunk, binary }) => if sent.is_err() {
                        self.sink = None;
                        return;
                    },
                    newer = st.sinks.recv() => {
                        next = newer;
                        continue 'transports;
                    }
                }
            }
            self.sink = Some(sink);
            // Acknowledge promptly what arrived before the drop, so the client can let it go.
            if *st.received.borrow() > self.acked {
                self.ack_due = Some(Instant::now());
            }
        }
    }

    /// Closing: what was queued before the close still goes out, then the
    /// reason, each write within the write timeout. A client closed as too
    /// slow gets nothing more: its transport is dropped.
    async fn finish(&mut self) {
        let Some(mut sink) = self.sink.take() else {
            return;
        };
        if self.handle.closed_as_slow() {
            return;
        }
        let mut rest = self.handle.outbox.drain();
        if let Some(reason) = self.handle.close_reason() {
            rest.push(encode(
                self.protocol,
                &HubMessage::Close {
                    error: Some(reason.error),
                    allow_reconnect: reason.allow_reconnect,
                },
            ));
        }
        let handle = &self.handle;
        let timeout = self.write_timeout;
        for chunk in chunks(&rest) {
            let frame = OutFrame::Data {
                data: chunk,
                binary: self.binary,
            };
            if !matches!(bounded(sink.send(frame), handle, timeout).await, Sent::Done) {
                return;
            }
        }
        if matches!(
            bounded(sink.send(OutFrame::Close), handle, timeout).await,
            Sent::Done
        ) {
            let _ = bounded(sink.close(), handle, timeout).await;
        }
    }
}

/// How a write ended.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Done,
    /// The transport failed.
    Failed,
    /// No progress within the write timeout.
    TimedOut,
    /// The connection was closed as too slow meanwhile.
    Abandoned,
}

/// `write` within `timeout`, given up when `handle` is closed as too slow.
///
/// Most writes finish at their first poll; only one that waits makes the
/// timer and the close watch, boxed, so neither costs a fast write anything
/// (nor the writer's future its size).
async fn bounded<F, E>(write: F, handle: &Arc<ConnectionHandle>, timeout: Duration) -> Sent
where
    F: Future<Output = Result<(), E>>,
{
    let mut write = std::pin::pin!(write);
    let mut waiting: Option<Waiting> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(done) = write.as_mut().poll(cx) {
            return Poll::Ready(if done.is_ok() {
                Sent::Done
            } else {
                Sent::Failed
            });
        }
        waiting
            .get_or_insert_with(|| Waiting {
                deadline: Box::pin(sleep(timeout)),
                closing: Some(Box::pin(handle.closing.clone().cancelled_owned())),
            })
            .poll_give_up(cx, handle)
    })
    .await
}

/// What a waiting write also watches.
struct Waiting {
    deadline: Pin<Box<Sleep>>,
    /// None once the connection closed normally: the write goes on, to its deadline.
    closing: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl Waiting {
    fn poll_give_up(&mut self, cx: &mut Context<'_>, handle: &ConnectionHandle) -> Poll<Sent> {
        if let Some(closing) = self.closing.as_mut()
            && closing.as_mut().poll(cx).is_ready()
        {
            if handle.closed_as_slow() {
                return Poll::Ready(Sent::Abandoned);
            }
            self.closing = None;
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Sent::TimedOut);
        }
        Poll::Pending
    }
}

/// Groups records into frames of at most about [`MAX_BATCH`] bytes.
fn chunks(records: &[Bytes]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, record) in records.iter().enumerate() {
        if size > 0 && size + record.len() > MAX_BATCH {
            out.push(join(records.get(start..i).unwrap_or_default()));
            start = i;
            size = 0;
        }
        size += record.len();
    }
    if start < records.len() {
        out.push(join(records.get(start..).unwrap_or_default()));
    }
    out
}

/// Largest frame joined in a writer's reused buffer; a larger one gets memory
/// of its own, so an idle connection never keeps more than this.
const REUSED_JOIN_BYTES: usize = 4 * 1024;

/// Joins `chunks` into one frame, in `buffer` when it is small: the frame
/// shares the buffer's memory, which `reserve` takes back once the frame is
/// dropped.
fn join_into(buffer: &mut BytesMut, chunks: &[Bytes]) -> Bytes {
    let size: usize = chunks.iter().map(Bytes::len).sum();
    if chunks.len() < 2 || size > REUSED_JOIN_BYTES {
        return join(chunks);
    }
    buffer.reserve(size);
    for chunk in chunks {
        buffer.extend_from_slice(chunk);
    }
    buffer.split().freeze()
}

fn join(chunks: &[Bytes]) -> Bytes {
    match chunks {
        [one] => one.clone(),
        many => {
            let mut joined = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
            for b in many {
                joined.extend_from_slice(b);
            }
            joined.freeze()
        }
    }
}

pub(super) fn encode(protocol: Protocol, message: &HubMessage) -> Bytes {
    let mut out = Vec::new();
    // Control messages always encode; an error here would be a codec bug.
    if let Err(e) = protocol.write_message(message, &mut out) {
        tracing::error!(error = %e, "cannot encode a control message");
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle() -> Arc<ConnectionHandle> {
        let hub = crate::address::HubKey::new("t", "h");
        ConnectionHandle::new_detached("c", hub, None, Protocol::Json, 8).0
    }

    #[tokio::test]
    async fn a_write_without_progress_times_out() {
        let handle = handle();
        let write = std::future::pending::<Result<(), ()>>();
        let started = Instant::now();
        assert_eq!(
            bounded(write, &handle, Duration::from_millis(100)).await,
            Sent::TimedOut
        );
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(
            bounded(
                std::future::ready(Ok::<(), ()>(())),
                &handle,
                Duration::ZERO
            )
            .await,
            Sent::Done,
            "a write that is done at once never meets its deadline"
        );
    }

    #[tokio::test]
    async fn a_waiting_write_is_given_up_when_the_client_is_closed_as_slow_only() {
        let handle = handle();
        let closer = handle.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            closer.close();
        });
        let write = std::future::pending::<Result<(), ()>>();
        let started = Instant::now();
        assert_eq!(
            bounded(write, &handle, Duration::from_millis(200)).await,
            Sent::TimedOut,
            "a normal close lets the write go on to its deadline"
        );
        assert!(started.elapsed() >= Duration::from_millis(200));

        let handle = self::handle();
        let closer = handle.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            closer.close_slow(SlowConsumer::QueueBytes);
        });
        let write = std::future::pending::<Result<(), ()>>();
        // A deadline far beyond the test's: only the close can end the write.
        assert_eq!(
            bounded(write, &handle, Duration::from_secs(3600)).await,
            Sent::Abandoned
        );
        assert!(handle.outbox.drain().is_empty());
    }

    #[test]
    fn chunks_keep_records_whole_and_in_order() {
        let records: Vec<Bytes> = (0..5).map(|i| Bytes::from(vec![i; 30_000])).collect();
        let frames = chunks(&records);
        assert_eq!(frames.len(), 3, "two 30 KB records per 64 KB frame");
        let joined: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let expected: Vec<u8> = records.iter().flat_map(|r| r.iter().copied()).collect();
        assert_eq!(joined, expected);
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn joined_frames_reuse_the_buffer_once_dropped() {
        let records = [
            Bytes::from_static(b"{\"a\":1}\x1e"),
            Bytes::from_static(b"{\"b\":2}\x1e"),
        ];
        let mut buffer = BytesMut::new();
        let first = join_into(&mut buffer, &records);
        assert_eq!(&first[..], b"{\"a\":1}\x1e{\"b\":2}\x1e");
        let address = first.as_ptr();
        drop(first);
        let second = join_into(&mut buffer, &records);
        assert_eq!(
            second.as_ptr(),
            address,
            "the dropped frame's memory is used again"
        );
        // While a frame is still held, the next one gets other memory.
        let third = join_into(&mut buffer, &records);
        assert_ne!(third.as_ptr(), second.as_ptr());
        assert_eq!(second, third);
        // One record is sent as it is, and a large frame is not kept in the buffer.
        assert_eq!(
            join_into(&mut buffer, &records[..1]).as_ptr(),
            records[0].as_ptr()
        );
        let big: Vec<Bytes> = (0..2)
            .map(|_| Bytes::from(vec![b'x'; REUSED_JOIN_BYTES]))
            .collect();
        assert_eq!(join_into(&mut buffer, &big).len(), 2 * REUSED_JOIN_BYTES);
        assert!(buffer.capacity() < REUSED_JOIN_BYTES);
    }
}
