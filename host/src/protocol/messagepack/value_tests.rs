//! MessagePack <-> JSON value conversion, checked against `rmpv` as an independent codec.

use rmpv::Value;

use super::super::{ProtocolError, RawValue};
use super::to_json::push_base64;
use super::{json_to_msgpack, msgpack_to_json};

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).expect("encodes");
    out
}

fn to_json(value: &Value) -> String {
    msgpack_to_json(&encode(value))
        .expect("converts")
        .get()
        .to_owned()
}

fn from_json(text: &str) -> Vec<u8> {
    let raw = RawValue::from_string(text.to_owned()).expect("valid JSON");
    let mut out = Vec::new();
    json_to_msgpack(&raw, &mut out).expect("converts");
    out
}

fn decode(bytes: &[u8]) -> Value {
    let mut slice = bytes;
    let value = rmpv::decode::read_value(&mut slice).expect("decodes");
    assert!(slice.is_empty(), "trailing bytes");
    value
}

fn timestamp(data: &[u8]) -> String {
    to_json(&Value::Ext(-1, data.to_vec()))
}

#[test]
fn scalars_to_json() {
    assert_eq!(to_json(&Value::Nil), "null");
    assert_eq!(to_json(&Value::Boolean(true)), "true");
    assert_eq!(to_json(&Value::Boolean(false)), "false");
    assert_eq!(to_json(&Value::from(0)), "0");
    assert_eq!(to_json(&Value::from(-32)), "-32");
    assert_eq!(to_json(&Value::from(u64::MAX)), "18446744073709551615");
    assert_eq!(to_json(&Value::from(i64::MIN)), "-9223372036854775808");
    assert_eq!(to_json(&Value::F32(1.1)), "1.1");
    assert_eq!(to_json(&Value::F64(1.1)), "1.1");
    assert_eq!(to_json(&Value::F64(3.0)), "3.0");
    assert_eq!(to_json(&Value::F64(-0.0)), "-0.0");
    assert_eq!(to_json(&Value::F64(1e300)), "1e+300");
    assert_eq!(to_json(&Value::F64(1.5e-7)), "1.5e-7");
    assert_eq!(to_json(&Value::F64(f64::NAN)), "null");
    assert_eq!(to_json(&Value::F32(f32::INFINITY)), "null");
    assert_eq!(to_json(&Value::from("a\"b\n\u{1e}é")), r#""a\"b\n\u001eé""#);
}

#[test]
fn signed_formats_holding_positive_values() {
    // int 8/16/32/64 markers may carry non-negative numbers (other encoders use them).
    assert_eq!(msgpack_to_json(&[0xd0, 0x05]).expect("i8").get(), "5");
    assert_eq!(
        msgpack_to_json(&[0xd1, 0x80, 0x00]).expect("i16").get(),
        "-32768"
    );
    assert_eq!(
        msgpack_to_json(&[0xd3, 0, 0, 0, 0, 0, 0, 0, 7])
            .expect("i64")
            .get(),
        "7"
    );
    assert_eq!(
        msgpack_to_json(&[0xcd, 0x01, 0x00]).expect("u16").get(),
        "256"
    );
}

#[test]
fn containers_to_json() {
    let value = Value::Array(vec![
        Value::from(1),
        Value::Map(vec![(Value::from("k"), Value::Array(vec![]))]),
        Value::Map(vec![]),
    ]);
    assert_eq!(to_json(&value), r#"[1,{"k":[]},{}]"#);
}

#[test]
fn map_keys_become_strings() {
    let value = Value::Map(vec![
        (Value::from(1), Value::from("int")),
        (Value::from(-2), Value::Nil),
        (Value::Boolean(true), Value::Nil),
        (Value::Nil, Value::Nil),
        (Value::F64(1.5), Value::Nil),
        (Value::Binary(vec![1, 2]), Value::Nil),
        (Value::from("s\""), Value::Nil),
    ]);
    assert_eq!(
        to_json(&value),
        r#"{"1":"int","-2":null,"true":null,"null":null,"1.5":null,"AQI=":null,"s\"":null}"#
    );
    let nested_key = Value::Map(vec![(Value::Array(vec![]), Value::Nil)]);
    assert_eq!(
        msgpack_to_json(&encode(&nested_key)).err(),
        Some(ProtocolError::InvalidMessage(
            "A MessagePack map key of type Array cannot become a JSON property name.".into()
        ))
    );
}

#[test]
fn binary_becomes_base64() {
    let cases: [(&[u8], &str); 7] = [
        (b"", ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg=="),
        (b"fooba", "Zm9vYmE="),
        (&[0xfb, 0xff, 0xbf], "+/+/"),
    ];
    for (bytes, text) in cases {
        let mut out = Vec::new();
        push_base64(&mut out, bytes);
        assert_eq!(out, text.as_bytes());
        assert_eq!(
            to_json(&Value::Binary(bytes.to_vec())),
            format!("\"{text}\"")
        );
    }
}

#[test]
fn timestamps_become_iso_8601() {
    // timestamp 64: 30-bit nanoseconds above 34-bit seconds.
    let ts64 = |secs: u64, nanos: u64| ((nanos << 34) | secs).to_be_bytes().to_vec();
    // timestamp 96: 32-bit nanoseconds, then signed 64-bit seconds.
    let ts96 = |secs: i64, nanos: u32| {
        let mut data = nanos.to_be_bytes().to_vec();
        data.extend_from_slice(&secs.to_be_bytes());
        data
    };
    let cases = [
        // timestamp 32: seconds only.
        (0u32.to_be_bytes().to_vec(), "1970-01-01T00:00:00Z"),
        (
            1_700_000_000u32.to_be_bytes().to_vec(),
            "2023-11-14T22:13:20Z",
        ),
        (u32::MAX.to_be_bytes().to_vec(), "2106-02-07T06:28:15Z"),
        (ts64(951_782_400, 500_000_000), "2000-02-29T00:00:00.5Z"),
        (ts64(1_700_000_000, 123_000_000), "2023-11-14T22:13:20.123Z"),
        (ts64(1_700_000_000, 1), "2023-11-14T22:13:20.000000001Z"),
        (ts96(-1, 0), "1969-12-31T23:59:59Z"),
        (ts96(-62_135_596_800, 0), "0001-01-01T00:00:00Z"),
        (
            ts96(253_402_300_799, 999_999_999),
            "9999-12-31T23:59:59.999999999Z",
        ),
        (ts96(253_402_300_800, 0), "+010000-01-01T00:00:00Z"),
        (ts96(-62_167_219_200 - 86_400, 0), "-000001-12-31T00:00:00Z"),
    ];
    for (data, iso) in cases {
        assert_eq!(timestamp(&data), format!("\"{iso}\""));
    }
    // Extreme values must not overflow.
    assert!(msgpack_to_json(&encode(&Value::Ext(-1, ts96(i64::MIN, 0)))).is_ok());
    assert!(msgpack_to_json(&encode(&Value::Ext(-1, ts96(i64::MAX, 0)))).is_ok());
    // Bad payloads.
    assert!(msgpack_to_json(&encode(&Value::Ext(-1, ts96(0, 1_000_000_000)))).is_err());
    assert!(msgpack_to_json(&encode(&Value::Ext(-1, vec![0; 5]))).is_err());
}

#[test]
fn other_extensions_are_refused() {
    assert_eq!(
        msgpack_to_json(&encode(&Value::Ext(5, vec![1]))).err(),
        Some(ProtocolError::InvalidMessage(
            "Unsupported MessagePack extension type 5.".into()
        ))
    );
}

#[test]
fn json_to_msgpack_matches_rmpv() {
    let cases: Vec<(&str, Value)> = vec![
        ("null", Value::Nil),
        ("true", Value::Boolean(true)),
        ("0", Value::from(0)),
        ("127", Value::from(127)),
        ("128", Value::from(128)),
        ("-1", Value::from(-1)),
        ("-33", Value::from(-33)),
        ("65536", Value::from(65536)),
        ("-2147483649", Value::from(-2_147_483_649i64)),
        ("18446744073709551615", Value::from(u64::MAX)),
        ("1.5", Value::F64(1.5)),
        ("1e2", Value::F64(100.0)),
        ("\"\"", Value::from("")),
        ("\"é\\u0041\"", Value::from("éA")),
        ("[]", Value::Array(vec![])),
        ("{}", Value::Map(vec![])),
        (
            r#"{"b":1,"a":[null,{"c":false}]}"#,
            Value::Map(vec![
                (Value::from("b"), Value::from(1)),
                (
                    Value::from("a"),
                    Value::Array(vec![
                        Value::Nil,
                        Value::Map(vec![(Value::from("c"), Value::Boolean(false))]),
                    ]),
                ),
            ]),
        ),
    ];
    for (text, expected) in cases {
        let bytes = from_json(text);
        assert_eq!(bytes, encode(&expected), "{text}");
        assert_eq!(decode(&bytes), expected, "{text}");
    }
}

#[test]
fn container_headers_shrink_to_the_smallest_form() {
    for len in [0usize, 15, 16, 65_535, 65_536] {
        let text = format!("[{}]", vec!["1"; len].join(","));
        let bytes = from_json(&text);
        let expected = Value::Array(vec![Value::from(1); len]);
        assert_eq!(bytes, encode(&expected), "array of {len}");

        let map = format!(
            "{{{}}}",
            (0..len)
                .map(|i| format!("\"{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let expected = Value::Map(
            (0..len)
                .map(|i| (Value::from(i.to_string()), Value::from(i)))
                .collect(),
        );
        assert_eq!(from_json(&map), encode(&expected), "map of {len}");
    }
    // Nested containers each shrink their own header.
    let nested = from_json(r#"[[[1],[]],{"x":[[]]}]"#);
    assert_eq!(
        nested,
        [0x92, 0x92, 0x91, 0x01, 0x90, 0x81, 0xa1, b'x', 0x91, 0x90]
    );
}

#[test]
fn long_strings_use_wider_formats() {
    for len in [31usize, 32, 255, 256, 65_535, 65_536] {
        let text = "a".repeat(len);
        assert_eq!(
            from_json(&format!("\"{text}\"")),
            encode(&Value::from(text.as_str())),
            "len {len}"
        );
    }
}

#[test]
fn json_round_trips_through_msgpack() {
    for text in [
        r#"[1,-2,3.5,"x",null,true,{"k":[{}]}]"#,
        r#"{"nested":{"deeper":[1e+300,-0.0,0.1,1.5e-7]}}"#,
        "18446744073709551615",
        "-9223372036854775808",
        "\"\\u0000\\u001f\\\\\"",
    ] {
        let back = msgpack_to_json(&from_json(text)).expect("converts");
        assert_eq!(back.get(), text);
    }
}

#[test]
fn trailing_bytes_after_a_value_are_refused() {
    assert!(msgpack_to_json(&[0xc0, 0xc0]).is_err());
    assert!(msgpack_to_json(&[]).is_err());
}

#[test]
fn doubles_keep_every_bit() {
    // serde_json's default float parser is off by one ULP for some inputs (it needs the
    // `float_roundtrip` feature); the converter parses with std instead.
    for value in [
        2.500_278_472_900_390_6,
        0.1,
        1.0 / 3.0,
        5e-324,
        f64::MAX,
        -f64::MIN_POSITIVE,
        123_456.789e-200,
    ] {
        let text = serde_json::to_string(&value).expect("finite");
        let Value::F64(back) = decode(&from_json(&text)) else {
            panic!("{text} did not become a float 64");
        };
        assert_eq!(back.to_bits(), value.to_bits(), "{text}");
        assert_eq!(to_json(&Value::F64(value)), text);
    }
}

#[test]
fn numbers_outside_integer_range_become_floats() {
    assert_eq!(
        decode(&from_json("18446744073709551616")),
        Value::F64(18_446_744_073_709_551_616.0)
    );
    assert_eq!(
        decode(&from_json("-9223372036854775809")),
        Value::F64(-9_223_372_036_854_775_809.0)
    );
    assert_eq!(decode(&from_json("-0")), Value::from(0));
    assert_eq!(decode(&from_json("-0.0")), Value::F64(-0.0));
    assert_eq!(decode(&from_json("1E2")), Value::F64(100.0));
    assert_eq!(decode(&from_json("2e-1")), Value::F64(0.2));
}

#[test]
fn escaped_strings_and_whitespace() {
    assert_eq!(
        decode(&from_json(
            " { \"a\\\"b\" : [ \"\\ud83d\\ude00\\n\" , \"\\/\" ] } "
        )),
        Value::Map(vec![(
            Value::from("a\"b"),
            Value::Array(vec![Value::from("😀\n"), Value::from("/")])
        )])
    );
    assert_eq!(decode(&from_json("\"\\\\\"")), Value::from("\\"));
}

#[test]
fn deep_json_converts_without_recursion() {
    // RawValue validation has no depth limit, so plugins can hand over very deep JSON.
    let depth = 100_000;
    let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let bytes = from_json(&text);
    assert_eq!(bytes.len(), depth + 1);
    assert!(bytes[..depth].iter().all(|&b| b == 0x91));
    assert_eq!(bytes[depth], 0x01);
    // Reading it back hits the MessagePack reader's nesting limit instead of the stack.
    assert!(msgpack_to_json(&bytes).is_err());
}

#[test]
fn output_is_untouched_on_error() {
    // A RawValue is always valid, so failures can only come from lengths over u32::MAX; check
    // the append behaviour on success instead.
    let raw = RawValue::from_string("[1,2]".to_owned()).expect("valid");
    let mut out = vec![0xaa];
    json_to_msgpack(&raw, &mut out).expect("converts");
    assert_eq!(out, [0xaa, 0x92, 0x01, 0x02]);
}
