//! Gap detection: the stream sequence of the last message a node applied
//! from a partition. A stream's sequence has no holes, so a jump means the
//! node missed messages (they expired before it read them, or were never
//! delivered); a repeat means a recreated consumer delivered one again.

/// A message's place in the cluster: its partition and stream sequence. The
/// same message has the same cursor on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Cursor {
    pub partition: u32,
    pub sequence: u64,
}

/// What a newly read sequence means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
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
pub struct Tracker {
    last: Option<u64>,
}

impl Tracker {
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Records `sequence` (unless it is a duplicate) and says what it means.
    pub fn observe(&mut self, sequence: u64) -> Observed {
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
    pub fn reset(&mut self) {
        self.last = None;
    }
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
}
