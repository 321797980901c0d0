//! Generators: valid hub messages and values in both protocols, and the bytes an attacker sends.
//!
//! Values are generated as `serde_json::Value` / `rmpv::Value` trees and rendered to bytes, so
//! every test also knows what the bytes mean and can compute the expected result independently
//! of the code under test.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::Value;

use super::super::{CompletionOutcome, HubMessage, Json, Protocol, RawValue};

// === text ===

/// Characters that stress escaping and framing: quotes, backslashes, the record separator,
/// controls, line separators, non-BMP, the highest BMP code point.
fn awkward_char() -> impl Strategy<Value = char> {
    prop_oneof![
        Just('"'),
        Just('\\'),
        Just('\u{1e}'),
        Just('\u{0}'),
        Just('\u{1f}'),
        Just('\u{7f}'),
        Just('\n'),
        Just('\u{2028}'),
        Just('é'),
        Just('😀'),
        Just('\u{ffff}'),
        Just('\u{10ffff}'),
        any::<char>(),
    ]
}

/// Any Unicode text, often with awkward characters.
pub(crate) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "\\PC{0,24}",
        2 => vec(awkward_char(), 0..12).prop_map(|cs| cs.into_iter().collect()),
        1 => "[a-zA-Z0-9]{1,8}",
    ]
}

/// Non-empty text (targets, invocation ids).
pub(crate) fn name() -> impl Strategy<Value = String> {
    text().prop_filter("non-empty", |s| !s.is_empty())
}

// === JSON values ===

/// Finite doubles, with the awkward ones (signed zero, extremes, subnormals) likely.
pub(crate) fn finite_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64 as f;
    prop_oneof![
        3 => f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO,
        1 => prop_oneof![
            Just(-0.0),
            Just(0.1),
            Just(1e300),
            Just(-1e-300),
            Just(f64::MAX),
            Just(f64::MIN),
            Just(f64::MIN_POSITIVE),
            Just(5e-324),
            Just(9_007_199_254_740_993.0),
        ],
    ]
}

/// Integers at and around every MessagePack format boundary, and anywhere in i64/u64.
fn integer() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            Just(0i128),
            Just(-1),
            Just(-32),
            Just(-33),
            Just(127),
            Just(128),
            Just(255),
            Just(256),
            Just(-128),
            Just(-129),
            Just(65_535),
            Just(65_536),
            Just(-32_769),
            Just(4_294_967_296),
            Just(i128::from(i64::MIN)),
            Just(i128::from(i64::MAX)),
            Just(i128::from(u64::MAX)),
        ]
        .prop_map(|n| {
            u64::try_from(n)
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(i64::try_from(n).unwrap_or(i64::MIN)))
        }),
    ]
}

/// A JSON value nested up to 6 deep.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        integer(),
        finite_f64().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            vec((text(), inner), 0..8).prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// An arguments array.
pub(crate) fn json_arguments() -> impl Strategy<Value = Value> {
    vec(json_value(), 0..6).prop_map(Value::Array)
}

/// The canonical JSON text of `value`: what Switchboard's own writers produce.
pub(crate) fn canonical(value: &Value) -> Json {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    RawValue::from_string(text).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// The same value as JSON text written differently: whitespace between tokens and `\uXXXX`
/// escapes (surrogate pairs beyond the BMP) chosen by `seed`. No whitespace at the ends.
pub(crate) fn noisy(value: &Value, seed: u64) -> String {
    let mut noise = Noise(seed | 1);
    let mut out = String::new();
    noise.value(value, &mut out);
    out
}

/// xorshift64: the choices of [`noisy`], reproducible from the generated seed.
struct Noise(u64);

impl Noise {
    fn flip(&mut self, one_in: u64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.is_multiple_of(one_in)
    }

    fn space(&mut self, out: &mut String) {
        for ws in [" ", "\n", "\t", "\r"] {
            if self.flip(4) {
                out.push_str(ws);
            }
        }
    }

    fn string(&mut self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str(if self.flip(2) { "\\\\" } else { "\\u005c" }),
                '/' if self.flip(2) => out.push_str("\\/"),
                c if u32::from(c) < 0x20 || self.flip(3) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    fn value(&mut self, value: &Value, out: &mut String) {
        match value {
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.space(out);
                    self.value(item, out);
                    self.space(out);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.space(out);
                    self.string(key, out);
                    self.space(out);
                    out.push(':');
                    self.space(out);
                    self.value(item, out);
                    self.space(out);
                }
                out.push('}');
            }
            Value::String(s) => self.string(s, out),
            other => out.push_str(&other.to_string()),
        }
    }
}

