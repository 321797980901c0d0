//! Gap detection: the stream sequence of the last message a node applied
//! from a partition. A stream's sequence has no holes, so a jump means the
//! node missed messages (they expired before it read them, or were never
//! delivered); a repeat means a recreated consumer delivered one again.

pub use crate::backplane::Cursor;

/// What a newly read sequence means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Observed {
    /// The first message since the node started reading: nothing to compare.
    First,
    /// The message right after the last one.
    Next,
    /// Already seen; skip it.
    Duplicate,
    /// This many messages were skipped before it.
    Gap(u64),
}

/// The last sequence read from one partition.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tracker {
    last: Option<u64>,
}

impl Tracker {
    pub(super) fn last(&self) -> Option<u64> {
        self.last
    }

    /// Records `sequence` (unless it is a duplicate) and says what it means.
    pub(super) fn observe(&mut self, sequence: u64) -> Observed {
        let seen = match self.last {
            None => Observed::First,
            Some(last) if sequence <= last => return Observed::Duplicate,
            Some(last) if sequence == last + 1 => Observed::Next,
            Some(last) => Observed::Gap(sequence - last - 1),
        };
        self.last = Some(sequence);
        seen
    }

    /// The stream was recreated (its sequence starts over): forget the past.
    pub(super) fn reset(&mut self) {
        self.last = None;
    }

    /// Where a new consumer starts, given the stream's last sequence now.
    pub(super) fn resume(&self, stream_last: u64) -> Resume {
        match self.last {
            None => Resume::New,
            // The stream holds less than this node read: it was recreated.
            Some(last) if stream_last < last => Resume::Recreated,
            Some(last) => Resume::From(last + 1),
        }
    }
}

/// Where a partition's consumer starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resume {
    /// Nothing read yet: from what is published from now on.
    New,
    /// Right after the last message read, so what was stored while the node
    /// was not reading is recovered (a jump, if some of it has expired since,
    /// is reported as a gap when the first message arrives).
    From(u64),
    /// The stream is new (NATS lost it, or it was deleted): its sequences mean
    /// nothing to this node; read from its end and forget the past.
    Recreated,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_next_duplicates_and_gaps() {
        let mut t = Tracker::default();
        assert_eq!(t.observe(5), Observed::First);
        assert_eq!(t.observe(6), Observed::Next);
        assert_eq!(t.observe(6), Observed::Duplicate);
        assert_eq!(t.observe(3), Observed::Duplicate);
        assert_eq!(t.observe(10), Observed::Gap(3));
        assert_eq!(t.last(), Some(10));
        assert_eq!(t.observe(11), Observed::Next);
        t.reset();
        assert_eq!(t.observe(1), Observed::First);
    }

    #[test]
    fn resumes_after_the_last_message_read() {
        let mut t = Tracker::default();
        assert_eq!(t.resume(100), Resume::New);
        t.observe(7);
        assert_eq!(
            t.resume(7),
            Resume::From(8),
            "nothing new: wait right after it"
        );
        assert_eq!(
            t.resume(50),
            Resume::From(8),
            "recover 8..=50 from the stream"
        );
        assert_eq!(t.resume(3), Resume::Recreated);
        // Messages 8..=19 expired before the new consumer read them: one gap of 12.
        assert_eq!(t.observe(20), Observed::Gap(12));
    }

    #[test]
    fn cursors_order_by_partition_then_sequence() {
        let a = Cursor {
            partition: 0,
            sequence: 9,
        };
        let b = Cursor {
            partition: 1,
            sequence: 2,
        };
        let c = Cursor {
            partition: 1,
            sequence: 3,
        };
        assert!(a < b && b < c);
        assert_eq!(
            serde_json::to_string(&c).expect("json"),
            r#"{"partition":1,"sequence":3}"#
        );
    }
}
