//! A partition's publish queue, as pure bookkeeping: what waits for NATS,
//! in order, bounded in envelopes, bytes and age. Envelopes count against
//! the bounds from the moment they are queued until JetStream acknowledged
//! them (or they were refused), so retries never overshoot the bounds.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::backplane::PublishError;

/// The queue's limits (per partition).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub max_envelopes: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

/// One queued item and what it costs.
#[derive(Debug)]
pub(super) struct Queued<T> {
    pub item: T,
    pub size: usize,
    pub queued: Instant,
}

#[derive(Debug)]
pub(super) struct Outbox<T> {
    waiting: VecDeque<Queued<T>>,
    /// Envelopes and bytes waiting or in flight.
    envelopes: usize,
    bytes: usize,
    limits: Limits,
}

impl<T> Outbox<T> {
    pub(super) fn new(limits: Limits) -> Outbox<T> {
        Outbox {
            waiting: VecDeque::new(),
            envelopes: 0,
            bytes: 0,
            limits,
        }
    }

    /// Queues `item` last, unless that would pass a bound.
    pub(super) fn push(&mut self, item: T, size: usize, now: Instant) -> Result<(), PublishError> {
        if self.envelopes >= self.limits.max_envelopes
            || self.bytes.saturating_add(size) > self.limits.max_bytes
        {
            return Err(PublishError::QueueFull {
                envelopes: self.envelopes,
                max_envelopes: self.limits.max_envelopes,
                queued: self.bytes,
                max: self.limits.max_bytes,
            });
        }
        self.envelopes += 1;
        self.bytes += size;
        self.waiting.push_back(Queued {
            item,
            size,
            queued: now,
        });
        Ok(())
    }

    /// The next item to publish; it still counts until [`Outbox::release`].
    pub(super) fn pop(&mut self) -> Option<Queued<T>> {
        self.waiting.pop_front()
    }

    /// Puts items taken with `pop` back at the head, in their order, to be
    /// published again.
    pub(super) fn requeue(&mut self, items: impl DoubleEndedIterator<Item = Queued<T>>) {
        for item in items.rev() {
            self.waiting.push_front(item);
        }
    }

    /// An item taken with `pop` is done (stored or refused).
    pub(super) fn release(&mut self, size: usize) {
        self.envelopes = self.envelopes.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(size);
    }

    /// Takes the waiting items older than the age limit (they are released).
    pub(super) fn expire(&mut self, now: Instant) -> Vec<Queued<T>> {
        let mut expired = Vec::new();
        while self
            .waiting
            .front()
            .is_some_and(|q| now.saturating_duration_since(q.queued) >= self.limits.max_age)
        {
            if let Some(q) = self.waiting.pop_front() {
                self.release(q.size);
                expired.push(q);
            }
        }
        expired
    }

    /// Whether nothing waits (in-flight items may still count).
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Bytes waiting or in flight.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn limits(&self) -> Limits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(max_envelopes: usize, max_bytes: usize) -> Outbox<u32> {
        Outbox::new(Limits {
            max_envelopes,
            max_bytes,
            max_age: Duration::from_secs(10),
        })
    }

    #[test]
    fn bounded_in_bytes_and_envelopes_until_released() {
        let now = Instant::now();
        let mut o = outbox(10, 100);
        o.push(1, 60, now).expect("fits");
        assert!(matches!(
            o.push(2, 41, now),
            Err(PublishError::QueueFull {
                envelopes: 1,
                max_envelopes: 10,
                queued: 60,
                max: 100
            })
        ));
        o.push(3, 40, now).expect("fits exactly");
        // Popped items still count: they are in flight.
        let first = o.pop().expect("first");
        assert!(o.push(4, 1, now).is_err());
        o.release(first.size);
        o.push(5, 60, now).expect("room again");
        let mut few = outbox(1, 1000);
        few.push(1, 1, now).expect("one");
        let full = few.push(2, 1, now).expect_err("envelope bound");
        assert!(
            full.to_string()
                .contains("1 of at most 1 messages, 1 of at most 1000 bytes"),
            "the refusal names the bound that was hit: {full}"
        );
    }

    #[test]
    fn requeued_items_go_first_in_their_order() {
        let now = Instant::now();
        let mut o = outbox(10, 100);
        for i in 1..=4 {
            o.push(i, 1, now).expect("fits");
        }
        let a = o.pop().expect("1");
        let b = o.pop().expect("2");
        o.requeue(vec![a, b].into_iter());
        let order: Vec<u32> = std::iter::from_fn(|| o.pop().map(|q| q.item)).collect();
        assert_eq!(order, [1, 2, 3, 4]);
    }

    #[test]
    fn expires_only_items_past_the_age_limit() {
        let start = Instant::now();
        let mut o = outbox(10, 100);
        o.push(1, 10, start).expect("fits");
        o.push(2, 10, start + Duration::from_secs(5)).expect("fits");
        assert!(o.expire(start + Duration::from_secs(9)).is_empty());
        let expired = o.expire(start + Duration::from_secs(10));
        assert_eq!(expired.iter().map(|q| q.item).collect::<Vec<_>>(), [1]);
        assert_eq!(o.bytes(), 10, "an expired item is released");
        assert_eq!(o.pop().map(|q| q.item), Some(2));
    }
}
