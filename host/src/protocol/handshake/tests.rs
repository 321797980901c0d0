//! Handshake parsing (versions, whitespace, partial records, limits) and ASP.NET's texts.

use bytes::BytesMut;

use super::super::{Protocol, TransferFormat};
use super::{
    HandshakeError, HandshakeRequest, error_response, parse_handshake, select, success_response,
};

fn request(protocol: &str, version: u32) -> HandshakeRequest {
    HandshakeRequest {
        protocol: protocol.into(),
        version,
    }
}

fn parse(bytes: &[u8]) -> Result<Option<HandshakeRequest>, HandshakeError> {
    parse_handshake(&mut BytesMut::from(bytes), 1024)
}

#[test]
fn parses_what_real_clients_send() {
    // JS (1, or 2 with stateful reconnect), signalrcore (0), pysignalr (spaces).
    for (bytes, expected) in [
        (
            &b"{\"protocol\":\"json\",\"version\":1}\x1e"[..],
            request("json", 1),
        ),
        (
            b"{\"protocol\":\"json\",\"version\":2}\x1e",
            request("json", 2),
        ),
        (
            b"{\"protocol\":\"json\",\"version\":0}\x1e",
            request("json", 0),
        ),
        (
            b"{\"protocol\": \"json\", \"version\": 1}\x1e",
            request("json", 1),
        ),
        (
            b"\r\n {\n\t\"version\" : 1 ,\"protocol\":\"messagepack\" }\n\x1e",
            request("messagepack", 1),
        ),
        (
            b"{\"protocol\":\"json\",\"version\":1,\"extra\":[1,{}]}\x1e",
            request("json", 1),
        ),
    ] {
        assert_eq!(
            parse(bytes),
            Ok(Some(expected)),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn waits_for_the_whole_record_and_keeps_what_follows() {
    let full = b"{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":6}\x1e";
    let end = full.iter().position(|&b| b == 0x1e).expect("separator");
    let mut buf = BytesMut::new();
    for (i, &b) in full.iter().enumerate() {
        buf.extend_from_slice(&[b]);
        let result = parse_handshake(&mut buf, 1024).expect("no error");
        if i < end {
            assert_eq!(result, None, "byte {i}");
        } else {
            assert_eq!(result, Some(request("json", 1)));
            break;
        }
    }
    assert!(buf.is_empty());

    let mut buf = BytesMut::from(&full[..]);
    assert_eq!(
        parse_handshake(&mut buf, 1024),
        Ok(Some(request("json", 1)))
    );
    assert_eq!(
        &buf[..],
        b"{\"type\":6}\x1e",
        "the first hub message stays for the protocol parser"
    );
}

#[test]
fn size_limit() {
    let record = b"{\"protocol\":\"json\",\"version\":1}";
    let mut exact = BytesMut::from(&record[..]);
    exact.extend_from_slice(b"\x1e");
    assert_eq!(
        parse_handshake(&mut exact, record.len()),
        Ok(Some(request("json", 1)))
    );

    let mut whole = BytesMut::from(&record[..]);
    whole.extend_from_slice(b"\x1e");
    assert_eq!(
        parse_handshake(&mut whole, record.len() - 1),
        Err(HandshakeError::TooLarge)
    );

    let mut partial = BytesMut::from(&b"{\"protocol\":\"json\",   "[..]);
    assert_eq!(
        parse_handshake(&mut partial, 10),
        Err(HandshakeError::TooLarge)
    );
    assert_eq!(
        HandshakeError::TooLarge.to_string(),
        "Handshake was canceled."
    );
}

#[test]
fn invalid_requests() {
    let cases: [(&[u8], &str); 7] = [
        (
            b"{\"version\":1}\x1e",
            "Missing required property 'protocol'.",
        ),
        (
            b"{\"protocol\":\"json\"}\x1e",
            "Missing required property 'version'.",
        ),
        (
            b"{\"protocol\":1,\"version\":1}\x1e",
            "Expected 'protocol' to be of type String.",
        ),
        (
            b"{\"protocol\":\"json\",\"version\":\"1\"}\x1e",
            "Expected 'version' to be of type Number.",
        ),
        (
            b"{\"protocol\":\"json\",\"version\":-1}\x1e",
            "Expected 'version' to be of type Number.",
        ),
        (
            b"{\"protocol\":\"json\",\"version\":1.5}\x1e",
            "Expected 'version' to be of type Number.",
        ),
        (
            b"{\"Protocol\":\"json\",\"version\":1}\x1e",
            "Missing required property 'protocol'.",
        ),
    ];
    for (bytes, text) in cases {
        assert_eq!(parse(bytes).expect_err("invalid").to_string(), text);
    }
    for bytes in [
        &b"{\"protocol\":\x1e"[..],
        b"[]\x1e",
        b"\x1e",
        b"{} {}\x1e",
        b"{\"type\":6,}\x1e",
    ] {
        assert!(
            matches!(parse(bytes), Err(HandshakeError::InvalidJson(_))),
            "{bytes:?}"
        );
    }
}

#[test]
fn responses() {
    assert_eq!(success_response(), b"{}\x1e");
    assert_eq!(
        error_response("The protocol 'x' is not supported."),
        b"{\"error\":\"The protocol 'x' is not supported.\"}\x1e"
    );
    assert_eq!(
        error_response("a\"b\\c\n"),
        b"{\"error\":\"a\\\"b\\\\c\\n\"}\x1e"
    );
}

#[test]
fn select_accepts_versions_zero_to_two() {
    let all = [TransferFormat::Text, TransferFormat::Binary];
    for version in 0..=2 {
        assert_eq!(select(&request("json", version), &all), Ok(Protocol::Json));
        assert_eq!(
            select(&request("messagepack", version), &all),
            Ok(Protocol::MessagePack)
        );
    }
    assert_eq!(
        select(&request("JSON", 1), &all),
        Ok(Protocol::Json),
        "names match case-insensitively"
    );
}

#[test]
fn select_uses_aspnet_texts() {
    let all = [TransferFormat::Text, TransferFormat::Binary];
    assert_eq!(
        select(&request("xml", 1), &all),
        Err("The protocol 'xml' is not supported.".to_owned())
    );
    assert_eq!(
        select(&request("json", 3), &all),
        Err("The server does not support version 3 of the 'json' protocol.".to_owned())
    );
    assert_eq!(
        select(&request("MessagePack", 9), &all),
        Err("The server does not support version 9 of the 'messagepack' protocol.".to_owned())
    );
    assert_eq!(
        select(&request("messagepack", 1), &[TransferFormat::Text]),
        Err("Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format.".to_owned())
    );
    assert_eq!(
        select(&request("json", 1), &[TransferFormat::Text]),
        Ok(Protocol::Json)
    );
    // The protocol check comes first, then the version, then the transfer format.
    assert_eq!(
        select(&request("messagepack", 5), &[TransferFormat::Text]),
        Err("The server does not support version 5 of the 'messagepack' protocol.".to_owned())
    );
}
