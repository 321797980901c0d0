//! Property tests of the frame reader, alone and feeding the hub protocol parsers as the
//! connection does: whatever the TCP reads and however messages are cut into frames, the same
//! events, records and errors come out, and little is buffered.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::{Event, FrameReader, Violation};
use crate::protocol::fuzz::parse_in_pieces;
use crate::protocol::proptests::config;
use crate::protocol::proptests::strategies::{conversation, records};
use crate::protocol::{HubMessage, Protocol, ProtocolError};

/// The most the reader keeps between reads: a header cut short (at most 13 of its 14 bytes) or
/// a control frame's payload (at most 125).
const MAX_BUFFERED: usize = 125;

const TEXT: u8 = 0x01;
const BINARY: u8 = 0x02;
const CONT: u8 = 0x00;
const PING: u8 = 0x09;
const PONG: u8 = 0x0a;
const FIN: u8 = 0x80;

use super::tests::masked_frame as frame;

/// A message cut into frames at `cuts`, with a Ping or Pong after some of its fragments.
#[derive(Debug, Clone)]
struct Message {
    binary: bool,
    payload: Vec<u8>,
    cuts: Vec<Index>,
    controls: Vec<(Index, bool, Vec<u8>)>,
    mask: [u8; 4],
}

impl Message {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut ends: Vec<usize> = self
            .cuts
            .iter()
            .map(|cut| cut.index(self.payload.len() + 1))
            .collect();
        ends.push(self.payload.len());
        ends.sort_unstable();
        ends.dedup();
        let mut start = 0;
        for (i, &end) in ends.iter().enumerate() {
            let opcode = match (i, self.binary) {
                (0, true) => BINARY,
                (0, false) => TEXT,
                _ => CONT,
            };
            let fin = if i + 1 == ends.len() { FIN } else { 0 };
            out.extend(frame(fin | opcode, &self.payload[start..end], self.mask));
            start = end;
            for (after, ping, payload) in &self.controls {
                if after.index(ends.len()) == i {
                    let opcode = if *ping { PING } else { PONG };
                    out.extend(frame(FIN | opcode, payload, self.mask));
                }
            }
        }
    }
}

fn control_payload() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=125)
}

/// A message of `payload` (UTF-8 when text), fragmented anyhow.
fn message_of(binary: bool, payload: Vec<u8>) -> impl Strategy<Value = Message> {
    (
        vec(any::<Index>(), 0..5),
        vec((any::<Index>(), any::<bool>(), control_payload()), 0..3),
        any::<[u8; 4]>(),
    )
        .prop_map(move |(cuts, controls, mask)| Message {
            binary,
            payload: payload.clone(),
            cuts,
            controls,
            mask,
        })
}

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        vec(any::<u8>(), 0..300).prop_flat_map(|payload| message_of(true, payload)),
        "\\PC{0,100}".prop_flat_map(|text| message_of(false, text.into_bytes())),
    ]
}

/// Valid frames, maybe followed by anything (often a violation, or a frame cut short).
fn wire() -> impl Strategy<Value = (Vec<Message>, Vec<u8>)> {
    (
        vec(any_message(), 0..5),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => vec(any::<u8>(), 1..40),
        ],
    )
}

fn encode(messages: &[Message], tail: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        message.encode(&mut out);
    }
    out.extend_from_slice(tail);
    out
}

/// `data` cut at `cuts` (offsets in any order), as successive reads would bring it.
fn pieces<'a>(data: &'a [u8], cuts: &[usize]) -> impl Iterator<Item = &'a [u8]> {
    let mut ends: Vec<usize> = cuts.to_vec();
    ends.push(data.len());
    ends.sort_unstable();
    let starts = std::iter::once(0).chain(ends.clone());
    starts.zip(ends).map(move |(start, end)| &data[start..end])
}

/// Feeds `data` cut at `cuts`; the events with adjacent data joined, and the violation if any.
/// Checks after every read that little stays buffered.
fn read_in_pieces(data: &[u8], cuts: &[usize]) -> (Vec<Event>, Result<(), Violation>) {
    let mut reader = FrameReader::new();
    let mut buf = BytesMut::new();
    let mut events: Vec<Event> = Vec::new();
    for piece in pieces(data, cuts) {
        buf.extend_from_slice(piece);
        loop {
            match reader.next(&mut buf) {
                Ok(Some(Event::Data(more))) => match events.last_mut() {
                    Some(Event::Data(joined)) => {
                        let mut both = BytesMut::from(&joined[..]);
                        both.extend_from_slice(&more);
                        *joined = both.freeze();
                    }
                    _ => events.push(Event::Data(more)),
                },
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(violation) => return (events, Err(violation)),
            }
        }
        assert!(
            buf.len() <= MAX_BUFFERED,
            "{} bytes buffered between reads",
            buf.len()
        );
    }
    (events, Ok(()))
}

fn offsets(indexes: &[Index], len: usize) -> Vec<usize> {
    indexes.iter().map(|i| i.index(len + 1)).collect()
}

/// What the connection makes of WebSocket bytes: frames read as they arrive, their data
/// appended to the record buffer and parsed when `may_parse` says new bytes may end a record
/// (as `connection::run` does), until a violation or a protocol error.
struct Received {
    messages: Vec<HubMessage>,
    result: Result<(), ProtocolError>,
    violation: Result<(), Violation>,
}

