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
//! Bounded twice: by records and by bytes (the bytes are counted under the
//! same lock). A record's bytes include [`RECORD_COST`], what holding it
//! costs besides its payload, so a flood of tiny records meets the byte
//! budget too and the record bound is only a backstop. Senders that must not lose a record (server streams, client
//! results, completions) wait instead of failing, and only while the queue is
//! below half of either bound: the upper half is left to senders that cannot
//! wait (broadcasts), so a stream that yields as fast as it can is paced by the
//! client without pushing a broadcast over the bound, which closes the
//! connection as too slow. A record that lands in an empty queue is always
//! taken, whatever its size.
//!
//! Closing is part of the queue so the writer waits on one thing: after
//! [`Outbox::close`] nothing more is accepted, and the writer sees the close
//! ahead of what is still queued, which it then flushes with [`Outbox::drain`].
//! [`Outbox::discard`] closes and drops what is queued at once: the client is
//! too slow to be sent it.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// What a queued record costs besides its payload: its `Bytes` handle in
/// the queue and a share of the allocation behind it.
pub const RECORD_COST: usize = 64;

/// Slots an emptied queue keeps allocated; a larger one (a burst) is freed.
const KEPT_SLOTS: usize = 256;

/// A record's share of the byte budget.
fn cost(record: &Bytes) -> usize {
    record.len() + RECORD_COST
}

/// Why a record was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue holds its capacity: the client is not reading fast enough.
    Full(Bound),
    /// The connection is closing.
    Closed,
}

/// Which bound of the queue a record did not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The most records it holds.
    Records,
    /// Its byte budget (payloads plus [`RECORD_COST`] each).
    Bytes,
}

/// What the writer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Records were moved into the caller's batch.
    Records,
    /// The connection is closing; queued records are left for [`Outbox::drain`].
    Closed,
}

/// A connection's bounded queue of encoded records (see the module docs).
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    /// Senders waiting for room (streams, client results): woken when the
    /// writer takes while one waits, or the queue closes.
    room: Notify,
    capacity: usize,
    budget: usize,
}

#[derive(Debug, Default)]
struct State {
    records: VecDeque<Bytes>,
    /// The bytes of `records`, each with its [`RECORD_COST`].
    bytes: usize,
    closed: bool,
    /// Closed by [`Outbox::discard`]: what was queued is gone.
    discarded: bool,
    /// A sender waits for room.
    waiting: bool,
    /// The writer, when it found the queue empty.
    writer: Option<Waker>,
}

