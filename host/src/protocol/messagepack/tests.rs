//! MessagePack hub protocol: the spec's example payloads byte for byte, every message type in
//! both directions, framing (VarInt prefixes, batching, byte-by-byte feeding) and limits.

use bytes::BytesMut;
use rmpv::Value;

use super::super::proptests::strategies::frame;
use super::super::tests::{json, parse_all, written};
use super::super::{CompletionOutcome, HubMessage, Protocol, ProtocolError};
use super::FRAMED_PING;

fn encode(value: &Value) -> Vec<u8> {
    let mut body = Vec::new();
    rmpv::encode::write_value(&mut body, value).expect("encodes");
    body
}

fn parse(bytes: &[u8]) -> Result<Vec<HubMessage>, ProtocolError> {
    parse_all(Protocol::MessagePack, bytes)
}

fn parse_body(body: &[u8]) -> Result<HubMessage, ProtocolError> {
    let mut messages = parse(&frame(body))?;
    assert_eq!(messages.len(), 1);
    Ok(messages.remove(0))
}

fn parse_value(value: Value) -> Result<HubMessage, ProtocolError> {
    parse_body(&encode(&value))
}

/// The body written for `msg` (asserting the frame prefix is right).
fn write(msg: &HubMessage) -> Vec<u8> {
    let mut out = Vec::new();
    Protocol::MessagePack
        .write_message(msg, &mut out)
        .expect("writes");
    let mut buf = BytesMut::from(&out[..]);
    let (len, prefix) = super::varint::decode(&buf)
        .expect("prefix")
        .expect("complete");
    assert_eq!(
        len as usize + prefix,
        out.len(),
        "prefix matches body length"
    );
    let _ = buf.split_to(prefix);
    buf.to_vec()
}

fn arr(items: Vec<Value>) -> Value {
    Value::Array(items)
}

fn s(text: &str) -> Value {
    Value::from(text)
}

fn no_headers() -> Value {
    Value::Map(vec![])
}

// === the spec's payloads (HubProtocol.md) ===

const INVOCATION: &[u8] = &[
    0x96, 0x01, 0x80, 0xa3, b'x', b'y', b'z', 0xa6, b'm', b'e', b't', b'h', b'o', b'd', 0x91, 0x2a,
    0x90,
];
const NON_BLOCKING: &[u8] = &[
    0x96, 0x01, 0x80, 0xc0, 0xa6, b'm', b'e', b't', b'h', b'o', b'd', 0x91, 0x2a, 0x90,
];
const STREAM_INVOCATION: &[u8] = &[
    0x96, 0x04, 0x80, 0xa3, b'x', b'y', b'z', 0xa6, b'm', b'e', b't', b'h', b'o', b'd', 0x91, 0x2a,
    0x90,
];
const STREAM_ITEM: &[u8] = &[0x94, 0x02, 0x80, 0xa3, b'x', b'y', b'z', 0x2a];
const ERROR_RESULT: &[u8] = &[
    0x95, 0x03, 0x80, 0xa3, b'x', b'y', b'z', 0x01, 0xa5, b'E', b'r', b'r', b'o', b'r',
];
const VOID_RESULT: &[u8] = &[0x94, 0x03, 0x80, 0xa3, b'x', b'y', b'z', 0x02];
const NON_VOID_RESULT: &[u8] = &[0x95, 0x03, 0x80, 0xa3, b'x', b'y', b'z', 0x03, 0x2a];
const CANCEL: &[u8] = &[0x93, 0x05, 0x80, 0xa3, b'x', b'y', b'z'];
const CLOSE_RECONNECT: &[u8] = &[0x93, 0x07, 0xa3, b'x', b'y', b'z', 0xc3];
const ACK: &[u8] = &[0x92, 0x08, 0xcc, 0x24];
const SEQUENCE: &[u8] = &[0x92, 0x09, 0xcc, 0x13];
const WITH_HEADERS: &[u8] = &[
    0x96, 0x01, 0x82, 0xa1, b'x', 0xa1, b'y', 0xa1, b'z', 0xa1, b'z', 0xa3, b'x', b'y', b'z', 0xa6,
    b'm', b'e', b't', b'h', b'o', b'd', 0x91, 0x2a, 0x90,
];

