//! Round trips: what is written reads back, and values cross between JSON and MessagePack as
//! documented (checked against independent models built on serde_json, rmpv, base64 and time).

use base64::Engine as _;
use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::Value;

use super::super::escape::{push_json_string, spec_escape};
use super::super::messagepack::{json_to_msgpack, msgpack_to_json};
use super::super::negotiate::parse_negotiate_version;
use super::super::{HubMessage, Protocol, RawValue, varint};
use super::config;
use super::strategies::{
    canonical, conversation, encode_msgpack, frame, hub_message, json_arguments, json_value,
    msgpack_value, name, noisy, records, text,
};

fn parse_all(protocol: Protocol, data: &[u8]) -> Vec<HubMessage> {
    let mut buf = BytesMut::from(data);
    let mut out = Vec::new();
    let parsed = protocol.parse_messages(&mut buf, usize::MAX, &mut out);
    assert_eq!(parsed, Ok(()), "{protocol:?}: {data:?}");
    assert!(buf.is_empty(), "{protocol:?}: bytes left after {out:?}");
    out
}

fn to_msgpack(json: &str) -> Vec<u8> {
    let raw = RawValue::from_string(json.to_owned()).expect("generated JSON is valid");
    let mut out = Vec::new();
    let converted = json_to_msgpack(&raw, &mut out);
    assert_eq!(converted, Ok(()), "{json}");
    out
}

fn to_json(msgpack: &[u8]) -> String {
    match msgpack_to_json(msgpack) {
        Ok(json) => json.get().to_owned(),
        Err(e) => panic!("{msgpack:?} did not convert: {e}"),
    }
}

// === models ===

/// The MessagePack value the documented JSON -> MessagePack mapping gives for `value`.
fn msgpack_model_of_json(value: &Value) -> rmpv::Value {
    match value {
        Value::Null => rmpv::Value::Nil,
        Value::Bool(b) => rmpv::Value::Boolean(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => rmpv::Value::from(u),
            (None, Some(i), _) => rmpv::Value::from(i),
            (None, None, f) => rmpv::Value::F64(f.unwrap_or(f64::NAN)),
        },
        Value::String(s) => rmpv::Value::from(s.as_str()),
        Value::Array(items) => {
            rmpv::Value::Array(items.iter().map(msgpack_model_of_json).collect())
        }
        Value::Object(map) => rmpv::Value::Map(
            map.iter()
                .map(|(k, v)| (rmpv::Value::from(k.as_str()), msgpack_model_of_json(v)))
                .collect(),
        ),
    }
}