// === hub messages ===

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop_oneof![
        3 => Just(Vec::new()),
        1 => vec((text(), text()), 1..4),
    ]
}

fn outcome() -> impl Strategy<Value = CompletionOutcome> {
    prop_oneof![
        Just(CompletionOutcome::Void),
        json_value().prop_map(|v| CompletionOutcome::Result(canonical(&v))),
        text().prop_map(CompletionOutcome::Error),
    ]
}

/// Any hub message, with canonical JSON text for its values, so that it reads back identically
/// from either protocol.
pub(crate) fn hub_message() -> impl Strategy<Value = HubMessage> {
    prop_oneof![
        (
            proptest::option::of(name()),
            name(),
            json_arguments(),
            vec(name(), 0..3),
            headers()
        )
            .prop_map(|(invocation_id, target, args, stream_ids, headers)| {
                HubMessage::Invocation {
                    invocation_id,
                    target,
                    arguments: canonical(&args),
                    stream_ids,
                    headers,
                }
            }),
        (
            name(),
            name(),
            json_arguments(),
            vec(name(), 0..3),
            headers()
        )
            .prop_map(|(invocation_id, target, args, stream_ids, headers)| {
                HubMessage::StreamInvocation {
                    invocation_id,
                    target,
                    arguments: canonical(&args),
                    stream_ids,
                    headers,
                }
            }),
        (name(), json_value(), headers()).prop_map(|(invocation_id, item, headers)| {
            HubMessage::StreamItem {
                invocation_id,
                item: canonical(&item),
                headers,
            }
        }),
        (name(), outcome(), headers()).prop_map(|(invocation_id, outcome, headers)| {
            HubMessage::Completion {
                invocation_id,
                outcome,
                headers,
            }
        }),
        (name(), headers()).prop_map(|(invocation_id, headers)| {
            HubMessage::CancelInvocation {
                invocation_id,
                headers,
            }
        }),
        Just(HubMessage::Ping),
        (proptest::option::of(text()), any::<bool>()).prop_map(|(error, allow_reconnect)| {
            HubMessage::Close {
                error,
                allow_reconnect,
            }
        }),
        any::<u64>().prop_map(|sequence_id| HubMessage::Ack { sequence_id }),
        any::<u64>().prop_map(|sequence_id| HubMessage::Sequence { sequence_id }),
    ]
}

/// A few messages and either protocol.
pub(crate) fn conversation() -> impl Strategy<Value = (Protocol, Vec<HubMessage>)> {
    (
        prop_oneof![Just(Protocol::Json), Just(Protocol::MessagePack)],
        vec(hub_message(), 0..6),
    )
}

/// The framed records of `messages`, one byte vector per record.
pub(crate) fn records(protocol: Protocol, messages: &[HubMessage]) -> Vec<Vec<u8>> {
    messages
        .iter()
        .map(|message| {
            let mut one = Vec::new();
            let written = protocol.write_message(message, &mut one);
            assert_eq!(written, Ok(()), "{protocol:?} could not write {message:?}");
            one
        })
        .collect()
}

// === MessagePack values ===

/// A valid timestamp extension payload (4, 8 or 12 bytes) within years -9999..=9999.
pub(crate) fn timestamp() -> impl Strategy<Value = Vec<u8>> {
    // 9999-12-31T23:59:59Z and -9999-01-01T00:00:00Z.
    const MAX_SECS: i64 = 253_402_300_799;
    const MIN_SECS: i64 = -377_705_116_800;
    prop_oneof![
        any::<u32>().prop_map(|secs| secs.to_be_bytes().to_vec()),
        (0u64..(1 << 34), 0u64..1_000_000_000)
            .prop_map(|(secs, nanos)| ((nanos << 34) | secs).to_be_bytes().to_vec()),
        (MIN_SECS..=MAX_SECS, 0u32..1_000_000_000).prop_map(|(secs, nanos)| {
            let mut data = nanos.to_be_bytes().to_vec();
            data.extend_from_slice(&secs.to_be_bytes());
            data
        }),
    ]
}

