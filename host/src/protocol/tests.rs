//! Cross-protocol tests: the `Protocol` API, message helpers, JSON <-> MessagePack agreement,
//! and a deterministic property loop proving the parsers never panic.

use bytes::BytesMut;

use super::fuzz::fuzz_parse;
use super::{
    CompletionOutcome, HubMessage, Json, Protocol, ProtocolError, RawValue, TransferFormat,
};

/// `text` as a JSON value (it must be valid).
pub(crate) fn json(text: &str) -> Json {
    RawValue::from_string(text.to_owned()).expect("valid JSON")
}

/// `message` as `protocol` writes it (it must write).
pub(crate) fn written(protocol: Protocol, message: &HubMessage) -> Vec<u8> {
    let mut out = Vec::new();
    protocol.write_message(message, &mut out).expect("writes");
    out
}

/// Every message of `bytes`, which must hold whole records only (1 MiB each at most).
pub(crate) fn parse_all(
    protocol: Protocol,
    bytes: &[u8],
) -> Result<Vec<HubMessage>, ProtocolError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    protocol.parse_messages(&mut buf, 1 << 20, &mut out)?;
    assert!(buf.is_empty(), "left {:?}", buf);
    Ok(out)
}

/// One of every message shape, with awkward values.
fn corpus() -> Vec<HubMessage> {
    vec![
        HubMessage::Invocation {
            invocation_id: Some("0".into()),
            target: "Echo".into(),
            arguments: json(r#"["x",1,-1,2.5,true,null,[1,[2]],{"k":{"v":"é"}}]"#),
            stream_ids: vec![],
            headers: vec![],
        },
        HubMessage::Invocation {
            invocation_id: None,
            target: "Message".into(),
            arguments: json("[]"),
            stream_ids: vec!["1".into()],
            headers: vec![("a".into(), "b".into())],
        },
        HubMessage::StreamInvocation {
            invocation_id: "2".into(),
            target: "Counter".into(),
            arguments: json("[10,500]"),
            stream_ids: vec![],
            headers: vec![],
        },
        HubMessage::StreamItem {
            invocation_id: "2".into(),
            item: json(r#"{"n":1}"#),
            headers: vec![],
        },
        HubMessage::completion("2", CompletionOutcome::Void),
        HubMessage::completion("3", CompletionOutcome::Result(json("\"ok\""))),
        HubMessage::completion(
            "4",
            CompletionOutcome::Error("Client didn't provide a result.".into()),
        ),
        HubMessage::CancelInvocation {
            invocation_id: "2".into(),
            headers: vec![],
        },
        HubMessage::Ping,
        HubMessage::Close {
            error: Some("Connection closed with an error.".into()),
            allow_reconnect: true,
        },
        HubMessage::Close {
            error: None,
            allow_reconnect: false,
        },
        HubMessage::Ack { sequence_id: 4 },
        HubMessage::Sequence { sequence_id: 1 },
    ]
}

#[test]
fn protocol_names_and_formats() {
    assert_eq!(Protocol::from_name("json"), Some(Protocol::Json));
    assert_eq!(
        Protocol::from_name("messagepack"),
        Some(Protocol::MessagePack)
    );
    assert_eq!(
        Protocol::from_name("MessagePack"),
        Some(Protocol::MessagePack)
    );
    assert_eq!(Protocol::from_name("msgpack"), None);
    assert_eq!(Protocol::from_name(""), None);
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        assert_eq!(Protocol::from_name(protocol.name()), Some(protocol));
        assert_eq!(protocol.max_version(), 2);
    }
    assert_eq!(Protocol::Json.transfer_format(), TransferFormat::Text);
    assert_eq!(
        Protocol::MessagePack.transfer_format(),
        TransferFormat::Binary
    );
    assert_eq!(TransferFormat::Binary.name(), "Binary");
}

#[test]
fn message_types_and_trackability() {
    let types: Vec<u8> = corpus().iter().map(HubMessage::message_type).collect();
    assert_eq!(types, [1, 1, 4, 2, 3, 3, 3, 5, 6, 7, 7, 8, 9]);
    let trackable: Vec<bool> = corpus().iter().map(HubMessage::is_trackable).collect();
    assert_eq!(
        trackable,
        [
            true, true, true, true, true, true, true, true, false, false, false, false, false
        ]
    );
}

#[test]
fn equality_compares_json_text() {
    let a = HubMessage::StreamItem {
        invocation_id: "1".into(),
        item: json("[1]"),
        headers: vec![],
    };
    let b = HubMessage::StreamItem {
        invocation_id: "1".into(),
        item: json("[ 1 ]"),
        headers: vec![],
    };
    assert_eq!(a, a.clone());
    assert_ne!(a, b, "equality is on the exact text");
    assert_ne!(
        CompletionOutcome::Void,
        CompletionOutcome::Result(json("null"))
    );
    assert_ne!(
        HubMessage::Ack { sequence_id: 1 },
        HubMessage::Sequence { sequence_id: 1 }
    );
}

#[test]
fn both_protocols_carry_the_same_messages() {
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let mut stream = Vec::new();
        for message in corpus() {
            protocol
                .write_message(&message, &mut stream)
                .expect("writes");
        }
        let mut buf = BytesMut::from(&stream[..]);
        let mut out = Vec::new();
        protocol
            .parse_messages(&mut buf, 1 << 16, &mut out)
            .expect("parses");
        assert_eq!(out, corpus(), "{protocol:?}");
        assert!(buf.is_empty());
    }
}

