//! A pure fuzz entry point for every parser in [`super`], usable from `cargo fuzz`
//! (`fuzz_target!(|data: &[u8]| switchboard::protocol::fuzz::fuzz_parse(data))`) and from the
//! deterministic property loop in the unit tests.
//!
//! Parsers must never panic on any input. Beyond that, `fuzz_parse` asserts invariants, so a
//! panic here always means a bug in the protocol code:
//! - feeding the bytes in two pieces gives the same messages, error and leftover as feeding
//!   them at once (partial records are handled correctly);
//! - every parsed message, written again with the same protocol, parses back to itself;
//! - every message parsed from JSON can be written as MessagePack, and reads back as the same
//!   message type.

use bytes::BytesMut;

use super::{HubMessage, Protocol, ProtocolError, handshake, messagepack, negotiate};

/// Feeds `data` to both hub protocol parsers, the handshake parser, the negotiate version
/// parser and the MessagePack -> JSON converter.
pub fn fuzz_parse(data: &[u8]) {
    let max = usize::from(data.get(1).copied().unwrap_or(u8::MAX)) * 64 + 1;
    let split = usize::from(data.first().copied().unwrap_or(0)) % (data.len() + 1);
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let whole = parse_in_pieces(protocol, data, &[], max);
        let pieces = parse_in_pieces(protocol, data, &[split], max);
        assert_eq!(
            whole, pieces,
            "{protocol:?}: split at {split} changed the result"
        );
        for message in &whole.messages {
            check_round_trip(protocol, message);
            if protocol == Protocol::Json {
                check_json_to_messagepack(message);
            }
        }
    }

    let mut buf = BytesMut::from(data);
    if let Ok(Some(request)) = handshake::parse_handshake(&mut buf, max) {
        let _ = handshake::select(&request, &[super::TransferFormat::Text]);
    }
    let _ = negotiate::parse_negotiate_version(std::str::from_utf8(data).ok());
    let _ = messagepack::msgpack_to_json(data);
}

/// What a parser made of a byte stream: the messages, the first error (if any) and the bytes
/// left in the buffer.
#[derive(Debug, PartialEq)]
pub(crate) struct Parsed {
    pub(crate) messages: Vec<HubMessage>,
    pub(crate) result: Result<(), ProtocolError>,
    pub(crate) leftover: Vec<u8>,
}

/// Feeds `data` in pieces cut at `cuts` (offsets into `data`, in any order; out-of-range ones
/// are clamped), parsing after each piece as a connection does after each read. After an error
/// nothing more is parsed; the unread rest is still part of the leftover.
pub(crate) fn parse_in_pieces(
    protocol: Protocol,
    data: &[u8],
    cuts: &[usize],
    max: usize,
) -> Parsed {
    let mut ends: Vec<usize> = cuts.iter().map(|&cut| cut.min(data.len())).collect();
    ends.push(data.len());
    ends.sort_unstable();
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    let mut result = Ok(());
    let mut fed = 0;
    for end in ends {
        buf.extend_from_slice(data.get(fed..end).unwrap_or_default());
        fed = end;
        if result.is_ok() {
            result = protocol.parse_messages(&mut buf, max, &mut messages);
        }
    }
    Parsed {
        messages,
        result,
        leftover: buf.to_vec(),
    }
}

/// `message` written with `protocol` and parsed back, asserting that both
/// succeed and that nothing is left over.
fn write_and_parse(protocol: Protocol, message: &HubMessage) -> Vec<HubMessage> {
    let mut encoded = Vec::new();
    let written = protocol.write_message(message, &mut encoded);
    assert_eq!(
        written,
        Ok(()),
        "{protocol:?}: a parsed message failed to write: {message:?}"
    );
    let mut buf = BytesMut::from(&encoded[..]);
    let mut again = Vec::new();
    let reparsed = protocol.parse_messages(&mut buf, usize::MAX, &mut again);
    assert_eq!(
        reparsed,
        Ok(()),
        "{protocol:?}: re-parse of {encoded:?} failed"
    );
    assert!(buf.is_empty(), "{protocol:?}: re-parse left bytes behind");
    again
}

/// Asserts that `message`, written with `protocol`, parses back to itself.
pub(crate) fn check_round_trip(protocol: Protocol, message: &HubMessage) {
    let again = write_and_parse(protocol, message);
    assert_eq!(
        again.as_slice(),
        std::slice::from_ref(message),
        "{protocol:?}: round trip changed it"
    );
}

/// Asserts that a message read from JSON can be written as MessagePack and reads back as the same
/// message type.
pub(crate) fn check_json_to_messagepack(message: &HubMessage) {
    // Both readers limit nesting alike, so anything a JSON client sent reads back.
    let again = write_and_parse(Protocol::MessagePack, message);
    assert_eq!(again.len(), 1);
    assert_eq!(
        again.first().map(HubMessage::message_type),
        Some(message.message_type())
    );
}
