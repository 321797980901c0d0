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
        let whole = parse_in_pieces(protocol, data, data.len(), max);
        let pieces = parse_in_pieces(protocol, data, split, max);
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

#[derive(Debug, PartialEq)]
struct Parsed {
    messages: Vec<HubMessage>,
    result: Result<(), ProtocolError>,
    leftover: Vec<u8>,
}

/// Parses `data[..split]`, then appends the rest and parses again (unless the first call failed).
fn parse_in_pieces(protocol: Protocol, data: &[u8], split: usize, max: usize) -> Parsed {
    let (head, tail) = data.split_at(split.min(data.len()));
    let mut buf = BytesMut::from(head);
    let mut messages = Vec::new();
    let mut result = protocol.parse_messages(&mut buf, max, &mut messages);
    // After an error nothing more is parsed; the unread tail is still part of the leftover.
    buf.extend_from_slice(tail);
    if result.is_ok() && !tail.is_empty() {
        result = protocol.parse_messages(&mut buf, max, &mut messages);
    }
    Parsed {
        messages,
        result,
        leftover: buf.to_vec(),
    }
}

fn check_round_trip(protocol: Protocol, message: &HubMessage) {
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
    assert_eq!(
        again.as_slice(),
        std::slice::from_ref(message),
        "{protocol:?}: round trip changed it"
    );
}

fn check_json_to_messagepack(message: &HubMessage) {
    let mut encoded = Vec::new();
    let written = Protocol::MessagePack.write_message(message, &mut encoded);
    assert_eq!(
        written,
        Ok(()),
        "JSON message could not be written as MessagePack: {message:?}"
    );
    let mut buf = BytesMut::from(&encoded[..]);
    let mut again = Vec::new();
    // Both readers limit nesting alike, so anything a JSON client sent reads back.
    if let Err(e) = Protocol::MessagePack.parse_messages(&mut buf, usize::MAX, &mut again) {
        panic!("MessagePack re-parse of {message:?} failed: {e}");
    }
    assert_eq!(again.len(), 1);
    assert_eq!(
        again.first().map(HubMessage::message_type),
        Some(message.message_type())
    );
}