/// A scalar MessagePack value that has a JSON form (every format, bin and timestamps included).
fn msgpack_scalar() -> impl Strategy<Value = rmpv::Value> {
    use rmpv::Value as V;
    prop_oneof![
        Just(V::Nil),
        any::<bool>().prop_map(V::Boolean),
        any::<u64>().prop_map(V::from),
        any::<i64>().prop_map(V::from),
        (-40i64..300).prop_map(V::from),
        any::<f32>().prop_map(V::F32),
        any::<f64>().prop_map(V::F64),
        text().prop_map(V::from),
        vec(any::<u8>(), 0..40).prop_map(V::Binary),
        timestamp().prop_map(|data| V::Ext(-1, data)),
    ]
}

/// A MessagePack value that has a JSON form, nested up to 6 deep, map keys of every scalar kind.
pub(crate) fn msgpack_value() -> impl Strategy<Value = rmpv::Value> {
    msgpack_scalar().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(rmpv::Value::Array),
            vec((msgpack_scalar(), inner), 0..6).prop_map(rmpv::Value::Map),
        ]
    })
}

/// `value` encoded by `rmpv` (an independent encoder).
pub(crate) fn encode_msgpack(value: &rmpv::Value) -> Vec<u8> {
    let mut out = Vec::new();
    let written = rmpv::encode::write_value(&mut out, value);
    assert!(written.is_ok(), "rmpv could not encode {value:?}");
    out
}

/// `body` with its VarInt length prefix.
pub(crate) fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut len = body.len();
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(body);
    out
}

// === hostile bytes ===

/// A MessagePack header declaring far more than follows: arrays, maps, str, bin, ext with
/// 16- and 32-bit lengths near their maximum.
pub(crate) fn length_bomb() -> impl Strategy<Value = Vec<u8>> {
    let len32 = prop_oneof![Just(u32::MAX), Just(0x7fff_ffff), 65_536u32..];
    let len16 = prop_oneof![Just(u16::MAX), 256u16..];
    prop_oneof![
        (
            prop_oneof![Just(0xddu8), Just(0xdf), Just(0xdb), Just(0xc6)],
            len32.clone()
        )
            .prop_map(|(marker, n)| {
                let mut out = vec![marker];
                out.extend_from_slice(&n.to_be_bytes());
                out
            }),
        (
            prop_oneof![Just(0xdcu8), Just(0xde), Just(0xda), Just(0xc5)],
            len16
        )
            .prop_map(|(marker, n)| {
                let mut out = vec![marker];
                out.extend_from_slice(&n.to_be_bytes());
                out
            }),
        len32.prop_map(|n| {
            let mut out = vec![0xc9];
            out.extend_from_slice(&n.to_be_bytes());
            out.push(0x01);
            out
        }),
    ]
}

/// Bytes with the markers, separators and escapes that matter to the parsers over-represented.
pub(crate) fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop_oneof![
        Just(0x1eu8),
        Just(b'{'),
        Just(b'}'),
        Just(b'['),
        Just(b']'),
        Just(b'"'),
        Just(b'\\'),
        Just(b'u'),
        Just(b'd'),
        Just(b'8'),
        Just(0x80),
        Just(0x91),
        Just(0x95),
        Just(0xa1),
        Just(0xc0),
        Just(0xc1),
        Just(0xc7),
        Just(0xd4),
        Just(0xdd),
        Just(0xdf),
        Just(0xff),
        Just(0xed),
        Just(0xa0),
    ];
    prop_oneof![
        vec(any::<u8>(), 0..256),
        vec(interesting, 0..128),
        (length_bomb(), vec(any::<u8>(), 0..16)).prop_map(|(mut bomb, tail)| {
            bomb.extend_from_slice(&tail);
            frame(&bomb)
        }),
    ]
}

/// A valid stream in a random protocol with some of its bytes replaced, inserted or dropped.
pub(crate) fn mutated_stream() -> impl Strategy<Value = (Protocol, Vec<u8>)> {
    (
        conversation(),
        vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    )
        .prop_map(|((protocol, messages), edits)| {
            let mut data = records(protocol, &messages).concat();
            for (at, byte, kind) in edits {
                let i = at.index(data.len() + 1);
                match kind {
                    0 if i < data.len() => data[i] = byte,
                    1 if i < data.len() => {
                        data.remove(i);
                    }
                    _ => data.insert(i, byte),
                }
            }
            (protocol, data)
        })
}