#[test]
fn the_same_ping_in_each_protocol() {
    let text = written(Protocol::Json, &HubMessage::Ping);
    assert_eq!(text, b"{\"type\":6}\x1e");
    let binary = written(Protocol::MessagePack, &HubMessage::Ping);
    assert_eq!(binary, [0x02, 0x91, 0x06]);
}

#[test]
fn error_texts_are_client_readable() {
    for (error, text) in [
        (
            ProtocolError::MessageTooLarge { limit: 32768 },
            "The maximum message size of 32768B was exceeded.",
        ),
        (
            ProtocolError::missing("target"),
            "Missing required property 'target'.",
        ),
        (ProtocolError::InvalidJson("x".into()), "Invalid JSON: x"),
        (
            ProtocolError::InvalidMessagePack("y".into()),
            "Invalid MessagePack: y",
        ),
    ] {
        assert_eq!(error.to_string(), text);
    }
}

// === property loop ===

/// xorshift64*: deterministic, dependency-free pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Valid streams in each protocol, to be mutated.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let mut all = Vec::new();
        for message in corpus() {
            let mut one = Vec::new();
            protocol.write_message(&message, &mut one).expect("writes");
            all.extend_from_slice(&one);
            seeds.push(one);
        }
        seeds.push(all);
    }
    seeds.push(b"{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":6}\x1e".to_vec());
    seeds
}

/// Bytes that matter to the parsers: markers, separators, quotes, braces.
const INTERESTING: &[u8] = &[
    0x1e, b'{', b'}', b'[', b']', b'"', b'\\', b':', b',', b'0', b'1', b'9', b'-', b'e', b'.',
    0x80, 0x90, 0x91, 0x92, 0x95, 0x96, 0xa1, 0xc0, 0xc1, 0xc3, 0xc4, 0xc7, 0xca, 0xcb, 0xcf, 0xd3,
    0xd4, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xff, 0x7f, 0x00,
];

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => data.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            3 if at < data.len() => {
                data.remove(at);
            }
            4 => data.truncate(at),
            _ => {
                let from = rng.below(data.len());
                let len = rng.below(16).min(data.len() - from.min(data.len()));
                let chunk: Vec<u8> = data[from..from + len].to_vec();
                data.splice(at..at, chunk);
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..4_000 {
        let len = rng.below(96);
        let data: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        fuzz_parse(&data);
        let picked: Vec<u8> = (0..len)
            .map(|_| INTERESTING[rng.below(INTERESTING.len())])
            .collect();
        fuzz_parse(&picked);
    }
}

#[test]
fn mutated_valid_streams_never_panic_and_keep_invariants() {
    let seeds = seeds();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for seed in &seeds {
        fuzz_parse(seed);
    }
    for _ in 0..20_000 {
        let mut data = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut data);
        // Vary the split point and size limit that fuzz_parse derives from the first bytes.
        if rng.below(4) == 0 {
            data.insert(0, rng.byte());
        }
        fuzz_parse(&data);
    }
}

#[test]
fn deep_nesting_never_overflows_the_stack() {
    for depth in [127usize, 128, 129, 10_000] {
        let mut text = b"{\"type\":1,\"target\":\"T\",\"arguments\":".to_vec();
        text.extend(std::iter::repeat_n(b'[', depth));
        text.extend(std::iter::repeat_n(b']', depth));
        text.extend_from_slice(b"}\x1e");
        fuzz_parse(&text);
        let mut out = Vec::new();
        let result =
            Protocol::Json.parse_messages(&mut BytesMut::from(&text[..]), usize::MAX, &mut out);
        assert_eq!(result.is_ok(), depth < 128, "JSON depth {depth}");
        let mut packed = vec![0x95, 0x01, 0x80, 0xc0, 0xa1, b'T'];
        packed.extend(std::iter::repeat_n(0x91, depth));
        packed.push(0xc0);
        let framed = super::proptests::strategies::frame(&packed);
        fuzz_parse(&framed);
        let result = Protocol::MessagePack.parse_messages(
            &mut BytesMut::from(&framed[..]),
            usize::MAX,
            &mut out,
        );
        assert_eq!(result.is_ok(), depth < 128, "depth {depth}");
    }
}
