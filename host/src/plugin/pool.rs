//! Warm instances of one plugin version, reused across calls.
//!
//! A fresh instance costs ~16 µs here (pooling allocator; `cargo bench --bench polyglot`); a warm
//! one only the call itself. An instance goes back to its pool only after a call that
//! finished cleanly (no trap, no limit hit, nothing on stderr) and while its memory is
//! well under the limit; anything else, including a call dropped half-way, discards it.
//! A hot reload builds a new `HubPlugin` with an empty pool, so old instances die with
//! the old version once its last call ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Idle instances kept per plugin version.
pub const MAX_IDLE_PER_PLUGIN: usize = 16;
/// Idle instances kept by the whole node, so warm pools never starve the
/// allocator's slots that running calls need.
pub const MAX_IDLE_TOTAL: usize = 256;
/// Calls one instance serves before it is retired, bounding what a guest can
/// accumulate across calls.
pub const MAX_USES: u32 = 10_000;

/// A bounded stack of idle items, counted against a node-wide idle budget.
#[derive(Debug)]
pub struct WarmPool<T> {
    idle: Mutex<Vec<T>>,
    per_pool: usize,
    budget: Arc<IdleBudget>,
}

/// How many idle items all pools of a node hold together.
#[derive(Debug)]
pub struct IdleBudget {
    idle: AtomicUsize,
    max: usize,
}

impl IdleBudget {
    /// A budget of at most `max` idle items across the node's pools.
    pub fn new(max: usize) -> Arc<IdleBudget> {
        Arc::new(IdleBudget {
            idle: AtomicUsize::new(0),
            max,
        })
    }

    /// Idle items held now across every pool.
    pub fn idle(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }

    fn try_reserve(&self) -> bool {
        self.idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.idle.fetch_sub(n, Ordering::AcqRel);
    }
}

impl<T> WarmPool<T> {
    /// An empty pool holding at most `per_pool` idle items, within `budget`.
    pub fn new(per_pool: usize, budget: Arc<IdleBudget>) -> WarmPool<T> {
        WarmPool {
            idle: Mutex::new(Vec::new()),
            per_pool,
            budget,
        }
    }

    /// An idle item, most recently used first (its memory is the warmest).
    pub fn take(&self) -> Option<T> {
        let item = self.idle.lock().pop();
        if item.is_some() {
            self.budget.release(1);
        }
        item
    }

    /// Keeps `item` for a later call; hands it back when the pool or the
    /// node's idle budget is full, for the caller to drop.
    pub fn put(&self, item: T) -> Result<(), T> {
        let mut idle = self.idle.lock();
        if idle.len() >= self.per_pool || !self.budget.try_reserve() {
            return Err(item);
        }
        idle.push(item);
        Ok(())
    }

    /// Idle items in this pool.
    pub fn len(&self) -> usize {
        self.idle.lock().len()
    }

    /// Whether this pool holds no idle item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for WarmPool<T> {
    fn drop(&mut self) {
        let n = self.idle.get_mut().len();
        self.budget.release(n);
    }
}

/// Whether an instance that just finished a call may serve another.
#[derive(Debug, Clone, Copy)]
pub struct AfterCall {
    /// The call returned normally (the plugin's own `Err` counts as normal).
    pub returned: bool,
    /// A CPU or memory limit was hit, or the guest panicked.
    pub limit_or_panic: bool,
    /// The guest wrote to stderr (a warning sign, and the capture is bounded).
    pub wrote_stderr: bool,
    /// Largest linear memory the instance has asked for, and its limit.
    pub memory_high: usize,
    /// The instance's memory limit in bytes: it is reused only below half of it.
    pub memory_limit: usize,
    /// Calls served so far, this one included.
    pub uses: u32,
}

impl AfterCall {
    /// Reusable when the call returned, hit no limit or panic, wrote nothing to
    /// stderr, used at most half its memory limit and served fewer than [`MAX_USES`] calls.
    pub fn reusable(&self) -> bool {
        self.returned
            && !self.limit_or_panic
            && !self.wrote_stderr
            && self.memory_high <= self.memory_limit / 2
            && self.uses < MAX_USES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> AfterCall {
        AfterCall {
            returned: true,
            limit_or_panic: false,
            wrote_stderr: false,
            memory_high: 1 << 20,
            memory_limit: 64 << 20,
            uses: 1,
        }
    }

    #[test]
    fn only_a_clean_call_with_memory_to_spare_is_reused() {
        assert!(clean().reusable());
        assert!(
            !AfterCall {
                returned: false,
                ..clean()
            }
            .reusable()
        );
        assert!(
            !AfterCall {
                limit_or_panic: true,
                ..clean()
            }
            .reusable()
        );
        assert!(
            !AfterCall {
                wrote_stderr: true,
                ..clean()
            }
            .reusable()
        );
        assert!(
            !AfterCall {
                memory_high: 33 << 20,
                ..clean()
            }
            .reusable()
        );
        assert!(
            AfterCall {
                memory_high: 32 << 20,
                ..clean()
            }
            .reusable()
        );
        assert!(
            !AfterCall {
                uses: MAX_USES,
                ..clean()
            }
            .reusable()
        );
    }

    #[test]
    fn a_pool_keeps_at_most_its_size_and_the_node_budget() {
        let budget = IdleBudget::new(3);
        let a = WarmPool::new(2, budget.clone());
        let b = WarmPool::new(2, budget.clone());
        assert!(a.put(1).is_ok());
        assert!(a.put(2).is_ok());
        assert_eq!(a.put(3), Err(3), "the pool is full");
        assert!(b.put(4).is_ok());
        assert_eq!(b.put(5), Err(5), "the node budget is spent");
        assert_eq!(budget.idle(), 3);
        assert_eq!(a.take(), Some(2), "last in, first out");
        assert_eq!(budget.idle(), 2);
        assert!(b.put(5).is_ok());
        drop(b);
        assert_eq!(budget.idle(), 1, "a dropped pool returns its budget");
        assert_eq!(a.len(), 1);
    }
}
