//! Checkpoint candidates of one durable connection: where it stood after
//! some cursor. A checkpoint must never be ahead of what the client
//! acknowledged, so the owner keeps a few recent marks and stores the newest
//! one whose id the client has; a node taking over replays from there.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

/// The state of a connection after the stream record at `cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The id of the last record delivered up to `cursor`.
    pub id: u64,
    /// The stream sequence of the last record applied.
    pub cursor: u64,
    /// The owner's epoch then.
    pub epoch: u64,
    /// The client's highest sequence id stored in a receipt.
    pub inbound: u64,
    /// The groups it was in.
    pub groups: Arc<BTreeSet<String>>,
    /// Client invocations stored but not completed.
    pub open: Arc<BTreeSet<String>>,
}

/// Recent marks, oldest first, at most `capacity` of them. When full, every
/// other mark of the older half goes, so the ring still spans a long stretch
/// of a busy connection (whose client acknowledges a second behind) with
/// marks that get denser towards the newest.
#[derive(Debug)]
pub struct Ring {
    marks: VecDeque<Mark>,
    capacity: usize,
}

impl Ring {
    /// An empty ring of at most `capacity` marks (at least two).
    pub fn new(capacity: usize) -> Ring {
        Ring {
            marks: VecDeque::new(),
            capacity: capacity.max(2),
        }
    }

    /// Adds the newest mark. One with the same id as the last replaces it: the
    /// later cursor is a shorter replay for the same client position.
    pub fn push(&mut self, mark: Mark) {
        if let Some(last) = self.marks.back_mut()
            && last.id == mark.id
        {
            if mark.cursor > last.cursor {
                *last = mark;
            }
            return;
        }
        self.marks.push_back(mark);
        if self.marks.len() > self.capacity {
            let half = self.marks.len() / 2;
            let mut i = 0;
            self.marks.retain(|_| {
                let keep = i >= half || i % 2 == 0;
                i += 1;
                keep
            });
        }
    }

    /// The newest mark the client has everything of, having acknowledged `acked`.
    pub fn at_or_below(&self, acked: u64) -> Option<&Mark> {
        self.marks.iter().rev().find(|mark| mark.id <= acked)
    }

    /// Forgets the marks older than the one stored as the checkpoint for `acked`.
    pub fn stored(&mut self, acked: u64) {
        let Some(keep) = self.marks.iter().rposition(|mark| mark.id <= acked) else {
            return;
        };
        self.marks.drain(..keep);
    }

    /// Marks held now.
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// Whether the ring holds no mark.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(id: u64, cursor: u64) -> Mark {
        Mark {
            id,
            cursor,
            epoch: 1,
            inbound: 0,
            groups: Arc::default(),
            open: Arc::default(),
        }
    }

    #[test]
    fn the_checkpoint_is_the_newest_mark_at_or_below_the_ack() {
        let mut ring = Ring::new(16);
        for (id, cursor) in [(0, 5), (1, 7), (3, 9), (4, 12)] {
            ring.push(mark(id, cursor));
        }
        assert_eq!(ring.at_or_below(2).map(|m| m.cursor), Some(7));
        assert_eq!(ring.at_or_below(3).map(|m| m.cursor), Some(9));
        assert_eq!(ring.at_or_below(100).map(|m| m.cursor), Some(12));
        ring.stored(3);
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.at_or_below(2), None, "older marks are gone");
    }

    #[test]
    fn a_later_cursor_for_the_same_id_replaces_the_mark() {
        let mut ring = Ring::new(16);
        ring.push(mark(2, 10));
        ring.push(mark(2, 15));
        ring.push(mark(2, 12));
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.at_or_below(2).map(|m| m.cursor), Some(15));
    }

    #[test]
    fn a_full_ring_thins_its_older_half_and_stays_bounded() {
        let mut ring = Ring::new(8);
        for id in 1..=1000 {
            ring.push(mark(id, id * 2));
            assert!(ring.len() <= 8);
        }
        // The newest marks stay, older ones are spread out.
        assert_eq!(ring.at_or_below(1000).map(|m| m.id), Some(1000));
        assert_eq!(ring.at_or_below(999).map(|m| m.id), Some(999));
        let oldest = ring.marks.front().map(|m| m.id).unwrap_or(0);
        assert!(
            oldest < 990,
            "the ring reaches back past the last few: {oldest}"
        );
        let ids: Vec<u64> = ring.marks.iter().map(|m| m.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
