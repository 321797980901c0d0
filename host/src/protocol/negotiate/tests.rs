//! Negotiate bodies and `negotiateVersion` handling.

use super::{TransportInfo, negotiate_error, negotiate_response, parse_negotiate_version};

const ALL: [TransportInfo; 3] = [
    TransportInfo::WEB_SOCKETS,
    TransportInfo::SERVER_SENT_EVENTS,
    TransportInfo::LONG_POLLING,
];

#[test]
fn version_one_body() {
    assert_eq!(
        negotiate_response(1, "x3Lh", "q9Zb", &ALL, false),
        concat!(
            r#"{"negotiateVersion":1,"connectionId":"x3Lh","connectionToken":"q9Zb","availableTransports":["#,
            r#"{"transport":"WebSockets","transferFormats":["Text","Binary"]},"#,
            r#"{"transport":"ServerSentEvents","transferFormats":["Text"]},"#,
            r#"{"transport":"LongPolling","transferFormats":["Text","Binary"]}]}"#
        )
    );
}

#[test]
fn version_zero_has_no_token() {
    let body = negotiate_response(0, "id", "secret", &[TransportInfo::LONG_POLLING], false);
    assert_eq!(
        body,
        r#"{"negotiateVersion":0,"connectionId":"id","availableTransports":[{"transport":"LongPolling","transferFormats":["Text","Binary"]}]}"#
    );
    assert!(!body.contains("secret"));
}

#[test]
fn stateful_reconnect_only_when_true() {
    let on = negotiate_response(1, "a", "b", &[TransportInfo::WEB_SOCKETS], true);
    assert!(on.ends_with(r#"]}],"useStatefulReconnect":true}"#), "{on}");
    let off = negotiate_response(1, "a", "b", &[TransportInfo::WEB_SOCKETS], false);
    assert!(!off.contains("useStatefulReconnect"));
}

#[test]
fn bodies_are_valid_json_without_protocol_version() {
    for version in [0, 1] {
        for stateful in [false, true] {
            let body = negotiate_response(version, "i\"d", "t\\k", &ALL, stateful);
            let value: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
            assert_eq!(value["negotiateVersion"], version);
            assert_eq!(value["connectionId"], "i\"d");
            assert_eq!(
                value["availableTransports"].as_array().map(Vec::len),
                Some(3)
            );
            assert!(!body.to_ascii_lowercase().contains("protocolversion"));
        }
    }
    let empty = negotiate_response(1, "a", "b", &[], false);
    assert!(empty.contains(r#""availableTransports":[]"#));
}

#[test]
fn error_body() {
    assert_eq!(
        negotiate_error("This connection is not allowed."),
        r#"{"error":"This connection is not allowed."}"#
    );
    assert_eq!(negotiate_error("q\"uote"), r#"{"error":"q\"uote"}"#);
}

#[test]
fn negotiate_version_rules() {
    assert_eq!(parse_negotiate_version(None), Ok(0));
    assert_eq!(parse_negotiate_version(Some("0")), Ok(0));
    assert_eq!(parse_negotiate_version(Some("1")), Ok(1));
    assert_eq!(parse_negotiate_version(Some("2")), Ok(1));
    assert_eq!(parse_negotiate_version(Some("2147483647")), Ok(1));
    assert_eq!(
        parse_negotiate_version(Some(" +1 ")),
        Ok(1),
        "int.TryParse allows sign and spaces"
    );
    for bad in ["abc", "", "1.0", "2147483648"] {
        assert_eq!(
            parse_negotiate_version(Some(bad)),
            Err(format!(
                "The client requested an invalid protocol version '{bad}'"
            ))
        );
    }
    assert_eq!(
        parse_negotiate_version(Some("-1")),
        Err(
            "The client requested version '-1', but the server does not support this version."
                .to_owned()
        )
    );
}
