//! The exact bytes the codecs write for awkward strings, numbers and binary data, spelled out
//! by hand: control characters, quotes, backslashes, DEL, U+2028/U+2029, astral characters,
//! integer extremes, every base64 padding case. Any change of escaper, integer or base64
//! implementation must keep every byte of these.

use super::messagepack::msgpack_to_json;
use super::negotiate::{TransportInfo, negotiate_error, negotiate_response};
use super::{CompletionOutcome, HubMessage, Protocol, RawValue};

/// Strings and their JSON form (what serde_json and System.Text.Json's relaxed encoder agree
/// on): `"` and `\` escaped, the seven short escapes, other C0 controls as lowercase `\u00XX`,
/// everything else (DEL, non-ASCII, U+2028/9, `/`, `<`) verbatim.
const TRICKY: &[(&str, &str)] = &[
    ("", r#""""#),
    ("plain", r#""plain""#),
    ("q\"uote", r#""q\"uote""#),
    ("back\\slash", r#""back\\slash""#),
    ("\\\"\\\"", r#""\\\"\\\"""#),
    ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
    (
        "\u{0}\u{1}\u{1f}\u{1e}\u{b}",
        r#""\u0000\u0001\u001f\u001e\u000b""#,
    ),
    ("\u{7f}", "\"\u{7f}\""),
    ("a/b</script>", r#""a/b</script>""#),
    ("\u{2028}\u{2029}", "\"\u{2028}\u{2029}\""),
    ("é✓😀", "\"é✓😀\""),
    ("end\\", r#""end\\""#),
    ("\u{1b}[0m", r#""\u001b[0m""#),
];

fn json_record(msg: &HubMessage) -> String {
    let mut out = Vec::new();
    Protocol::Json
        .write_message(msg, &mut out)
        .expect("encodes");
    String::from_utf8(out).expect("UTF-8")
}

#[test]
fn json_protocol_escapes_every_string_field_exactly() {
    for (text, escaped) in TRICKY {
        let completion = HubMessage::Completion {
            invocation_id: (*text).to_owned(),
            outcome: CompletionOutcome::Error((*text).to_owned()),
            headers: vec![((*text).to_owned(), (*text).to_owned())],
        };
        assert_eq!(
            json_record(&completion),
            format!(
                "{{\"type\":3,\"invocationId\":{escaped},\"error\":{escaped},\"headers\":{{{escaped}:{escaped}}}}}\u{1e}"
            ),
            "{text:?}"
        );
        let invocation = HubMessage::Invocation {
            invocation_id: Some((*text).to_owned()).filter(|t| !t.is_empty()),
            target: (*text).to_owned(),
            arguments: RawValue::from_string("[]".into()).expect("JSON"),
            stream_ids: vec![(*text).to_owned()],
            headers: vec![],
        };
        let id = if text.is_empty() {
            String::new()
        } else {
            format!(",\"invocationId\":{escaped}")
        };
        assert_eq!(
            json_record(&invocation),
            format!(
                "{{\"type\":1{id},\"target\":{escaped},\"arguments\":[],\"streamIds\":[{escaped}]}}\u{1e}"
            ),
            "{text:?}"
        );
        let close = HubMessage::Close {
            error: Some((*text).to_owned()),
            allow_reconnect: true,
        };
        assert_eq!(
            json_record(&close),
            format!("{{\"type\":7,\"error\":{escaped},\"allowReconnect\":true}}\u{1e}")
        );
        assert_eq!(negotiate_error(text), format!("{{\"error\":{escaped}}}"));
    }
}

#[test]
fn negotiate_body_escapes_ids_exactly() {
    let body = negotiate_response(
        1,
        "i\"d\u{1}",
        "t\\k\u{2028}",
        &[TransportInfo::LONG_POLLING],
        true,
    );
    assert_eq!(
        body,
        "{\"negotiateVersion\":1,\"connectionId\":\"i\\\"d\\u0001\",\"connectionToken\":\"t\\\\k\u{2028}\",\
         \"availableTransports\":[{\"transport\":\"LongPolling\",\"transferFormats\":[\"Text\",\"Binary\"]}],\
         \"useStatefulReconnect\":true}"
    );
}

#[test]
fn sequence_numbers_are_exact_decimal() {
    for (n, text) in [
        (0u64, "0"),
        (9, "9"),
        (10, "10"),
        (1_000_000, "1000000"),
        (u64::from(u32::MAX), "4294967295"),
        (u64::MAX, "18446744073709551615"),
    ] {
        assert_eq!(
            json_record(&HubMessage::Ack { sequence_id: n }),
            format!("{{\"type\":8,\"sequenceId\":{text}}}\u{1e}")
        );
        assert_eq!(
            json_record(&HubMessage::Sequence { sequence_id: n }),
            format!("{{\"type\":9,\"sequenceId\":{text}}}\u{1e}")
        );
    }
}

// === MessagePack -> JSON ===

/// `[value]` as MessagePack: a fixarray of one, then the value's bytes.
fn one(value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x91];
    out.extend_from_slice(value);
    out
}

fn transcoded(msgpack: &[u8]) -> String {
    msgpack_to_json(msgpack).expect("converts").get().to_owned()
}

#[test]
fn msgpack_integers_become_exact_decimal() {
    let cases: &[(&[u8], &str)] = &[
        (&[0x00], "0"),
        (&[0x7f], "127"),
        (&[0xff], "-1"),
        (&[0xe0], "-32"),
        (&[0xcc, 0x80], "128"),
        (&[0xcd, 0x01, 0x00], "256"),
        (&[0xce, 0xff, 0xff, 0xff, 0xff], "4294967295"),
        (
            &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            "18446744073709551615",
        ),
        (&[0xd0, 0x80], "-128"),
        (&[0xd1, 0x80, 0x00], "-32768"),
        (&[0xd2, 0x80, 0x00, 0x00, 0x00], "-2147483648"),
        (&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], "-9223372036854775808"),
        (
            &[0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            "9223372036854775807",
        ),
        (
            &[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
            "-2",
        ),
    ];
    for (bytes, text) in cases {
        assert_eq!(transcoded(&one(bytes)), format!("[{text}]"), "{bytes:02x?}");
    }
}

#[test]
fn msgpack_floats_become_shortest_round_trip_text() {
    let f64s: &[(f64, &str)] = &[
        (1.5, "1.5"),
        (3.0, "3.0"),
        (-0.0, "-0.0"),
        (0.1, "0.1"),
        (1e300, "1e+300"),
        (1e-7, "1e-7"),
        (123456789012345680.0, "1.2345678901234568e+17"),
        (f64::MAX, "1.7976931348623157e+308"),
        (f64::NAN, "null"),
        (f64::INFINITY, "null"),
        (f64::NEG_INFINITY, "null"),
    ];
    let f32s: &[(f32, &str)] = &[
        (0.1, "0.1"),
        (16777216.0, "16777216.0"),
        (f32::MIN_POSITIVE, "1.1754944e-38"),
        (f32::NAN, "null"),
    ];
    // float 64 (0xcb) and float 32 (0xca), big-endian after the marker.
    let f64s = f64s
        .iter()
        .map(|(v, t)| (v.to_string(), 0xcb, v.to_be_bytes().to_vec(), t));
    let f32s = f32s
        .iter()
        .map(|(v, t)| (v.to_string(), 0xca, v.to_be_bytes().to_vec(), t));
    for (value, marker, big_endian, text) in f64s.chain(f32s) {
        let mut bytes = vec![marker];
        bytes.extend_from_slice(&big_endian);
        assert_eq!(transcoded(&one(&bytes)), format!("[{text}]"), "{value}");
    }
}

#[test]
fn msgpack_strings_escape_exactly() {
    for (text, escaped) in TRICKY {
        let mut bytes = vec![0xd9, u8::try_from(text.len()).expect("short")];
        bytes.extend_from_slice(text.as_bytes());
        assert_eq!(transcoded(&one(&bytes)), format!("[{escaped}]"), "{text:?}");
        // The same text as a map key.
        let mut map = vec![0x81];
        map.extend_from_slice(&bytes);
        map.push(0xc0);
        assert_eq!(transcoded(&map), format!("{{{escaped}:null}}"), "{text:?}");
    }
}

#[test]
fn msgpack_binary_becomes_padded_standard_base64() {
    let all: Vec<u8> = (0..=255).collect();
    let cases: &[(&[u8], &str)] = &[
        (b"", ""),
        (&[0], "AA=="),
        (&[0, 0], "AAA="),
        (&[0, 0, 0], "AAAA"),
        (&[0xff], "/w=="),
        (&[0xff, 0xff], "//8="),
        (&[0xff, 0xff, 0xff, 0xff], "/////w=="),
        (&[0xfb, 0xef, 0xbe], "++++"),
        (b"Man is", "TWFuIGlz"),
        (
            &all,
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w==",
        ),
    ];
    for (data, text) in cases {
        let mut bytes = vec![0xc5];
        bytes.extend_from_slice(&u16::try_from(data.len()).expect("short").to_be_bytes());
        bytes.extend_from_slice(data);
        assert_eq!(
            transcoded(&one(&bytes)),
            format!("[\"{text}\"]"),
            "{data:02x?}"
        );
        // As a map key, too.
        let mut map = vec![0x81];
        map.extend_from_slice(&bytes);
        map.push(0x01);
        assert_eq!(transcoded(&map), format!("{{\"{text}\":1}}"));
    }
}

#[test]
fn msgpack_scalar_keys_become_their_json_text() {
    // {1: 0, -5: 0, true: 0, nil: 0, 1.5 (f64): 0, 18446744073709551615: 0}
    let mut map = vec![0x86, 0x01, 0x00, 0xfb, 0x00, 0xc3, 0x00, 0xc0, 0x00, 0xcb];
    map.extend_from_slice(&1.5f64.to_be_bytes());
    map.push(0x00);
    map.extend_from_slice(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    assert_eq!(
        transcoded(&map),
        r#"{"1":0,"-5":0,"true":0,"null":0,"1.5":0,"18446744073709551615":0}"#
    );
}

#[test]
fn msgpack_timestamps_pad_every_field() {
    // 8-byte form: nanoseconds 5_000_000 (0.005 s) at 1970-01-01T00:00:09Z.
    let nanos: u64 = 5_000_000;
    let word = (nanos << 34) | 9;
    let mut bytes = vec![0xd7, 0xff];
    bytes.extend_from_slice(&word.to_be_bytes());
    assert_eq!(transcoded(&one(&bytes)), r#"["1970-01-01T00:00:09.005Z"]"#);
    // 12-byte form: year 10000 and year -1, expanded.
    for (secs, text) in [
        (253_402_300_800i64, "+010000-01-01T00:00:00Z"),
        (-62_198_755_200, "-000001-01-01T00:00:00Z"),
        (-1, "1969-12-31T23:59:59Z"),
    ] {
        let mut bytes = vec![0xc7, 12, 0xff, 0, 0, 0, 0];
        bytes.extend_from_slice(&secs.to_be_bytes());
        assert_eq!(transcoded(&one(&bytes)), format!("[\"{text}\"]"), "{secs}");
    }
}
