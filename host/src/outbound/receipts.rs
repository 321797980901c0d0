//! A durable connection's receipts for what its client sent (see
//! `crate::durable`): a node taking the connection over must know what ran.
//!
//! A read of only invocations does not wait for its receipt before the
//! invocations run. The receipt waits here until the first effect: a record
//! for the connection (its Completion, a stream item) carries it in the same
//! publish, which costs nothing more, since a record of an owner that was
//! fenced meanwhile is ignored by every node anyway. Before any other effect
//! (a send, a group change, a client invocation, a KV write) the receipt is
//! published and the effect waits until this node has read it back from
//! the stream, in order: a claim stored before it is applied by then, so a
//! paused owner learns there that it was fenced. An invocation that ran
//! without any effect may run again after a takeover, which nobody can tell
//! from once. A receipt no effect took while its read was handled is
//! published after [`LINGER`], so the client's Acks do not wait on a quiet
//! call; a call that reached its first effect meanwhile costs no timer.
//!
//! What counts as stored is what came back from the stream; the client is
//! acknowledged only that.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::backplane::Received;

/// Longest a receipt waits for an effect to carry it.
pub(crate) const LINGER: Duration = Duration::from_millis(5);

#[derive(Debug)]
pub(crate) struct Receipts {
    state: Mutex<State>,
    /// The client's highest sequence id the stream stored (read back).
    stored: watch::Sender<u64>,
    /// What the writer acknowledges to the client, once the reader linked it.
    acks: OnceLock<Arc<watch::Sender<u64>>>,
}

#[derive(Debug, Default)]
struct State {
    /// Read, handled or being handled, and not yet published.
    pending: Option<Received>,
    /// The highest `up_to` published.
    published: u64,
    /// A task publishes the pending receipt after [`LINGER`].
    timer: bool,
}

impl Receipts {
    /// Receipts of a connection whose client's messages up to `stored` are
    /// in the stream already (0 when new; a taker's catch-up knows more).
    pub(crate) fn new(stored: u64) -> Receipts {
        Receipts {
            state: Mutex::new(State {
                published: stored,
                ..State::default()
            }),
            stored: watch::Sender::new(stored),
            acks: OnceLock::new(),
        }
    }

    /// Adds what one read brought.
    pub(crate) fn defer(&self, up_to: u64, opens: Vec<String>) {
        let mut state = self.state.lock();
        match &mut state.pending {
            Some(pending) => {
                pending.up_to = pending.up_to.max(up_to);
                pending.opens.extend(opens);
            }
            None => state.pending = Some(Received { up_to, opens }),
        }
    }

    /// True when a receipt is pending (no effect took it while its read
    /// was handled) and no timer will publish it yet: the caller arms one.
    /// Most calls end, or reach their first effect, before this is asked,
    /// so they cost no timer.
    pub(crate) fn arm(&self) -> bool {
        let mut state = self.state.lock();
        state.pending.is_some() && !std::mem::replace(&mut state.timer, true)
    }

    /// The timer fired: what is pending, to publish now.
    pub(crate) fn timer_fired(&self) -> Option<Received> {
        let mut state = self.state.lock();
        state.timer = false;
        Self::take_locked(&mut state)
    }

    /// What is pending, to publish now (it counts as published).
    pub(crate) fn take(&self) -> Option<Received> {
        Self::take_locked(&mut self.state.lock())
    }

    fn take_locked(state: &mut State) -> Option<Received> {
        let taken = state.pending.take()?;
        state.published = state.published.max(taken.up_to);
        Some(taken)
    }

    /// The highest `up_to` published so far.
    pub(crate) fn published(&self) -> u64 {
        self.state.lock().published
    }

    /// Adds `up_to` and `opens` to what is pending, and takes it all, to
    /// publish now.
    pub(crate) fn take_with(&self, up_to: u64, opens: Vec<String>) -> Received {
        let mut state = self.state.lock();
        let mut taken = state.pending.take().unwrap_or(Received {
            up_to,
            opens: Vec::new(),
        });
        taken.up_to = taken.up_to.max(up_to);
        taken.opens.extend(opens);
        state.published = state.published.max(taken.up_to);
        taken
    }

    /// The stream stored what the client sent up to `up_to`.
    pub(crate) fn stored(&self, up_to: u64) {
        {
            let mut state = self.state.lock();
            state.published = state.published.max(up_to);
        }
        let newer = |at: &mut u64| {
            let newer = up_to > *at;
            if newer {
                *at = up_to;
            }
            newer
        };
        self.stored.send_if_modified(newer);
        if let Some(acks) = self.acks.get() {
            acks.send_if_modified(newer);
        }
    }

    /// Waits until the stream stored what the client sent up to `up_to`.
    pub(crate) async fn wait_stored(&self, up_to: u64) {
        let mut stored = self.stored.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = stored.wait_for(|at| *at >= up_to).await;
    }

    /// From now on the client is acknowledged what is stored, through `acks`.
    pub(crate) fn link_acks(&self, acks: Arc<watch::Sender<u64>>) {
        let stored = *self.stored.borrow();
        acks.send_if_modified(|at| {
            let newer = stored > *at;
            if newer {
                *at = stored;
            }
            newer
        });
        let _ = self.acks.set(acks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_merge_until_taken_and_one_timer_covers_them() {
        let receipts = Receipts::new(0);
        receipts.defer(1, vec!["a".into()]);
        receipts.defer(3, vec!["b".into()]);
        let taken = receipts.take().expect("pending");
        assert_eq!(taken.up_to, 3);
        assert_eq!(taken.opens, ["a", "b"]);
        assert_eq!(receipts.published(), 3);
        assert!(receipts.take().is_none());
        assert!(!receipts.arm(), "an effect took it: no timer");
        receipts.defer(4, Vec::new());
        assert!(receipts.arm(), "pending: a timer publishes it");
        receipts.defer(5, Vec::new());
        assert!(!receipts.arm(), "armed already");
        assert_eq!(receipts.timer_fired().map(|r| r.up_to), Some(5));
        assert!(receipts.timer_fired().is_none());
        receipts.defer(6, Vec::new());
        assert!(receipts.arm(), "fired: a pending one arms it again");
    }

    #[tokio::test]
    async fn acks_follow_what_is_stored() {
        let receipts = Receipts::new(2);
        let acks = Arc::new(watch::Sender::new(0));
        receipts.link_acks(acks.clone());
        assert_eq!(
            *acks.borrow(),
            2,
            "a taker acknowledges what the old owner stored"
        );
        receipts.stored(5);
        receipts.stored(4);
        assert_eq!(*acks.borrow(), 5);
        tokio::time::timeout(Duration::from_secs(5), receipts.wait_stored(5))
            .await
            .expect("stored already");
    }
}