fn receive(protocol: Protocol, data: &[u8], cuts: &[usize], max: usize) -> Received {
    let mut reader = FrameReader::new();
    let mut wire = BytesMut::new();
    let mut records = BytesMut::new();
    let mut received = Received {
        messages: Vec::new(),
        result: Ok(()),
        violation: Ok(()),
    };
    for piece in pieces(data, cuts) {
        wire.extend_from_slice(piece);
        loop {
            match reader.next(&mut wire) {
                Ok(Some(Event::Data(piece))) => {
                    records.extend_from_slice(&piece);
                    if protocol.may_parse(&piece, records.len(), max) {
                        received.result =
                            protocol.parse_messages(&mut records, max, &mut received.messages);
                        if received.result.is_err() {
                            return received;
                        }
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(violation) => {
                    received.violation = Err(violation);
                    return received;
                }
            }
        }
    }
    received
}

/// The records of `messages` sent as WebSocket messages the way clients do: JSON as text
/// messages of whole records (the official client joins queued ones), MessagePack as binary
/// messages cut anywhere; each message fragmented anyhow.
fn as_websocket(
    protocol: Protocol,
    records: &[Vec<u8>],
    joins: &[bool],
    cuts: &[Index],
    mask: [u8; 4],
) -> Vec<u8> {
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        match payloads.last_mut() {
            Some(last) if joins.get(i).copied().unwrap_or(false) => last.extend(record),
            _ => payloads.push(record.clone()),
        }
    }
    if protocol == Protocol::MessagePack {
        // Binary messages need not keep records whole: re-cut the whole stream.
        let stream = payloads.concat();
        let mut ends: Vec<usize> = offsets(cuts, stream.len());
        ends.push(stream.len());
        ends.sort_unstable();
        ends.dedup();
        let mut start = 0;
        payloads = ends
            .into_iter()
            .map(|end| {
                let piece = stream[start..end].to_vec();
                start = end;
                piece
            })
            .collect();
    }
    let mut out = Vec::new();
    for (i, payload) in payloads.into_iter().enumerate() {
        Message {
            binary: protocol == Protocol::MessagePack,
            payload,
            cuts: cuts.iter().skip(i).take(3).cloned().collect(),
            controls: Vec::new(),
            mask,
        }
        .encode(&mut out);
    }
    out
}

proptest! {
    #![proptest_config(config(256))]

    /// Frames read in any pieces give the events and violation of one read (streamed ahead of a
    /// violation, see below), and never more than a control frame stays buffered.
    #[test]
    fn frame_split_feeding_matches_one_read(
        (messages, tail) in wire(),
        cuts in vec(any::<Index>(), 0..10),
    ) {
        let data = encode(&messages, &tail);
        let whole = read_in_pieces(&data, &[]);
        let pieces = read_in_pieces(&data, &offsets(&cuts, data.len()));
        if whole.1.is_ok() {
            prop_assert_eq!(whole, pieces);
        } else {
            // The same violation either way. Before it, the reader streams: fed in pieces, it
            // hands out the valid start of a text message whose bad end it has not seen yet,
            // which one read refuses whole. So the events of one read come first, the last
            // data of it possibly shorter.
            prop_assert_eq!(&whole.1, &pieces.1);
            let (one, split) = (&whole.0, &pieces.0);
            prop_assert!(split.len() >= one.len(), "{one:?} vs {split:?}");
            for (i, (a, b)) in one.iter().zip(split).enumerate() {
                match (a, b) {
                    (Event::Data(a), Event::Data(b)) if i + 1 == one.len() => {
                        prop_assert!(b.starts_with(a), "{a:?} vs {b:?}");
                    }
                    _ => prop_assert_eq!(a, b),
                }
            }
        }
    }

    /// Valid frames carry exactly their payloads: the data of every message in order, each
    /// Ping's payload, whatever the fragmentation and the reads.
    #[test]
    fn valid_frames_carry_their_payloads(
        (messages, _) in wire(),
        cuts in vec(any::<Index>(), 0..10),
    ) {
        let data = encode(&messages, &[]);
        let (events, result) = read_in_pieces(&data, &offsets(&cuts, data.len()));
        prop_assert_eq!(result, Ok(()));
        let joined: Vec<u8> = events
            .iter()
            .filter_map(|e| match e { Event::Data(d) => Some(d.to_vec()), _ => None })
            .collect::<Vec<_>>()
            .concat();
        prop_assert_eq!(joined, messages.iter().map(|m| m.payload.clone()).collect::<Vec<_>>().concat());
        let pings = events.iter().filter(|e| matches!(e, Event::Ping(_))).count();
        let sent: usize = messages.iter().map(|m| m.controls.iter().filter(|c| c.1).count()).sum();
        prop_assert_eq!(pings, sent);
    }

    /// Records sent over WebSocket, however the client joins them into messages, the messages
    /// into frames and the network into reads, give the records (and the size-limit error) that
    /// parsing the record stream at once gives.
    #[test]
    fn records_over_websocket_match_records_at_once(
        (protocol, messages) in conversation(),
        joins in vec(any::<bool>(), 0..6),
        frame_cuts in vec(any::<Index>(), 0..12),
        read_cuts in vec(any::<Index>(), 0..10),
        mask in any::<[u8; 4]>(),
        max in prop_oneof![Just(usize::MAX), 0usize..64, 64usize..1024],
    ) {
        let records = records(protocol, &messages);
        let expected = parse_in_pieces(protocol, &records.concat(), &[], max);
        let data = as_websocket(protocol, &records, &joins, &frame_cuts, mask);
        let received = receive(protocol, &data, &offsets(&read_cuts, data.len()), max);
        prop_assert_eq!(received.violation, Ok(()));
        prop_assert_eq!(received.messages, expected.messages);
        prop_assert_eq!(received.result, expected.result);
    }
}