fn call(id: Option<&str>, args: &str) -> HubMessage {
    HubMessage::invocation(id.map(str::to_owned), "method".into(), json(args))
}

fn spec_messages() -> Vec<(&'static [u8], HubMessage)> {
    let xyz = || "xyz".to_owned();
    vec![
        (INVOCATION, call(Some("xyz"), "[42]")),
        (NON_BLOCKING, call(None, "[42]")),
        (
            STREAM_INVOCATION,
            HubMessage::StreamInvocation {
                invocation_id: xyz(),
                target: "method".into(),
                arguments: json("[42]"),
                stream_ids: vec![],
                headers: vec![],
            },
        ),
        (
            STREAM_ITEM,
            HubMessage::StreamItem {
                invocation_id: xyz(),
                item: json("42"),
                headers: vec![],
            },
        ),
        (
            ERROR_RESULT,
            HubMessage::Completion {
                invocation_id: xyz(),
                outcome: CompletionOutcome::Error("Error".into()),
                headers: vec![],
            },
        ),
        (
            VOID_RESULT,
            HubMessage::Completion {
                invocation_id: xyz(),
                outcome: CompletionOutcome::Void,
                headers: vec![],
            },
        ),
        (
            NON_VOID_RESULT,
            HubMessage::Completion {
                invocation_id: xyz(),
                outcome: CompletionOutcome::Result(json("42")),
                headers: vec![],
            },
        ),
        (
            CANCEL,
            HubMessage::CancelInvocation {
                invocation_id: xyz(),
                headers: vec![],
            },
        ),
        (&[0x91, 0x06], HubMessage::Ping),
        (
            CLOSE_RECONNECT,
            HubMessage::Close {
                error: Some(xyz()),
                allow_reconnect: true,
            },
        ),
        (ACK, HubMessage::Ack { sequence_id: 36 }),
        (SEQUENCE, HubMessage::Sequence { sequence_id: 19 }),
        (
            WITH_HEADERS,
            HubMessage::Invocation {
                invocation_id: Some(xyz()),
                target: "method".into(),
                arguments: json("[42]"),
                stream_ids: vec![],
                headers: vec![("x".into(), "y".into()), ("z".into(), "z".into())],
            },
        ),
    ]
}

#[test]
fn reads_every_spec_payload() {
    for (body, expected) in spec_messages() {
        assert_eq!(parse_body(body), Ok(expected), "{body:x?}");
    }
    // Close without allowReconnect, and the bare forms clients send.
    assert_eq!(
        parse_body(&[0x92, 0x07, 0xa3, b'x', b'y', b'z']),
        Ok(HubMessage::Close {
            error: Some("xyz".into()),
            allow_reconnect: false
        })
    );
    assert_eq!(
        parse_body(&[0x92, 0x07, 0xc0]),
        Ok(HubMessage::Close {
            error: None,
            allow_reconnect: false
        })
    );
    assert_eq!(
        parse_body(&[0x91, 0x07]),
        Ok(HubMessage::Close {
            error: None,
            allow_reconnect: false
        })
    );
}

#[test]
fn writes_every_spec_payload_byte_for_byte() {
    // The spec's Ack/Sequence examples use 0xcc for small ids; minimal encoding is what we send.
    for (body, message) in spec_messages() {
        let expected: Vec<u8> = match &message {
            HubMessage::Ack { .. } => vec![0x92, 0x08, 0x24],
            HubMessage::Sequence { .. } => vec![0x92, 0x09, 0x13],
            _ => body.to_vec(),
        };
        assert_eq!(write(&message), expected, "{message:?}");
    }
}

#[test]
fn ping_is_exactly_0x91_0x06() {
    let out = written(Protocol::MessagePack, &HubMessage::Ping);
    assert_eq!(out, [0x02, 0x91, 0x06]);
    assert_eq!(out, FRAMED_PING);
}

#[test]
fn an_empty_invocation_id_is_written_as_nil() {
    assert_eq!(write(&call(Some(""), "[42]")), NON_BLOCKING);
}

#[test]
fn writes_close_like_aspnet() {
    assert_eq!(
        write(&HubMessage::Close {
            error: None,
            allow_reconnect: false
        }),
        [0x93, 0x07, 0xc0, 0xc2]
    );
    assert_eq!(
        write(&HubMessage::Close {
            error: Some("e".into()),
            allow_reconnect: true
        }),
        [0x93, 0x07, 0xa1, b'e', 0xc3]
    );
}