fn float_text<F: serde::Serialize>(v: F, finite: bool) -> String {
    match serde_json::to_string(&v) {
        Ok(text) if finite => text,
        _ => "null".into(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` computed with the `time` crate.
fn timestamp_model(data: &[u8]) -> String {
    let (secs, nanos) = match data.len() {
        4 => (
            i64::from(u32::from_be_bytes(data.try_into().expect("4"))),
            0,
        ),
        8 => {
            let word = u64::from_be_bytes(data.try_into().expect("8"));
            ((word & 0x3_ffff_ffff) as i64, (word >> 34) as u32)
        }
        _ => (
            i64::from_be_bytes(data[4..].try_into().expect("8")),
            u32::from_be_bytes(data[..4].try_into().expect("4")),
        ),
    };
    let at = time::OffsetDateTime::from_unix_timestamp(secs).expect("generated in range");
    let year = at.year();
    let mut out = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!(
            "{}{:06}",
            if year < 0 { '-' } else { '+' },
            year.unsigned_abs()
        )
    };
    out.push_str(&format!(
        "-{:02}-{:02}T{:02}:{:02}:{:02}",
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    ));
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// The JSON text the documented MessagePack -> JSON mapping gives for `value`.
fn json_model_of_msgpack(value: &rmpv::Value) -> String {
    use rmpv::Value as V;
    match value {
        V::Nil => "null".into(),
        V::Boolean(b) => b.to_string(),
        V::Integer(n) => n.to_string(),
        V::F32(f) => float_text(*f, f.is_finite()),
        V::F64(f) => float_text(*f, f.is_finite()),
        V::String(s) => serde_json::to_string(s.as_str().expect("generated UTF-8")).expect("str"),
        V::Binary(b) => format!(
            "\"{}\"",
            base64::engine::general_purpose::STANDARD.encode(b)
        ),
        V::Ext(_, data) => format!("\"{}\"", timestamp_model(data)),
        V::Array(items) => {
            let items: Vec<String> = items.iter().map(json_model_of_msgpack).collect();
            format!("[{}]", items.join(","))
        }
        V::Map(pairs) => {
            let pairs: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", key_model(k), json_model_of_msgpack(v)))
                .collect();
            format!("{{{}}}", pairs.join(","))
        }
    }
}

/// Map keys become strings: str as is, bin and timestamps as their string form, other scalars
/// as their JSON text.
fn key_model(key: &rmpv::Value) -> String {
    match key {
        rmpv::Value::String(_) | rmpv::Value::Binary(_) | rmpv::Value::Ext(..) => {
            json_model_of_msgpack(key)
        }
        scalar => serde_json::to_string(&json_model_of_msgpack(scalar)).expect("str"),
    }
}

// === properties ===

proptest! {
    #![proptest_config(config(256))]

    /// Every message written in either protocol reads back as itself.
    #[test]
    fn messages_round_trip_in_each_protocol((protocol, messages) in conversation()) {
        let data = records(protocol, &messages).concat();
        prop_assert_eq!(parse_all(protocol, &data), messages);
    }

    /// A JSON client's message relayed to a MessagePack client and back is byte for byte the
    /// same record.
    #[test]
    fn json_records_survive_messagepack(message in hub_message()) {
        let json = records(Protocol::Json, std::slice::from_ref(&message)).concat();
        let from_json = parse_all(Protocol::Json, &json);
        let packed = records(Protocol::MessagePack, &from_json).concat();
        let from_packed = parse_all(Protocol::MessagePack, &packed);
        prop_assert_eq!(&from_packed, &from_json);
        prop_assert_eq!(records(Protocol::Json, &from_packed).concat(), json);
    }

    /// JSON arguments are kept as the client wrote them (spaces, escapes) for JSON clients, and
    /// reach MessagePack clients as the same values.
    #[test]
    fn json_arguments_keep_their_text_and_their_value(
        args in json_arguments(),
        seed in any::<u64>(),
        target in name(),
    ) {
        let text = noisy(&args, seed);
        let record = format!(
            "{{ \"arguments\" :{text}, \"type\":1,\"target\":{}}}\u{1e}",
            serde_json::Value::from(target.as_str())
        );
        let parsed = parse_all(Protocol::Json, record.as_bytes());
        let Some(HubMessage::Invocation { arguments, .. }) = parsed.first() else {
            panic!("not an invocation: {parsed:?}");
        };
        prop_assert_eq!(arguments.get(), text.as_str());
        let packed = records(Protocol::MessagePack, &parsed).concat();
        let from_packed = parse_all(Protocol::MessagePack, &packed);
        let Some(HubMessage::Invocation { arguments, .. }) = from_packed.first() else {
            panic!("not an invocation: {from_packed:?}");
        };
        let expected = canonical(&args);
        prop_assert_eq!(arguments.get(), expected.get());
    }

    /// JSON -> MessagePack follows the documented mapping (checked by rmpv), whatever the
    /// spelling of the JSON, and MessagePack -> JSON gives the canonical text back.
    #[test]
    fn json_values_round_trip_through_messagepack(value in json_value(), seed in any::<u64>()) {
        let text = canonical(&value);
        let packed = to_msgpack(text.get());
        prop_assert_eq!(&to_msgpack(&noisy(&value, seed)), &packed);
        let decoded = rmpv::decode::read_value(&mut packed.as_slice()).expect("rmpv reads it");
        prop_assert_eq!(decoded, msgpack_model_of_json(&value));
        prop_assert_eq!(to_json(&packed), text.get());
    }

    /// Integers beyond i64/u64 become the nearest double, as JavaScript would read them.
    #[test]
    fn big_integers_become_doubles(negative in any::<bool>(), digits in "[1-9][0-9]{20,60}") {
        let text = if negative { format!("-{digits}") } else { digits };
        let expected: f64 = text.parse().expect("digits");
        let packed = to_msgpack(&text);
        prop_assert_eq!(rmpv::decode::read_value(&mut packed.as_slice()).ok(), Some(rmpv::Value::F64(expected)));
    }

    /// MessagePack -> JSON follows the documented mapping: every integer exact, floats shortest,
    /// NaN and infinities null, bin base64, timestamps ISO-8601, map keys strings.
    #[test]
    fn messagepack_values_become_the_documented_json(value in msgpack_value()) {
        let packed = encode_msgpack(&value);
        prop_assert_eq!(to_json(&packed), json_model_of_msgpack(&value));
    }

    /// What a MessagePack client sends reaches a plugin as JSON and goes back out as the same
    /// values: the conversion is lossy once (bin and timestamps become str, f32 becomes f64,
    /// map keys str), then stable in both directions.
    #[test]
    fn messagepack_json_conversion_is_stable_after_one_pass(value in msgpack_value()) {
        let packed = to_msgpack(&to_json(&encode_msgpack(&value)));
        let json = to_json(&packed);
        prop_assert_eq!(&to_msgpack(&json), &packed);
        prop_assert_eq!(to_json(&to_msgpack(&json)), json);
    }

    /// Invocations from MessagePack clients carry nested arguments of every kind to the plugin
    /// as the documented JSON.
    #[test]
    fn messagepack_invocations_carry_nested_arguments(
        args in vec(msgpack_value(), 0..4),
        id in proptest::option::of(name()),
        target in name(),
        headers in vec((text(), text()), 0..3),
    ) {
        use rmpv::Value as V;
        let body = V::Array(vec![
            V::from(1),
            V::Map(headers.iter().map(|(k, v)| (V::from(k.as_str()), V::from(v.as_str()))).collect()),
            id.as_deref().map_or(V::Nil, V::from),
            V::from(target.as_str()),
            V::Array(args.clone()),
            V::Array(vec![]),
        ]);
        let parsed = parse_all(Protocol::MessagePack, &frame(&encode_msgpack(&body)));
        let expected = HubMessage::Invocation {
            invocation_id: id,
            target,
            arguments: RawValue::from_string(json_model_of_msgpack(&V::Array(args))).expect("model is JSON"),
            stream_ids: vec![],
            headers,
        };
        prop_assert_eq!(parsed, vec![expected]);
    }

    /// Every length up to 2 GB has a prefix that reads back, minimal or padded with zero groups.
    #[test]
    fn varints_round_trip(value in 0..=varint::MAX_VALUE, pad in 0usize..4) {
        let mut buf = [0u8; varint::MAX_LEN];
        let used = varint::encode(value, &mut buf);
        prop_assert_eq!(varint::decode(&buf[..used]), Ok(Some((value, used))));
        // Non-minimal encodings (ASP.NET accepts them) while they fit in five bytes.
        let mut padded = buf[..used].to_vec();
        for _ in 0..pad.min(varint::MAX_LEN - used) {
            if let Some(last) = padded.last_mut() {
                *last |= 0x80;
            }
            padded.push(0);
        }
        prop_assert_eq!(varint::decode(&padded), Ok(Some((value, padded.len()))));
    }

    /// Strings are escaped by the rule, character by character (`spec_escape`).
    #[test]
    fn escaping_follows_the_rule(s in text()) {
        let mut out = Vec::new();
        push_json_string(&mut out, &s);
        prop_assert_eq!(String::from_utf8(out).expect("UTF-8"), spec_escape(&s));
    }

    /// `negotiateVersion` follows `int.TryParse`: optional spaces and sign, 32-bit range,
    /// negative refused, above the highest lowered to it.
    #[test]
    fn negotiate_versions(n in prop_oneof![any::<i64>(), -3i64..5], spaces in "[ ]{0,2}") {
        let text = format!("{spaces}{n}{spaces}");
        let expected = match i32::try_from(n) {
            Ok(v) if v >= 0 => Ok(v.unsigned_abs().min(1)),
            _ => Err(()),
        };
        prop_assert_eq!(parse_negotiate_version(Some(&text)).map_err(|_| ()), expected);
    }
}
