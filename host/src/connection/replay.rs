//! Stateful reconnect bookkeeping (HubProtocol.md), pure: no I/O, no clocks.
//!
//! Each side numbers the trackable messages (types 1–5) it sends from 1, keeps them until the
//! peer acknowledges them, and after a reconnect sends `Sequence` with the oldest id it still
//! holds, then replays them. [`ReplayBuffer`] is the sending side of that for one connection:
//! numbering, a byte bound and trimming on Ack. [`InboundSequence`] is the receiving side:
//! counting what arrives, dropping what arrives before the peer's `Sequence`, and dropping
//! duplicates, which a replay always brings (a client that replays an invocation the server
//! already ran must not run it twice).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::protocol::HubMessage;

/// The messages sent to the peer and not yet acknowledged, oldest first.
#[derive(Debug)]
pub struct ReplayBuffer {
    /// `(sequence id, encoded record)`; ids are consecutive.
    frames: VecDeque<(u64, Bytes)>,
    /// Sum of the records' lengths.
    bytes: usize,
    /// Bytes past which the buffer takes nothing more until an Ack (backpressure).
    limit: usize,
    /// The id the next pushed message gets; ids start at 1.
    next_id: u64,
}

impl ReplayBuffer {
    /// An empty buffer that takes nothing more past `limit` bytes until an Ack; ids start at 1.
    pub fn new(limit: usize) -> ReplayBuffer {
        ReplayBuffer {
            frames: VecDeque::new(),
            bytes: 0,
            limit,
            next_id: 1,
        }
    }

    /// A buffer whose first message gets id `last + 1`: a connection taken
    /// over after the client acknowledged up to `last`.
    pub fn starting_after(limit: usize, last: u64) -> ReplayBuffer {
        ReplayBuffer {
            next_id: last + 1,
            ..ReplayBuffer::new(limit)
        }
    }

    /// Whether another message may be pushed. As in ASP.NET, the check is made before a push,
    /// so one message larger than the whole limit still goes through (alone).
    pub fn has_room(&self) -> bool {
        self.bytes < self.limit
    }

    /// Bytes that may still be pushed before the buffer is full.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.bytes)
    }

    /// Numbers and keeps one encoded trackable record; returns its sequence id.
    pub fn push(&mut self, record: Bytes) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.bytes += record.len();
        self.frames.push_back((id, record));
        id
    }

    /// Drops every message up to and including `sequence_id` ("the peer has processed
    /// everything up to N"); returns how many were dropped. An Ack for ids never sent releases
    /// what there is, as ASP.NET does.
    pub fn ack(&mut self, sequence_id: u64) -> usize {
        let mut released = 0;
        while let Some((id, record)) = self.frames.front() {
            if *id > sequence_id {
                break;
            }
            self.bytes -= record.len();
            self.frames.pop_front();
            released += 1;
        }
        released
    }

    /// The id a `Sequence` message announces after a reconnect: the oldest unacknowledged
    /// message, or the next id when every message was acknowledged.
    pub fn resend_from(&self) -> u64 {
        self.frames.front().map_or(self.next_id, |(id, _)| *id)
    }

    /// The unacknowledged records, oldest first, to replay after the `Sequence`.
    pub fn unacked(&self) -> impl Iterator<Item = &Bytes> {
        self.frames.iter().map(|(_, record)| record)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether it holds no message: none sent yet, or all acked.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// What to do with a message from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Handle it.
    Process,
    /// A duplicate of a message handled already, or anything that arrived after a reconnect
    /// before the peer's `Sequence`: ignore it.
    Drop,
    /// The peer's `Sequence`, applied; nothing else to do with it.
    Sequenced,
}

/// The peer announced a `Sequence` id beyond the messages it has sent: messages were lost and
/// cannot be recovered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Sequence ID greater than amount of messages we've received.")]
pub struct SequenceGap;

