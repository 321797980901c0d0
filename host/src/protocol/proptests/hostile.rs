//! What an attacker sends: the parsers answer with a protocol error (never a panic, never an
//! allocation sized by a length the peer declared), and accept nothing they cannot carry on.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;

use super::super::fuzz::fuzz_parse;
use super::super::handshake::parse_handshake;
use super::super::messagepack::msgpack_to_json;
use super::super::{HubMessage, Protocol, ProtocolError};
use super::alloc_meter::peak_bytes;
use super::config;
use super::strategies::{frame, hostile_bytes, length_bomb, mutated_stream, name};

/// Bytes a parser may hold per input byte: JSON text of MessagePack values grows (a control
/// character in a str becomes `\u0000`, nil becomes `null`), strings double while they grow, and
/// each tiny record becomes a `HubMessage` in the output vector. Declared lengths never count.
const BYTES_PER_INPUT_BYTE: usize = 128;
const FIXED_BYTES: usize = 64 * 1024;

fn parse(protocol: Protocol, data: &[u8]) -> (Vec<HubMessage>, Result<(), ProtocolError>) {
    let mut buf = BytesMut::from(data);
    let mut out = Vec::new();
    let result = protocol.parse_messages(&mut buf, usize::MAX, &mut out);
    (out, result)
}

/// The prefix of an Invocation body up to its arguments: `[1, {}, nil, "T", ` of 5 items (the
/// stream ids may be left out).
const INVOCATION_HEAD: &[u8] = &[0x95, 0x01, 0x80, 0xc0, 0xa1, b'T'];

/// Invalid UTF-8: a stray byte, an overlong form, a UTF-16 surrogate encoded as UTF-8, a cut
/// sequence, a code point above U+10FFFF, a lone continuation byte.
fn invalid_utf8() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![0xff]),
        Just(vec![0xc0, 0x80]),
        Just(vec![0xed, 0xa0, 0x80]),
        Just(vec![0xe2, 0x82]),
        Just(vec![0xf4, 0x90, 0x80, 0x80]),
        Just(vec![0x80]),
    ]
}

/// A JSON `\u` escape sequence that is not a whole UTF-16 character.
fn lone_surrogate() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r"\ud800".to_owned()),
        Just(r"\uDBFF".to_owned()),
        Just(r"\udc00".to_owned()),
        Just(r"\uDFFF".to_owned()),
        Just(r"\ud800\u0041".to_owned()),
        Just(r"\ud800\ud800".to_owned()),
        Just(r"\udc00\ud800".to_owned()),
        Just(r"\ud83d x".to_owned()),
    ]
}

/// A JSON record with `{s}` standing for the inside of one string literal, in each place a
/// client can put text.
const JSON_STRING_SLOTS: &[&str] = &[
    r#"{"type":1,"target":"{s}","arguments":[]}"#,
    r#"{"type":1,"invocationId":"{s}","target":"T","arguments":[]}"#,
    r#"{"type":1,"target":"T","arguments":["{s}"]}"#,
    r#"{"type":1,"target":"T","arguments":[{"{s}":1}]}"#,
    r#"{"type":1,"target":"T","arguments":[[{"a":["{s}"]}]]}"#,
    r#"{"type":1,"target":"T","arguments":[],"streamIds":["{s}"]}"#,
    r#"{"type":1,"target":"T","arguments":[],"headers":{"a":"{s}"}}"#,
    r#"{"type":1,"target":"T","arguments":[],"headers":{"{s}":"a"}}"#,
    r#"{"type":4,"invocationId":"1","target":"T","arguments":["{s}"]}"#,
    r#"{"type":2,"invocationId":"1","item":"{s}"}"#,
    r#"{"type":2,"invocationId":"1","item":{"{s}":null}}"#,
    r#"{"type":3,"invocationId":"1","result":"{s}"}"#,
    r#"{"type":3,"invocationId":"1","error":"{s}"}"#,
    r#"{"type":7,"error":"{s}"}"#,
];