#[test]
fn writes_server_invocations_with_converted_arguments() {
    let msg = HubMessage::Invocation {
        invocation_id: None,
        target: "Message".into(),
        arguments: json(r#"["hi", -1, 300, 1.5, null, true, {"k": [1]}]"#),
        stream_ids: vec!["0".into()],
        headers: vec![],
    };
    let expected = arr(vec![
        Value::from(1),
        no_headers(),
        Value::Nil,
        s("Message"),
        arr(vec![
            s("hi"),
            Value::from(-1),
            Value::from(300),
            Value::F64(1.5),
            Value::Nil,
            Value::Boolean(true),
            Value::Map(vec![(s("k"), arr(vec![Value::from(1)]))]),
        ]),
        arr(vec![s("0")]),
    ]);
    assert_eq!(write(&msg), encode(&expected));
}

// === reading: leniency and errors ===

#[test]
fn stream_ids_are_optional_on_input() {
    let five = arr(vec![
        Value::from(1),
        no_headers(),
        s("1"),
        s("method"),
        arr(vec![Value::from(42)]),
    ]);
    assert_eq!(parse_value(five), Ok(call(Some("1"), "[42]")));
    let with_ids = arr(vec![
        Value::from(1),
        no_headers(),
        Value::Nil,
        s("method"),
        arr(vec![]),
        arr(vec![s("0"), s("1")]),
    ]);
    let HubMessage::Invocation { stream_ids, .. } = parse_value(with_ids).expect("parses") else {
        panic!("not an invocation");
    };
    assert_eq!(stream_ids, ["0", "1"]);
}

#[test]
fn extra_trailing_items_are_ignored() {
    let mut items = vec![Value::from(3), no_headers(), s("1"), Value::from(2)];
    items.push(Value::Map(vec![(s("future"), arr(vec![Value::Nil]))]));
    assert_eq!(
        parse_value(arr(items)),
        Ok(HubMessage::completion("1", CompletionOutcome::Void))
    );
    assert_eq!(
        parse_value(arr(vec![Value::from(6), Value::from(1)])),
        Ok(HubMessage::Ping)
    );
}

#[test]
fn unknown_types_are_skipped() {
    let mut bytes = frame(&encode(&arr(vec![
        Value::from(42),
        s("future"),
        arr(vec![Value::from(1)]),
    ])));
    bytes.extend_from_slice(&frame(&encode(&arr(vec![Value::from(-1)]))));
    bytes.extend_from_slice(FRAMED_PING);
    assert_eq!(parse(&bytes), Ok(vec![HubMessage::Ping]));
}

#[test]
fn malformed_messages_are_refused() {
    let invalid = |value: Value| parse_value(value).expect_err("invalid").to_string();
    assert_eq!(
        invalid(Value::from(6)),
        "Invalid payload: a message must be an array."
    );
    assert_eq!(
        invalid(arr(vec![])),
        "Invalid payload: the message array is empty."
    );
    assert_eq!(
        invalid(arr(vec![s("1")])),
        "Reading 'messageType' as Integer failed: found String."
    );
    assert_eq!(
        invalid(arr(vec![
            Value::from(1),
            no_headers(),
            Value::from(1),
            s("m"),
            arr(vec![])
        ])),
        "Reading 'invocationId' as String failed: found Integer."
    );
    assert_eq!(
        invalid(arr(vec![
            Value::from(1),
            no_headers(),
            Value::Nil,
            s(""),
            arr(vec![])
        ])),
        "Missing required property 'target'."
    );
    assert_eq!(
        invalid(arr(vec![
            Value::from(1),
            no_headers(),
            Value::Nil,
            s("m"),
            Value::from(1)
        ])),
        "Reading 'arguments' as Array failed: found Integer."
    );
    assert_eq!(
        invalid(arr(vec![Value::from(1), no_headers(), Value::Nil, s("m")])),
        "Invalid payload for Invocation message."
    );
    assert_eq!(
        invalid(arr(vec![
            Value::from(4),
            no_headers(),
            Value::Nil,
            s("m"),
            arr(vec![])
        ])),
        "Missing required property 'invocationId'."
    );
    assert_eq!(
        invalid(arr(vec![Value::from(2), no_headers(), s("1")])),
        "Invalid payload for StreamItem message."
    );
    assert_eq!(
        invalid(arr(vec![
            Value::from(3),
            no_headers(),
            s("1"),
            Value::from(3)
        ])),
        "Invalid payload for Completion message."
    );
    // A Completion `[3, headers, "1", kind, value]`.
    let completion = |kind: u8, value: Value| {
        invalid(arr(vec![
            Value::from(3),
            no_headers(),
            s("1"),
            Value::from(kind),
            value,
        ]))
    };
    assert_eq!(completion(9, Value::Nil), "Invalid invocation result kind.");
    assert_eq!(
        completion(1, Value::from(5)),
        "Reading 'error' as String failed: found Integer."
    );
    assert_eq!(
        invalid(arr(vec![Value::from(5), Value::from(1), s("1")])),
        "Reading 'headers' as Map failed: found Integer."
    );
    assert_eq!(
        invalid(arr(vec![
            Value::from(5),
            Value::Map(vec![(s("a"), Value::from(1))]),
            s("1")
        ])),
        "Reading 'header 'a'' as String failed: found Integer."
    );
    assert_eq!(
        invalid(arr(vec![Value::from(8)])),
        "Invalid payload for Ack message."
    );
    assert_eq!(
        invalid(arr(vec![Value::from(9), Value::from(-1)])),
        "Reading 'sequenceId' as an unsigned Integer failed: found Integer."
    );
    assert_eq!(
        invalid(arr(vec![Value::from(7), Value::Nil, s("yes")])),
        "Reading 'allowReconnect' as Boolean failed: found String."
    );
}

#[test]
fn malformed_bytes_are_refused() {
    for body in [
        &[][..],                               // empty body
        &[0x92, 0x06],                         // array shorter than declared
        &[0x91, 0x06, 0x00],                   // trailing bytes after the message
        &[0xc1],                               // never-used marker
        &[0x91, 0xcd, 0x00],                   // truncated uint16
        &[0x92, 0x07, 0xa3, b'a', 0xff],       // truncated / invalid str
        &[0x92, 0x07, 0xa1, 0xff],             // str that is not UTF-8
        &[0xdd, 0xff, 0xff, 0xff, 0xff, 0x06], // 4 billion items declared, none there
    ] {
        assert!(parse_body(body).is_err(), "{body:x?}");
    }
}

#[test]
fn nesting_is_limited() {
    let mut body = vec![0x95, 0x01, 0x80, 0xc0, 0xa1, b'm'];
    body.extend(std::iter::repeat_n(0x91, 200));
    body.push(0xc0);
    assert_eq!(
        parse_body(&body),
        Err(ProtocolError::InvalidMessagePack(
            "Values are nested too deeply.".into()
        ))
    );
    let mut ok = vec![0x95, 0x01, 0x80, 0xc0, 0xa1, b'm'];
    ok.extend(std::iter::repeat_n(0x91, 100));
    ok.push(0xc0);
    assert!(parse_body(&ok).is_ok());
    // Unknown types are validated with the same limit.
    let mut unknown = vec![0x92, 0x63];
    unknown.extend(std::iter::repeat_n(0x91, 200));
    unknown.push(0xc0);
    assert!(parse_body(&unknown).is_err());
}

// === framing ===

#[test]
fn batches_and_byte_by_byte_feeding() {
    let mut stream = Vec::new();
    let messages: Vec<HubMessage> = spec_messages().into_iter().map(|(_, m)| m).collect();
    for message in &messages {
        Protocol::MessagePack
            .write_message(message, &mut stream)
            .expect("writes");
    }
    assert_eq!(parse(&stream), Ok(messages.clone()));

    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for &b in &stream {
        buf.extend_from_slice(&[b]);
        Protocol::MessagePack
            .parse_messages(&mut buf, 1 << 10, &mut out)
            .expect("parses");
    }
    assert!(buf.is_empty());
    assert_eq!(out, messages);
}

#[test]
fn long_bodies_use_multi_byte_prefixes() {
    for len in [0usize, 100, 200, 16_000, 20_000, 70_000] {
        let msg = HubMessage::Close {
            error: Some("x".repeat(len)),
            allow_reconnect: false,
        };
        let mut out = Vec::new();
        Protocol::MessagePack
            .write_message(&msg, &mut out)
            .expect("writes");
        let (body_len, prefix) = super::varint::decode(&out)
            .expect("prefix")
            .expect("complete");
        assert_eq!(body_len as usize + prefix, out.len());
        let expected_prefix = match body_len {
            0..=127 => 1,
            128..=16_383 => 2,
            _ => 3,
        };
        assert_eq!(prefix, expected_prefix, "len {len}");
        assert_eq!(parse(&out), Ok(vec![msg]));
    }
}

#[test]
fn write_appends_and_keeps_output_on_error() {
    let mut out = b"abc".to_vec();
    Protocol::MessagePack
        .write_message(&HubMessage::Ping, &mut out)
        .expect("writes");
    assert_eq!(out, b"abc\x02\x91\x06");
    let bad = HubMessage::Invocation {
        invocation_id: None,
        target: "T".into(),
        arguments: json("1"),
        stream_ids: vec![],
        headers: vec![],
    };
    assert!(Protocol::MessagePack.write_message(&bad, &mut out).is_err());
    assert_eq!(out, b"abc\x02\x91\x06");
}

#[test]
fn size_limit_applies_to_the_declared_length() {
    // A prefix declaring 1 MiB is refused before any body byte arrives.
    let mut buf = BytesMut::from(&[0x80, 0x80, 0x40][..]);
    let mut out = Vec::new();
    assert_eq!(
        Protocol::MessagePack.parse_messages(&mut buf, 32 * 1024, &mut out),
        Err(ProtocolError::MessageTooLarge { limit: 32 * 1024 })
    );
    // Exactly at the limit is fine.
    let mut buf = BytesMut::from(FRAMED_PING);
    Protocol::MessagePack
        .parse_messages(&mut buf, 2, &mut out)
        .expect("parses");
    assert_eq!(out, vec![HubMessage::Ping]);
    let mut buf = BytesMut::from(FRAMED_PING);
    assert!(
        Protocol::MessagePack
            .parse_messages(&mut buf, 1, &mut out)
            .is_err()
    );
    // An over-2GB prefix is malformed.
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0x0f][..]);
    assert!(matches!(
        Protocol::MessagePack.parse_messages(&mut buf, usize::MAX, &mut out),
        Err(ProtocolError::InvalidMessagePack(_))
    ));
}