/// The receiving side: which of the peer's messages are new.
#[derive(Debug)]
pub struct InboundSequence {
    /// The id the peer's next trackable message has.
    next_id: u64,
    /// The highest id handed on so far (0: none yet).
    latest: u64,
    /// After a reconnect, until the peer's `Sequence`: everything else is dropped.
    awaiting_sequence: bool,
    /// Taken over from a node that died: what it handled is not known here,
    /// so the peer's `Sequence` sets where its messages are.
    any_sequence: bool,
}

impl Default for InboundSequence {
    fn default() -> Self {
        InboundSequence::new()
    }
}

impl InboundSequence {
    /// A sequence that expects id 1 next.
    pub fn new() -> InboundSequence {
        InboundSequence {
            next_id: 1,
            latest: 0,
            awaiting_sequence: false,
            any_sequence: false,
        }
    }

    /// The receiving side of a connection taken over from another node: the
    /// peer's first message is its `Sequence`, and whatever it replays after
    /// it is handled (the node that got it before is gone).
    pub fn taken_over() -> InboundSequence {
        InboundSequence {
            awaiting_sequence: true,
            any_sequence: true,
            ..InboundSequence::new()
        }
    }

    /// Taken over: the old owner stored (and handled, or was running) the
    /// peer's messages up to `id`, so those it resends are dropped.
    pub fn stored_through(&mut self, id: u64) {
        self.latest = self.latest.max(id);
    }

    /// A new transport replaced the old one: the peer starts it with `Sequence`.
    pub fn reconnected(&mut self) {
        self.awaiting_sequence = true;
    }

    /// Classifies one message from the peer, counting it when it is trackable.
    pub fn admit(&mut self, message: &HubMessage) -> Result<Admit, SequenceGap> {
        if let HubMessage::Sequence { sequence_id } = message {
            self.awaiting_sequence = false;
            if std::mem::take(&mut self.any_sequence) {
                self.next_id = (*sequence_id).max(1);
                self.latest = self.latest.max(self.next_id - 1);
                return Ok(Admit::Sequenced);
            }
            if *sequence_id > self.next_id {
                return Err(SequenceGap);
            }
            self.next_id = *sequence_id;
            return Ok(Admit::Sequenced);
        }
        if self.awaiting_sequence {
            return Ok(Admit::Drop);
        }
        if !message.is_trackable() {
            return Ok(Admit::Process);
        }
        let id = self.next_id;
        self.next_id += 1;
        if id <= self.latest {
            return Ok(Admit::Drop);
        }
        self.latest = id;
        Ok(Admit::Process)
    }

    /// The highest id processed: what an Ack to the peer says.
    pub fn latest(&self) -> u64 {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CompletionOutcome, RawValue};

