//! A connection's bounded outbound queue: encoded records waiting for the
//! writer.
//!
//! Not a tokio `mpsc` channel, for two measured reasons (fan-out bench,
//! `tests/bench`): a bounded channel allocates a 32-slot block per connection
//! up front (1 KiB of every idle connection), and its receiver takes the
//! semaphore's lock for every record it receives. Here a record costs one
//! uncontended lock to queue and the writer takes everything queued under one
//! lock; an empty queue holds no allocation, and the writer is woken only when
//! a record lands in an empty queue (a writer with records in hand will come
//! back for more without being told).
//!
//! Closing is part of the queue so the writer waits on one thing: after
//! [`Outbox::close`] nothing more is accepted, and the writer sees the close
//! ahead of what is still queued, which it then flushes with [`Outbox::drain`].

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Why a record was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue holds its capacity: the client is not reading fast enough.
    Full,
    /// The connection is closing.
    Closed,
}

/// What the writer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Records were moved into the caller's batch.
    Records,
    /// The connection is closing; queued records are left for [`Outbox::drain`].
    Closed,
}

#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    /// Senders waiting for room (streams, client results): woken when the
    /// writer takes from a full queue or the queue closes.
    room: Notify,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    records: VecDeque<Bytes>,
    closed: bool,
    /// The writer, when it found the queue empty.
    writer: Option<Waker>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            room: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues a record without waiting.
    pub fn try_push(&self, record: Bytes) -> Result<(), PushError> {
        self.offer(record).map_err(|(error, _)| error)
    }

    /// Queues a record, waiting while the queue is full. Err when the
    /// connection closes first.
    pub async fn push(&self, mut record: Bytes) -> Result<(), PushError> {
        loop {
            let room = self.room.notified();
            let mut room = std::pin::pin!(room);
            // Registered before trying, so a take between the try and the
            // wait is not missed.
            room.as_mut().enable();
            match self.offer(record) {
                Ok(()) => return Ok(()),
                Err((PushError::Closed, _)) => return Err(PushError::Closed),
                Err((PushError::Full, back)) => {
                    record = back;
                    room.await;
                }
            }
        }
    }

    /// Queues `record` or hands it back with the reason.
    fn offer(&self, record: Bytes) -> Result<(), (PushError, Bytes)> {
        let wake = {
            let mut state = self.state.lock();
            if state.closed {
                return Err((PushError::Closed, record));
            }
            if state.records.len() >= self.capacity {
                return Err((PushError::Full, record));
            }
            state.records.push_back(record);
            // A writer that has records in hand comes back for more by itself.
            if state.records.len() == 1 {
                state.writer.take()
            } else {
                None
            }
        };
        if let Some(writer) = wake {
            writer.wake();
        }
        Ok(())
    }

    /// The writer's side: moves queued records into `batch`, at least one and
    /// then while `batch` stays under `max_bytes`. Pending, with the writer's
    /// waker kept, while the queue is empty and open.
    pub fn poll_take(
        &self,
        cx: &mut Context<'_>,
        batch: &mut Vec<Bytes>,
        max_bytes: usize,
    ) -> Poll<Taken> {
        let was_full = {
            let mut state = self.state.lock();
            if state.closed {
                return Poll::Ready(Taken::Closed);
            }
            if state.records.is_empty() {
                match &mut state.writer {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            let was_full = state.records.len() >= self.capacity;
            let mut size: usize = batch.iter().map(Bytes::len).sum();
            while let Some(record) = state.records.pop_front() {
                size += record.len();
                batch.push(record);
                if size >= max_bytes {
                    break;
                }
            }
            was_full
        };
        if was_full {
            self.room.notify_waiters();
        }
        Poll::Ready(Taken::Records)
    }

    /// Records queued before the close, for the writer's last flush.
    pub fn drain(&self) -> Vec<Bytes> {
        Vec::from(std::mem::take(&mut self.state.lock().records))
    }

    /// Takes one queued record, if any (for tools and tests without a writer).
    pub fn try_pop(&self) -> Option<Bytes> {
        let record = self.state.lock().records.pop_front();
        if record.is_some() {
            self.room.notify_waiters();
        }
        record
    }

    /// Stops accepting records and wakes the writer and waiting senders.
    pub fn close(&self) {
        let writer = {
            let mut state = self.state.lock();
            state.closed = true;
            state.writer.take()
        };
        if let Some(writer) = writer {
            writer.wake();
        }
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use tokio::task::JoinHandle;

    use super::*;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn take(outbox: &Outbox, waker: &Arc<CountingWaker>, max: usize) -> Poll<(Taken, Vec<Bytes>)> {
        let waker = Waker::from(waker.clone());
        let mut cx = Context::from_waker(&waker);
        let mut batch = Vec::new();
        outbox
            .poll_take(&mut cx, &mut batch, max)
            .map(|taken| (taken, batch))
    }

    #[test]
    fn wakes_the_writer_only_when_a_record_lands_in_an_empty_queue() {
        let outbox = Outbox::new(8);
        let waker = Arc::new(CountingWaker::default());
        assert!(take(&outbox, &waker, 1 << 16).is_pending());
        outbox.try_push(Bytes::from_static(b"a")).expect("room");
        outbox.try_push(Bytes::from_static(b"b")).expect("room");
        assert_eq!(waker.0.load(Ordering::SeqCst), 1);
        let Poll::Ready((Taken::Records, batch)) = take(&outbox, &waker, 1 << 16) else {
            panic!("records expected");
        };
        assert_eq!(
            batch,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
        assert!(take(&outbox, &waker, 1 << 16).is_pending());
    }

    #[test]
    fn a_batch_stops_once_it_reaches_the_byte_limit() {
        let outbox = Outbox::new(8);
        let waker = Arc::new(CountingWaker::default());
        for _ in 0..3 {
            outbox.try_push(Bytes::from(vec![0u8; 10])).expect("room");
        }
        let Poll::Ready((_, first)) = take(&outbox, &waker, 15) else {
            panic!("records expected");
        };
        assert_eq!(
            first.len(),
            2,
            "stops after the record that reached 15 bytes"
        );
        let Poll::Ready((_, rest)) = take(&outbox, &waker, 15) else {
            panic!("records expected");
        };
        assert_eq!(rest.len(), 1);
    }

    #[test]
    fn full_and_closed_are_refused_and_close_comes_first() {
        let outbox = Outbox::new(2);
        outbox.try_push(Bytes::from_static(b"1")).expect("room");
        outbox.try_push(Bytes::from_static(b"2")).expect("room");
        assert_eq!(
            outbox.try_push(Bytes::from_static(b"3")),
            Err(PushError::Full)
        );
        let waker = Arc::new(CountingWaker::default());
        outbox.close();
        assert!(matches!(
            take(&outbox, &waker, 1 << 16),
            Poll::Ready((Taken::Closed, _))
        ));
        assert_eq!(
            outbox.try_push(Bytes::from_static(b"4")),
            Err(PushError::Closed)
        );
        assert_eq!(
            outbox.drain().len(),
            2,
            "what was queued before the close is kept"
        );
    }

    /// A full one-record outbox and a task waiting to push "2" into it.
    async fn waiting_sender() -> (Arc<Outbox>, JoinHandle<Result<(), PushError>>) {
        let outbox = Arc::new(Outbox::new(1));
        outbox.try_push(Bytes::from_static(b"1")).expect("room");
        let sender = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.push(Bytes::from_static(b"2")).await }
        });
        tokio::task::yield_now().await;
        assert!(!sender.is_finished());
        (outbox, sender)
    }

    async fn outcome(sender: JoinHandle<Result<(), PushError>>) -> Result<(), PushError> {
        tokio::time::timeout(std::time::Duration::from_secs(5), sender)
            .await
            .expect("the sender is woken")
            .expect("the sender task ran")
    }

    #[tokio::test]
    async fn a_waiting_sender_gets_room_when_the_writer_takes() {
        let (outbox, sender) = waiting_sender().await;
        let waker = Arc::new(CountingWaker::default());
        assert!(take(&outbox, &waker, 1 << 16).is_ready());
        assert_eq!(outcome(sender).await, Ok(()));
        assert_eq!(outbox.try_pop(), Some(Bytes::from_static(b"2")));
    }

    #[tokio::test]
    async fn a_waiting_sender_gives_up_when_the_queue_closes() {
        let (outbox, sender) = waiting_sender().await;
        outbox.close();
        assert_eq!(outcome(sender).await, Err(PushError::Closed));
    }
}
