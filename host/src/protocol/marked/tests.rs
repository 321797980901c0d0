use serde_json::value::RawValue;

use super::*;
use crate::protocol::messagepack::json_to_msgpack;

fn json(text: &str) -> String {
    let mut out = Vec::new();
    push_json(&mut out, text);
    String::from_utf8(out).expect("utf-8")
}

fn msgpack(text: &str) -> Vec<u8> {
    let raw = RawValue::from_string(text.to_owned()).expect("json");
    let mut out = Vec::new();
    json_to_msgpack(&raw, &mut out).expect("converts");
    out
}

#[test]
fn binary_goes_out_as_bin_or_its_base64() {
    // [bin 8 of 01 02 03, "x"]
    assert_eq!(
        msgpack(r#"[{"$binary":"AQID"},"x"]"#),
        [0x92, 0xc4, 0x03, 0x01, 0x02, 0x03, 0xa1, b'x']
    );
    assert_eq!(json(r#"[{"$binary":"AQID"},"x"]"#), r#"["AQID","x"]"#);
    // Empty, and with whitespace inside the marker.
    assert_eq!(msgpack(r#"{ "$binary" : "" }"#), [0xc4, 0x00]);
    assert_eq!(json(r#"{ "$binary" : "" }"#), r#""""#);
    // 300 bytes: bin 16.
    let data = vec![7u8; 300];
    let text = format!(
        r#"{{"$binary":"{}"}}"#,
        base64::engine::general_purpose::STANDARD.encode(&data)
    );
    let mut want = vec![0xc5, 0x01, 0x2c];
    want.extend_from_slice(&data);
    assert_eq!(msgpack(&text), want);
}

#[test]
fn dates_go_out_as_timestamps_or_utc_iso_strings() {
    // Whole seconds within u32: timestamp 32 (fixext 4).
    assert_eq!(
        msgpack(r#"{"$date":"2024-01-02T03:04:05Z"}"#),
        [0xd6, 0xff, 0x65, 0x93, 0x7d, 0x25]
    );
    // With a fraction: timestamp 64 (fixext 8), nanoseconds in the upper 30 bits.
    let secs: u64 = 1_704_164_645;
    let word = (500_000_000u64 << 34) | secs;
    let mut want = vec![0xd7, 0xff];
    want.extend_from_slice(&word.to_be_bytes());
    assert_eq!(msgpack(r#"{"$date":"2024-01-02T03:04:05.5Z"}"#), want);
    // An offset is applied; JSON clients get UTC, the fraction trimmed.
    assert_eq!(
        msgpack(r#"{"$date":"2024-01-02T05:04:05.500+02:00"}"#),
        want
    );
    assert_eq!(
        json(r#"{"$date":"2024-01-02T05:04:05.500+02:00"}"#),
        r#""2024-01-02T03:04:05.5Z""#
    );
    // Before 1970: timestamp 96 (ext 8, 12 bytes).
    let mut want = vec![0xc7, 12, 0xff];
    want.extend_from_slice(&1_000_000u32.to_be_bytes());
    want.extend_from_slice(&(-1i64).to_be_bytes());
    assert_eq!(msgpack(r#"{"$date":"1969-12-31T23:59:59.001Z"}"#), want);
    assert_eq!(
        json(r#"{"$date":"1969-12-31T23:59:59.001Z"}"#),
        r#""1969-12-31T23:59:59.001Z""#
    );
}

#[test]
fn a_date_reads_back_as_a_messagepack_client_would_send_it() {
    for iso in [
        "2024-02-29T23:59:59.999999999Z",
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "+010000-01-01T00:00:00Z",
        "2106-02-07T06:28:16Z",
        "2514-05-30T01:53:04Z",
    ] {
        let (secs, nanos) = parse_iso8601(iso).expect(iso);
        let mut back = Vec::new();
        messagepack::push_timestamp(&mut back, &timestamp_payload(secs, nanos)).expect("payload");
        assert_eq!(String::from_utf8(back).expect("utf-8"), iso);
    }
}

#[test]
fn only_exact_markers_are_marked() {
    for text in [
        r#"{"$binary":"AQID","more":1}"#,
        r#"{"$binary":"not base64!"}"#,
        r#"{"$binary":5}"#,
        r#"{"$date":"2024-02-30T00:00:00Z"}"#,
        r#"{"$date":"2024-01-02T03:04:05"}"#,
        r#"{"$date":"2024-01-02"}"#,
        r#"{"$date":"2024-01-02T03:04:05\u005a"}"#,
        r#"{"$other":"x"}"#,
        r#"["{\"$binary\":\"AQID\"}"]"#,
    ] {
        assert_eq!(json(text), text, "{text}");
        let plain = {
            let raw = RawValue::from_string(text.to_owned()).expect("json");
            let mut out = Vec::new();
            json_to_msgpack(&raw, &mut out).expect("converts");
            out
        };
        assert_ne!(plain.first(), Some(&0xc4), "{text}");
        assert!(!matches!(plain.first(), Some(0xd6 | 0xd7 | 0xc7)), "{text}");
    }
}

#[test]
fn nested_markers_and_the_rest_unchanged() {
    let text = r#"{"a":[1,{"$binary":"AA=="},{"k":{"$date":"2024-01-02T03:04:05Z"}}],"s":"{\"$date\":1}","n":1.5e3}"#;
    assert_eq!(
        json(text),
        r#"{"a":[1,"AA==",{"k":"2024-01-02T03:04:05Z"}],"s":"{\"$date\":1}","n":1.5e3}"#
    );
    let packed = msgpack(text);
    let mut want = vec![
        0x83, 0xa1, b'a', 0x93, 0x01, 0xc4, 0x01, 0x00, 0x81, 0xa1, b'k',
    ];
    want.extend_from_slice(&[0xd6, 0xff, 0x65, 0x93, 0x7d, 0x25]);
    want.extend_from_slice(&[0xa1, b's', 0xab]);
    want.extend_from_slice(br#"{"$date":1}"#);
    want.extend_from_slice(&[0xa1, b'n', 0xcb]);
    want.extend_from_slice(&1500f64.to_be_bytes());
    assert_eq!(packed, want);
}

#[test]
fn unmarked_payloads_are_copied_as_they_are() {
    let text = r#"{"price":"5$","list":[1,2,{"x":"y"}]}"#;
    assert!(may_have_markers(r#"{"$binary":"AA=="}"#));
    assert!(!may_have_markers(text));
    assert_eq!(json(text), text);
    // A `"$` that is no marker is walked, and copied as it is.
    let text = r#"{"price":"$5","$date":{"$date":1}}"#;
    assert!(may_have_markers(text));
    assert_eq!(json(text), text);
}

#[test]
fn digits_past_nanoseconds_are_cut() {
    assert_eq!(
        json(r#"{"$date":"2024-01-02T03:04:05.1234567890Z"}"#),
        r#""2024-01-02T03:04:05.123456789Z""#
    );
}