    fn record(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    fn invocation(target: &str) -> HubMessage {
        let arguments = RawValue::from_string("[]".to_owned()).expect("json");
        HubMessage::invocation(Some(target.to_owned()), target.to_owned(), arguments)
    }

    fn sequence(sequence_id: u64) -> HubMessage {
        HubMessage::Sequence { sequence_id }
    }

    /// A sequence that processed an invocation of each of `names`, then lost its transport.
    fn reconnected_after(names: &[&str]) -> InboundSequence {
        let mut inbound = InboundSequence::new();
        for name in names {
            assert_eq!(inbound.admit(&invocation(name)), Ok(Admit::Process));
        }
        inbound.reconnected();
        inbound
    }

    /// Admits each message in turn, asserting what becomes of it.
    fn admit_all(inbound: &mut InboundSequence, steps: &[(HubMessage, Admit)]) {
        for (message, want) in steps {
            assert_eq!(inbound.admit(message), Ok(*want), "{message:?}");
        }
    }

    fn completion() -> HubMessage {
        HubMessage::Completion {
            invocation_id: "1".to_owned(),
            outcome: CompletionOutcome::Void,
            headers: Vec::new(),
        }
    }

    #[test]
    fn numbers_from_one_and_trims_on_ack() {
        let mut buffer = ReplayBuffer::new(1000);
        assert_eq!(buffer.resend_from(), 1, "nothing sent: the next id");
        assert_eq!(buffer.push(record(10)), 1);
        assert_eq!(buffer.push(record(20)), 2);
        assert_eq!(buffer.push(record(30)), 3);
        assert_eq!((buffer.len(), buffer.bytes()), (3, 60));
        assert_eq!(buffer.resend_from(), 1);

        assert_eq!(buffer.ack(2), 2);
        assert_eq!((buffer.len(), buffer.bytes()), (1, 30));
        assert_eq!(buffer.resend_from(), 3);
        assert_eq!(buffer.unacked().map(Bytes::len).collect::<Vec<_>>(), [30]);

        assert_eq!(buffer.ack(1), 0, "an old Ack changes nothing");
        assert_eq!(buffer.ack(2), 0, "a repeated Ack changes nothing");
        assert_eq!(buffer.ack(3), 1);
        assert!(buffer.is_empty());
        assert_eq!(buffer.bytes(), 0);
        assert_eq!(buffer.resend_from(), 4, "all acknowledged: the next id");
        assert_eq!(buffer.push(record(1)), 4, "ids keep counting after acks");
    }

    #[test]
    fn an_ack_beyond_what_was_sent_releases_everything() {
        let mut buffer = ReplayBuffer::new(1000);
        buffer.push(record(5));
        buffer.push(record(5));
        assert_eq!(buffer.ack(99), 2);
        assert!(buffer.is_empty());
        assert_eq!(buffer.push(record(5)), 3);
    }

    #[test]
    fn bounded_by_bytes_until_acked() {
        let mut buffer = ReplayBuffer::new(100);
        assert!(buffer.has_room());
        for _ in 0..3 {
            buffer.push(record(30));
        }
        assert!(buffer.has_room(), "90 of 100 bytes");
        buffer.push(record(30));
        assert!(!buffer.has_room(), "120 of 100 bytes: full");
        buffer.ack(1);
        assert!(buffer.has_room(), "an Ack makes room");
    }

    #[test]
    fn one_record_larger_than_the_limit_still_goes_alone() {
        let mut buffer = ReplayBuffer::new(10);
        assert!(buffer.has_room());
        buffer.push(record(50));
        assert!(!buffer.has_room());
        assert_eq!(buffer.ack(1), 1);
        assert!(buffer.has_room());
    }

    #[test]
    fn replay_holds_records_in_order() {
        let mut buffer = ReplayBuffer::new(1000);
        for text in ["a", "b", "c", "d"] {
            buffer.push(Bytes::from(text));
        }
        buffer.ack(1);
        let replay: Vec<&[u8]> = buffer.unacked().map(|b| &b[..]).collect();
        assert_eq!(replay, [b"b", b"c", b"d"]);
        assert_eq!(buffer.resend_from(), 2);
    }

    #[test]
    fn counts_only_trackable_messages() {
        let mut inbound = InboundSequence::new();
        let close = HubMessage::Close {
            error: None,
            allow_reconnect: false,
        };
        admit_all(
            &mut inbound,
            &[
                (HubMessage::Ping, Admit::Process),
                (invocation("a"), Admit::Process),
                (HubMessage::Ack { sequence_id: 7 }, Admit::Process),
                (completion(), Admit::Process),
                (close, Admit::Process),
            ],
        );
        assert_eq!(inbound.latest(), 2);
    }

    #[test]
    fn after_a_reconnect_drops_until_sequence_then_drops_duplicates() {
        let mut inbound = reconnected_after(&["1", "2", "3"]);
        admit_all(
            &mut inbound,
            &[
                (invocation("stale"), Admit::Drop),
                (HubMessage::Ping, Admit::Drop),
                // The peer still holds 2 and 3 (unacknowledged) and replays them, then sends 4.
                (sequence(2), Admit::Sequenced),
                (invocation("2"), Admit::Drop),
                (invocation("3"), Admit::Drop),
                (invocation("4"), Admit::Process),
            ],
        );
        assert_eq!(inbound.latest(), 4);
    }

    #[test]
    fn a_sequence_at_the_next_id_replays_nothing_old() {
        let mut inbound = reconnected_after(&["1"]);
        admit_all(
            &mut inbound,
            &[
                (sequence(2), Admit::Sequenced),
                (invocation("2"), Admit::Process),
            ],
        );
    }

    #[test]
    fn messages_lost_in_the_drop_are_processed_once_replayed() {
        // The client sent 1..=3, but only 1 reached us before the drop.
        let mut inbound = reconnected_after(&["1"]);
        inbound.admit(&sequence(1)).expect("ok");
        admit_all(
            &mut inbound,
            &[
                (invocation("1"), Admit::Drop),
                (invocation("2"), Admit::Process),
                (invocation("3"), Admit::Process),
            ],
        );
        assert_eq!(inbound.latest(), 3);
    }

    #[test]
    fn a_taken_over_connection_starts_where_the_peers_sequence_says() {
        let mut inbound = InboundSequence::taken_over();
        admit_all(
            &mut inbound,
            &[
                (invocation("early"), Admit::Drop),
                (sequence(7), Admit::Sequenced),
                (invocation("a"), Admit::Process),
            ],
        );
        assert_eq!(inbound.latest(), 7);
        let mut out = ReplayBuffer::starting_after(1000, 41);
        assert_eq!(out.resend_from(), 42);
        assert_eq!(out.push(record(3)), 42);
    }

    #[test]
    fn a_taker_drops_what_the_old_owner_stored_and_handles_the_rest_once() {
        let mut inbound = InboundSequence::taken_over();
        // The old owner stored the client's messages up to 8; the client
        // heard an Ack up to 6 only, so it resends from 7.
        inbound.stored_through(8);
        admit_all(
            &mut inbound,
            &[
                (sequence(7), Admit::Sequenced),
                (invocation("7"), Admit::Drop),
                (invocation("8"), Admit::Drop),
                (invocation("9"), Admit::Process),
            ],
        );
        assert_eq!(inbound.latest(), 9);
        // Nothing stored beyond what the client resends from: all of it runs.
        let mut inbound = InboundSequence::taken_over();
        inbound.stored_through(4);
        admit_all(
            &mut inbound,
            &[
                (sequence(5), Admit::Sequenced),
                (invocation("5"), Admit::Process),
            ],
        );
    }

    #[test]
    fn a_sequence_beyond_what_arrived_is_a_gap() {
        let mut inbound = reconnected_after(&["1"]);
        assert_eq!(
            inbound.admit(&sequence(3)),
            Err(SequenceGap),
            "message 2 was never received and the peer no longer has it"
        );
    }

    #[test]
    fn sender_and_receiver_agree_across_a_drop() {
        // A server buffer talking to a client-side counter: the drop loses two records on the
        // wire; the replay after Sequence delivers each message exactly once.
        let mut server = ReplayBuffer::new(10_000);
        let mut client = InboundSequence::new();
        let mut delivered = Vec::new();
        let message = |n: u64| invocation(&n.to_string());
        for n in 1..=5u64 {
            server.push(Bytes::from(n.to_string()));
            if n <= 3 {
                assert_eq!(client.admit(&message(n)), Ok(Admit::Process));
                delivered.push(n);
            }
        }
        server.ack(2); // the client acknowledged 1 and 2 before the drop
        client.reconnected();
        let from = server.resend_from();
        assert_eq!(from, 3);
        assert_eq!(client.admit(&sequence(from)), Ok(Admit::Sequenced));
        for record in server.unacked() {
            let n: u64 = std::str::from_utf8(record)
                .expect("utf8")
                .parse()
                .expect("n");
            if client.admit(&message(n)) == Ok(Admit::Process) {
                delivered.push(n);
            }
        }
        assert_eq!(delivered, [1, 2, 3, 4, 5]);
    }
}