#[test]
fn partial_prefix_and_body_stay_in_buffer() {
    let stream = frame(&[0x92, 0x07, 0xd9, 0x80]); // not complete: str8 of 128 bytes announced
    let mut buf = BytesMut::from(&stream[..2]);
    let mut out = Vec::new();
    Protocol::MessagePack
        .parse_messages(&mut buf, 1000, &mut out)
        .expect("waits");
    assert_eq!(buf.len(), 2);
    let mut buf = BytesMut::from(&[0x80][..]); // prefix continues
    Protocol::MessagePack
        .parse_messages(&mut buf, 1000, &mut out)
        .expect("waits");
    assert_eq!(&buf[..], [0x80]);
    assert!(out.is_empty());
}

#[test]
fn every_message_round_trips_with_values() {
    let messages = vec![
        HubMessage::Invocation {
            invocation_id: Some("1".into()),
            target: "T".into(),
            arguments: json(
                r#"[1,-2,3.25,"s",null,false,[],{},{"a":{"b":[18446744073709551615,-9223372036854775808]}}]"#,
            ),
            stream_ids: vec!["4".into(), "5".into()],
            headers: vec![("h".into(), "v".into())],
        },
        HubMessage::StreamItem {
            invocation_id: "1".into(),
            item: json("\"é\\n\""),
            headers: vec![],
        },
        HubMessage::completion("1", CompletionOutcome::Result(json("null"))),
        HubMessage::completion("1", CompletionOutcome::Error(String::new())),
        HubMessage::Close {
            error: None,
            allow_reconnect: true,
        },
        HubMessage::Ack {
            sequence_id: u64::MAX,
        },
        HubMessage::Sequence { sequence_id: 0 },
    ];
    let mut stream = Vec::new();
    for message in &messages {
        Protocol::MessagePack
            .write_message(message, &mut stream)
            .expect("writes");
    }
    assert_eq!(parse(&stream), Ok(messages));
}