proptest! {
    #![proptest_config(config(512))]

    /// The invariants of `fuzz_parse` (split feeding, round trips, JSON -> MessagePack) hold
    /// for junk and for damaged valid streams.
    #[test]
    fn fuzz_invariants_hold_for_any_bytes(
        data in prop_oneof![hostile_bytes(), mutated_stream().prop_map(|(_, data)| data)],
    ) {
        fuzz_parse(&data);
    }

    /// Whatever the bytes, parsing holds memory in proportion to them.
    #[test]
    fn allocation_is_bounded_by_the_input(
        data in prop_oneof![hostile_bytes(), mutated_stream().prop_map(|(_, data)| data)],
    ) {
        let bound = BYTES_PER_INPUT_BYTE * data.len() + FIXED_BYTES;
        for protocol in [Protocol::Json, Protocol::MessagePack] {
            let (_, peak) = peak_bytes(|| parse(protocol, &data));
            prop_assert!(peak <= bound, "{:?}: {} bytes held for {} input", protocol, peak, data.len());
        }
        let mut buf = BytesMut::from(&data[..]);
        let (_, peak) = peak_bytes(|| parse_handshake(&mut buf, usize::MAX));
        prop_assert!(peak <= bound, "handshake: {} bytes held for {} input", peak, data.len());
        let (_, peak) = peak_bytes(|| msgpack_to_json(&data));
        prop_assert!(peak <= bound, "msgpack_to_json: {} bytes held for {} input", peak, data.len());
    }

    /// A header declaring up to 4 GB of items or bytes, anywhere in a message, is an error once
    /// the data runs out, and costs a few hundred bytes (the error text), not the declared size.
    #[test]
    fn length_bombs_cost_nothing(
        bomb in length_bomb(),
        inside in 0usize..3,
        tail in vec(any::<u8>(), 0..8),
    ) {
        let mut body = INVOCATION_HEAD.to_vec();
        match inside {
            0 => {}
            1 => body.push(0x91),
            _ => body.extend_from_slice(&[0x91, 0x81, 0xa1, b'k']),
        }
        body.extend_from_slice(&bomb);
        body.extend_from_slice(&tail);
        let data = frame(&body);
        let ((messages, result), peak) = peak_bytes(|| parse(Protocol::MessagePack, &data));
        prop_assert!(messages.is_empty());
        prop_assert!(result.is_err(), "{:?} was accepted", data);
        prop_assert!(peak < 4096, "{} bytes held", peak);
        let (converted, peak) = peak_bytes(|| msgpack_to_json(&bomb));
        prop_assert!(converted.is_err());
        prop_assert!(peak < 4096, "{} bytes held", peak);
    }

    /// A frame prefix declaring up to 2 GB waits for the body without reserving it, and is
    /// refused at once when over the limit.
    #[test]
    fn declared_frame_lengths_cost_nothing(
        len in 0x1_0000u32..=0x7fff_ffff,
        max in prop_oneof![Just(usize::MAX), 0usize..0x1_0000],
        start in vec(any::<u8>(), 0..16),
    ) {
        let mut data = Vec::new();
        let mut rest = len;
        while rest >= 0x80 {
            data.push((rest as u8) | 0x80);
            rest >>= 7;
        }
        data.push(rest as u8);
        data.extend_from_slice(&start);
        let mut buf = BytesMut::from(&data[..]);
        let mut out = Vec::new();
        let (result, peak) =
            peak_bytes(|| Protocol::MessagePack.parse_messages(&mut buf, max, &mut out));
        if max == usize::MAX {
            prop_assert_eq!(result, Ok(()));
            prop_assert_eq!(&buf[..], &data[..]);
        } else {
            prop_assert_eq!(result, Err(ProtocolError::MessageTooLarge { limit: max }));
        }
        prop_assert!(peak < 1024, "{} bytes held", peak);
    }

    /// Prefixes of up to five bytes: a fifth byte over 0x07 (more than 2 GB) is refused,
    /// anything else is a length.
    #[test]
    fn bad_varints_are_refused(
        groups in vec(0x80u8..=0xff, 4),
        fifth in any::<u8>(),
        after in vec(any::<u8>(), 0..8),
    ) {
        let mut data = groups.clone();
        data.push(fifth);
        data.extend_from_slice(&after);
        let (messages, result) = parse(Protocol::MessagePack, &data);
        prop_assert!(messages.is_empty());
        if fifth > 0x07 {
            prop_assert!(
                matches!(&result, Err(ProtocolError::InvalidMessagePack(e)) if e.contains("2GB")),
                "{:?}", result
            );
        } else {
            // At least 2^28 bytes declared: waiting for them is not an error.
            prop_assert_eq!(result, Ok(()));
        }
    }

    /// Nesting deeper than 128 is refused with a protocol error, however deep, without
    /// exhausting the stack; shallower nesting is accepted.
    #[test]
    fn deep_nesting_is_refused_not_overflowed(depth in prop_oneof![0usize..200, 200usize..20_000], maps in any::<bool>()) {
        // MessagePack: arguments of `depth` nested arrays (or single-entry maps) around nil.
        let mut body = INVOCATION_HEAD.to_vec();
        body.push(0x91);
        for _ in 1..depth.max(1) {
            body.extend_from_slice(if maps { &[0x81, 0xa1, b'k'] } else { &[0x91] });
        }
        body.push(0xc0);
        let (_, result) = parse(Protocol::MessagePack, &frame(&body));
        let levels = depth.max(1);
        if levels < 128 {
            prop_assert_eq!(result, Ok(()));
        } else {
            prop_assert!(
                matches!(&result, Err(ProtocolError::InvalidMessagePack(e)) if e.contains("nested too deeply")),
                "{:?}", result
            );
        }

        // JSON: the same depth of arrays or objects as arguments.
        let (open, close) = if maps { ("{\"k\":", "}") } else { ("[", "]") };
        let record = format!(
            "{{\"type\":1,\"target\":\"T\",\"arguments\":[{}null{}]}}\u{1e}",
            open.repeat(depth),
            close.repeat(depth)
        );
        let (_, result) = parse(Protocol::Json, record.as_bytes());
        if depth < 100 {
            prop_assert_eq!(result, Ok(()));
        } else if depth > 130 {
            prop_assert!(matches!(result, Err(ProtocolError::InvalidJson(_))), "{:?}", result);
        }
        fuzz_parse(record.as_bytes());
    }

    /// Invalid UTF-8 in any JSON string a client sends is refused as invalid JSON.
    #[test]
    fn invalid_utf8_in_json_is_refused(
        slot in prop::sample::select(JSON_STRING_SLOTS),
        bad in invalid_utf8(),
        before in "[a-z]{0,3}",
    ) {
        let (head, tail) = slot.split_once("{s}").expect("slot");
        let mut record = head.as_bytes().to_vec();
        record.extend_from_slice(before.as_bytes());
        record.extend_from_slice(&bad);
        record.extend_from_slice(tail.as_bytes());
        record.push(0x1e);
        let (messages, result) = parse(Protocol::Json, &record);
        prop_assert!(messages.is_empty(), "accepted {:?}", messages);
        prop_assert!(matches!(result, Err(ProtocolError::InvalidJson(_))), "{:?}", result);
    }

    /// Invalid UTF-8 in any MessagePack str a client sends is refused.
    #[test]
    fn invalid_utf8_in_messagepack_is_refused(
        slot in 0usize..7,
        bad in invalid_utf8(),
        before in "[a-z]{0,3}",
    ) {
        let mut text = before.into_bytes();
        text.extend_from_slice(&bad);
        let bad_str = str_bytes(&text);
        let mut body = vec![0x96, 0x01];
        // headers, invocation id, target, arguments, stream ids
        body.extend(match slot {
            0 => [vec![0x81], bad_str.clone(), str_bytes(b"v")].concat(),
            1 => [vec![0x81], str_bytes(b"h"), bad_str.clone()].concat(),
            _ => vec![0x80],
        });
        body.extend(if slot == 2 { bad_str.clone() } else { str_bytes(b"1") });
        body.extend(if slot == 3 { bad_str.clone() } else { str_bytes(b"T") });
        body.extend(match slot {
            4 => [vec![0x91], bad_str.clone()].concat(),
            5 => [vec![0x91, 0x81], bad_str.clone(), vec![0xc0]].concat(),
            _ => vec![0x90],
        });
        body.extend(if slot == 6 { [vec![0x91], bad_str].concat() } else { vec![0x90] });
        let (messages, result) = parse(Protocol::MessagePack, &frame(&body));
        prop_assert!(messages.is_empty(), "accepted {:?}", messages);
        prop_assert!(
            matches!(&result, Err(ProtocolError::InvalidMessagePack(e)) if e.contains("UTF-8")),
            "{:?}", result
        );
    }

    /// A `\u` escape of half a UTF-16 pair is not text: wherever a client puts one, the record is
    /// refused, so nothing reaches a plugin or another client that MessagePack could not carry.
    #[test]
    fn lone_surrogates_in_json_are_refused(
        slot in prop::sample::select(JSON_STRING_SLOTS),
        lone in lone_surrogate(),
        before in prop_oneof![Just(String::new()), Just(r"\\".to_owned()), name().prop_map(|n| escaped(&n))],
    ) {
        let record = format!("{}\u{1e}", slot.replace("{s}", &format!("{before}{lone}")));
        let (messages, result) = parse(Protocol::Json, record.as_bytes());
        prop_assert!(messages.is_empty(), "accepted {:?}", messages);
        prop_assert!(result.is_err());
    }
}

/// `s` as it looks inside a JSON string literal.
fn escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    let inner = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
    inner.unwrap_or_default().to_owned()
}

/// A MessagePack str holding `bytes` as they are.
fn str_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0xd9, bytes.len() as u8];
    out.extend_from_slice(bytes);
    out
}

#[test]
fn escaped_backslashes_are_not_escapes() {
    // `"\\ud800"` is a backslash followed by the letters "ud800": valid text.
    let record = b"{\"type\":1,\"target\":\"T\",\"arguments\":[\"\\\\ud800\"]}\x1e";
    let (messages, result) = parse(Protocol::Json, record);
    assert_eq!(result, Ok(()));
    assert_eq!(messages.len(), 1);
    // A real pair is one character.
    let record = b"{\"type\":1,\"target\":\"T\",\"arguments\":[\"\\ud83d\\ude00\"]}\x1e";
    let (messages, result) = parse(Protocol::Json, record);
    assert_eq!(result, Ok(()));
    assert_eq!(messages.len(), 1);
}