impl Outbox {
    /// A queue of at most `capacity` records and `budget` bytes.
    pub fn new(capacity: usize, budget: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            room: Notify::new(),
            capacity: capacity.max(2),
            budget: budget.max(2),
        }
    }

    /// Queues a record without waiting, up to the queue's bounds.
    pub fn try_push(&self, record: Bytes) -> Result<(), PushError> {
        self.offer(record, false).map_err(|(error, _)| error)
    }

    /// Queues a record, waiting while the queue is at half of either bound or
    /// more. Err when the connection closes first.
    pub async fn push(&self, mut record: Bytes) -> Result<(), PushError> {
        loop {
            let room = self.room.notified();
            let mut room = std::pin::pin!(room);
            // Registered before trying, so a take between the try and the
            // wait is not missed.
            room.as_mut().enable();
            match self.offer(record, true) {
                Ok(()) => return Ok(()),
                Err((PushError::Closed, _)) => return Err(PushError::Closed),
                Err((PushError::Full(_), back)) => {
                    record = back;
                    room.await;
                }
            }
        }
    }

    /// Queues `record` or hands it back with the reason. A waiting sender
    /// (`waits`) gets half of each bound.
    fn offer(&self, record: Bytes, waits: bool) -> Result<(), (PushError, Bytes)> {
        let wake = {
            let mut state = self.state.lock();
            if state.closed {
                return Err((PushError::Closed, record));
            }
            if !state.records.is_empty() {
                let (capacity, budget) = if waits {
                    (self.capacity / 2, self.budget / 2)
                } else {
                    (self.capacity, self.budget)
                };
                let full = if state.records.len() >= capacity {
                    Some(Bound::Records)
                } else if state.bytes + cost(&record) > budget {
                    Some(Bound::Bytes)
                } else {
                    None
                };
                if let Some(bound) = full {
                    state.waiting |= waits;
                    return Err((PushError::Full(bound), record));
                }
            }
            state.bytes += cost(&record);
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
        let waiting = {
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
            let mut size: usize = batch.iter().map(Bytes::len).sum();
            let mut taken = 0;
            while let Some(record) = state.records.pop_front() {
                size += record.len();
                taken += cost(&record);
                batch.push(record);
                if size >= max_bytes {
                    break;
                }
            }
            state.bytes -= taken;
            // A burst's slots go back once it is sent; a small queue keeps its own.
            if state.records.is_empty() && state.records.capacity() > KEPT_SLOTS {
                state.records = VecDeque::new();
            }
            std::mem::take(&mut state.waiting)
        };
        if waiting {
            self.room.notify_waiters();
        }
        Poll::Ready(Taken::Records)
    }

    /// Records queued before the close, for the writer's last flush.
    pub fn drain(&self) -> Vec<Bytes> {
        let mut state = self.state.lock();
        state.bytes = 0;
        Vec::from(std::mem::take(&mut state.records))
    }

    /// Takes one queued record, if any (for tools and tests without a writer).
    pub fn try_pop(&self) -> Option<Bytes> {
        let (record, waiting) = {
            let mut state = self.state.lock();
            let record = state.records.pop_front();
            if let Some(record) = &record {
                state.bytes -= cost(record);
            }
            (record, std::mem::take(&mut state.waiting))
        };
        if waiting {
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

    /// Closes, and drops what is queued: nothing more goes to this client.
    /// False when it was discarded already.
    pub fn discard(&self) -> bool {
        let dropped = {
            let mut state = self.state.lock();
            if state.discarded {
                return false;
            }
            state.discarded = true;
            state.bytes = 0;
            std::mem::take(&mut state.records)
        };
        self.close();
        drop(dropped);
        true
    }

    /// Whether [`Outbox::discard`] closed the queue.
    pub fn is_discarded(&self) -> bool {
        self.state.lock().discarded
    }

    /// Bytes queued now, with each record's [`RECORD_COST`].
    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Record slots allocated now.
    #[cfg(test)]
    fn slots(&self) -> usize {
        self.state.lock().records.capacity()
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
        let outbox = Outbox::new(8, 1 << 20);
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
        let outbox = Outbox::new(8, 1 << 20);
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
        let outbox = Outbox::new(2, 1 << 20);
        outbox.try_push(Bytes::from_static(b"1")).expect("room");
        outbox.try_push(Bytes::from_static(b"2")).expect("room");
        assert_eq!(
            outbox.try_push(Bytes::from_static(b"3")),
            Err(PushError::Full(Bound::Records))
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

    /// What `n` records of `len` bytes count for in the budget.
    const fn costs(n: usize, len: usize) -> usize {
        n * (len + RECORD_COST)
    }

    #[test]
    fn the_byte_budget_bounds_the_queue_but_an_empty_queue_takes_any_record() {
        let budget = costs(10, 10);
        let outbox = Outbox::new(100, budget);
        assert_eq!(outbox.try_push(Bytes::from(vec![0u8; 3000])), Ok(()));
        assert_eq!(
            outbox.try_push(Bytes::from_static(b"x")),
            Err(PushError::Full(Bound::Bytes))
        );
        assert_eq!(outbox.try_pop().map(|r| r.len()), Some(3000));
        assert_eq!(outbox.queued_bytes(), 0);
        for _ in 0..10 {
            outbox.try_push(Bytes::from(vec![0u8; 10])).expect("room");
        }
        assert_eq!(outbox.queued_bytes(), budget);
        assert_eq!(
            outbox.try_push(Bytes::from_static(b"x")),
            Err(PushError::Full(Bound::Bytes))
        );
        let waker = Arc::new(CountingWaker::default());
        assert!(take(&outbox, &waker, 25).is_ready());
        assert_eq!(outbox.queued_bytes(), costs(7, 10));
    }

    #[test]
    fn an_emptied_queue_gives_back_a_bursts_slots() {
        let outbox = Outbox::new(1 << 20, 1 << 20);
        let waker = Arc::new(CountingWaker::default());
        for _ in 0..1000 {
            outbox.try_push(Bytes::from_static(b"x")).expect("room");
        }
        assert!(outbox.slots() >= 1000);
        while let Poll::Ready((Taken::Records, _)) = take(&outbox, &waker, 100) {}
        assert_eq!(outbox.slots(), 0, "the burst's slots are freed");
        for _ in 0..10 {
            outbox.try_push(Bytes::from_static(b"x")).expect("room");
        }
        assert!(take(&outbox, &waker, 1 << 16).is_ready());
        assert!(outbox.slots() > 0, "a small queue keeps its slots");
    }

    #[test]
    fn tiny_records_meet_the_byte_budget_before_the_record_bound() {
        let outbox = Outbox::new(1 << 20, 64 << 10);
        let mut queued = 0;
        while outbox.try_push(Bytes::from_static(b"{}")).is_ok() {
            queued += 1;
            assert!(queued <= 1 << 20, "bounded");
        }
        assert_eq!(queued, (64 << 10) / (2 + RECORD_COST));
        assert_eq!(
            outbox.try_push(Bytes::from_static(b"{}")),
            Err(PushError::Full(Bound::Bytes))
        );
    }

    #[test]
    fn discard_closes_and_frees_what_was_queued() {
        let outbox = Outbox::new(8, 1 << 20);
        let record = Bytes::from(vec![0u8; 1000]);
        outbox.try_push(record.clone()).expect("room");
        assert!(!outbox.is_discarded());
        assert!(outbox.discard());
        assert!(outbox.is_discarded());
        assert!(!outbox.discard(), "once");
        assert!(record.is_unique(), "the queue let go of its copy");
        assert_eq!(outbox.queued_bytes(), 0);
        assert!(outbox.drain().is_empty());
        assert_eq!(outbox.try_push(record), Err(PushError::Closed));
    }

    #[tokio::test]
    async fn waiting_senders_leave_the_upper_half_to_the_others() {
        let outbox = Arc::new(Outbox::new(1000, costs(10, 10)));
        // A stream fills half the budget, then waits.
        let stream = tokio::spawn({
            let outbox = outbox.clone();
            async move {
                for _ in 0..20 {
                    outbox.push(Bytes::from(vec![1u8; 10])).await?;
                }
                Ok::<(), PushError>(())
            }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!stream.is_finished());
        assert_eq!(outbox.queued_bytes(), costs(5, 10));
        // A broadcast still fits in the other half.
        for _ in 0..5 {
            outbox.try_push(Bytes::from(vec![2u8; 10])).expect("room");
        }
        // The writer takes; the stream goes on, and gets all its records in.
        let waker = Arc::new(CountingWaker::default());
        let mut got = Vec::new();
        for _ in 0..100 {
            if let Poll::Ready((Taken::Records, batch)) = take(&outbox, &waker, 1 << 16) {
                got.extend(batch);
            }
            if stream.is_finished() && outbox.queued_bytes() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(outcome(stream).await, Ok(()));
        assert_eq!(got.iter().filter(|r| r[0] == 1).count(), 20);
        assert_eq!(got.iter().filter(|r| r[0] == 2).count(), 5);
    }

    /// A full one-record outbox and a task waiting to push "2" into it.
    async fn waiting_sender() -> (Arc<Outbox>, JoinHandle<Result<(), PushError>>) {
        let outbox = Arc::new(Outbox::new(2, 1 << 20));
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
