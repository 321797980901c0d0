//! JSON hub protocol: every message type in both directions, framing, limits and error texts.

use bytes::BytesMut;

use super::super::tests::{json, parse_all, written};
use super::super::{CompletionOutcome, HubMessage, Protocol, ProtocolError};

fn parse(bytes: &[u8]) -> Result<Vec<HubMessage>, ProtocolError> {
    parse_all(Protocol::Json, bytes)
}

fn parse_one(text: &str) -> HubMessage {
    let mut record = text.as_bytes().to_vec();
    record.push(0x1e);
    let mut messages = parse(&record).expect("parses");
    assert_eq!(messages.len(), 1, "{text}");
    messages.remove(0)
}

fn parse_err(text: &str) -> String {
    let mut record = text.as_bytes().to_vec();
    record.push(0x1e);
    parse(&record).expect_err(text).to_string()
}

fn write(msg: &HubMessage) -> String {
    let mut out = Vec::new();
    Protocol::Json.write_message(msg, &mut out).expect("writes");
    assert_eq!(out.last(), Some(&0x1e));
    assert_eq!(out.iter().filter(|&&b| b == 0x1e).count(), 1);
    out.pop();
    String::from_utf8(out).expect("utf-8")
}

fn invocation(id: Option<&str>, target: &str, args: &str) -> HubMessage {
    HubMessage::invocation(id.map(str::to_owned), target.to_owned(), json(args))
}

// === reading ===

#[test]
fn reads_the_wire_examples() {
    assert_eq!(parse_one(r#"{"type":6}"#), HubMessage::Ping);
    assert_eq!(
        parse_one(r#"{"target":"Echo","arguments":["x"],"invocationId":"0","type":1}"#),
        invocation(Some("0"), "Echo", r#"["x"]"#)
    );
    assert_eq!(
        parse_one(r#"{"target":"Echo","arguments":["y"],"type":1}"#),
        invocation(None, "Echo", r#"["y"]"#)
    );
    assert_eq!(
        parse_one(r#"{"type":7}"#),
        HubMessage::Close {
            error: None,
            allow_reconnect: false
        }
    );
}

#[test]
fn keeps_arguments_verbatim() {
    let HubMessage::Invocation { arguments, .. } = parse_one(
        "{\"type\":1,\"target\":\"T\",\"arguments\": [ 1 , {\"a\" : \"\\u00e9\"} ,1e2]\n}",
    ) else {
        panic!("not an invocation");
    };
    assert_eq!(arguments.get(), "[ 1 , {\"a\" : \"\\u00e9\"} ,1e2]");
}

#[test]
fn reads_upload_stream_ids_and_headers() {
    let message = parse_one(
        r#"{"target":"StreamingConcat","arguments":[],"invocationId":"1","streamIds":["0","7"],"type":1,"headers":{"a":"b","x-trace":"1"}}"#,
    );
    assert_eq!(
        message,
        HubMessage::Invocation {
            invocation_id: Some("1".into()),
            target: "StreamingConcat".into(),
            arguments: json("[]"),
            stream_ids: vec!["0".into(), "7".into()],
            headers: vec![("a".into(), "b".into()), ("x-trace".into(), "1".into())],
        }
    );
}

#[test]
fn reads_every_client_message_type() {
    assert_eq!(
        parse_one(r#"{"type":4,"invocationId":"3","target":"Counter","arguments":[10,50]}"#),
        HubMessage::StreamInvocation {
            invocation_id: "3".into(),
            target: "Counter".into(),
            arguments: json("[10,50]"),
            stream_ids: vec![],
            headers: vec![],
        }
    );
    assert_eq!(
        parse_one(r#"{"type":2,"invocationId":"0","item":"Hello "}"#),
        HubMessage::StreamItem {
            invocation_id: "0".into(),
            item: json(r#""Hello ""#),
            headers: vec![]
        }
    );
    assert_eq!(
        parse_one(r#"{"type":2,"invocationId":"0","item":null}"#),
        HubMessage::StreamItem {
            invocation_id: "0".into(),
            item: json("null"),
            headers: vec![]
        }
    );
    assert_eq!(
        parse_one(r#"{"type":5,"invocationId":"3"}"#),
        HubMessage::CancelInvocation {
            invocation_id: "3".into(),
            headers: vec![]
        }
    );
    assert_eq!(
        parse_one(r#"{"type":8,"sequenceId":4}"#),
        HubMessage::Ack { sequence_id: 4 }
    );
    assert_eq!(
        parse_one(r#"{"type":9,"sequenceId":1}"#),
        HubMessage::Sequence { sequence_id: 1 }
    );
    assert_eq!(
        parse_one(r#"{"type":7,"error":"bye","allowReconnect":true}"#),
        HubMessage::Close {
            error: Some("bye".into()),
            allow_reconnect: true
        }
    );
}

#[test]
fn reads_completion_outcomes() {
    let completion = |outcome| HubMessage::Completion {
        invocation_id: "s0".into(),
        outcome,
        headers: vec![],
    };
    assert_eq!(
        parse_one(r#"{"type":3,"invocationId":"s0"}"#),
        completion(CompletionOutcome::Void)
    );
    assert_eq!(
        parse_one(r#"{"type":3,"invocationId":"s0","result":10}"#),
        completion(CompletionOutcome::Result(json("10")))
    );
    assert_eq!(
        parse_one(r#"{"type":3,"invocationId":"s0","result":null}"#),
        completion(CompletionOutcome::Result(json("null")))
    );
    assert_eq!(
        parse_one(r#"{"type":3,"invocationId":"s0","error":"Client didn't provide a result."}"#),
        completion(CompletionOutcome::Error(
            "Client didn't provide a result.".into()
        ))
    );
    // A null error is "not set", as in the JS client.
    assert_eq!(
        parse_one(r#"{"type":3,"invocationId":"s0","error":null,"result":1}"#),
        completion(CompletionOutcome::Result(json("1")))
    );
    assert_eq!(
        parse_err(r#"{"type":3,"invocationId":"s0","result":1,"error":"x"}"#),
        "The 'error' and 'result' properties are mutually exclusive."
    );
}

#[test]
fn accepts_any_order_whitespace_and_unknown_fields() {
    assert_eq!(
        parse_one(
            " \r\n\t{ \"arguments\" : [] , \"extra\" : {\"deep\":[1,{}]}, \"target\" : \"T\" , \"type\" : 1 } \n"
        ),
        invocation(None, "T", "[]")
    );
    // Escaped property names are the same names.
    assert_eq!(parse_one(r#"{"t\u0079pe":6}"#), HubMessage::Ping);
}

#[test]
fn property_names_are_case_sensitive() {
    assert_eq!(
        parse_err(r#"{"Type":6}"#),
        "Missing required property 'type'."
    );
    assert_eq!(
        parse_err(r#"{"type":1,"Target":"T","arguments":[]}"#),
        "Missing required property 'target'."
    );
}

#[test]
fn invocation_id_rules() {
    // Absent, null and empty all mean non-blocking.
    assert_eq!(
        parse_one(r#"{"type":1,"target":"T","arguments":[],"invocationId":null}"#),
        invocation(None, "T", "[]")
    );
    assert_eq!(
        parse_one(r#"{"type":1,"target":"T","arguments":[],"invocationId":""}"#),
        invocation(None, "T", "[]")
    );
    // Numbers are refused everywhere (the JS client dies on a numeric id; we refuse one too).
    assert_eq!(
        parse_err(r#"{"type":1,"target":"T","arguments":[],"invocationId":1}"#),
        "Expected 'invocationId' to be of type String."
    );
    assert_eq!(
        parse_err(r#"{"type":3,"invocationId":0,"result":1}"#),
        "Expected 'invocationId' to be of type String."
    );
    for text in [
        r#"{"type":4,"target":"T","arguments":[]}"#,
        r#"{"type":2,"item":1}"#,
        r#"{"type":3}"#,
        r#"{"type":5,"invocationId":""}"#,
    ] {
        assert_eq!(
            parse_err(text),
            "Missing required property 'invocationId'.",
            "{text}"
        );
    }
}

#[test]
fn required_properties_use_dotnet_texts() {
    let cases = [
        (
            r#"{"target":"T","arguments":[]}"#,
            "Missing required property 'type'.",
        ),
        (
            r#"{"type":1,"arguments":[]}"#,
            "Missing required property 'target'.",
        ),
        (
            r#"{"type":1,"target":"","arguments":[]}"#,
            "Missing required property 'target'.",
        ),
        (
            r#"{"type":1,"target":"T"}"#,
            "Missing required property 'arguments'.",
        ),
        (
            r#"{"type":4,"invocationId":"1","target":"T"}"#,
            "Missing required property 'arguments'.",
        ),
        (
            r#"{"type":2,"invocationId":"1"}"#,
            "Missing required property 'item'.",
        ),
        (r#"{"type":8}"#, "Missing required property 'sequenceId'."),
        (r#"{"type":9}"#, "Missing required property 'sequenceId'."),
    ];
    for (text, error) in cases {
        assert_eq!(parse_err(text), error, "{text}");
    }
}

#[test]
fn wrong_property_types_are_refused() {
    let cases = [
        (r#"{"type":"1"}"#, "Expected 'type' to be of type Number."),
        (r#"{"type":1.5}"#, "Expected 'type' to be of type Number."),
        (
            r#"{"type":1,"target":5,"arguments":[]}"#,
            "Expected 'target' to be of type String.",
        ),
        (
            r#"{"type":1,"target":"T","arguments":{}}"#,
            "Expected 'arguments' to be of type Array.",
        ),
        (
            r#"{"type":1,"target":"T","arguments":"[]"}"#,
            "Expected 'arguments' to be of type Array.",
        ),
        (
            r#"{"type":1,"target":"T","arguments":[],"streamIds":[1]}"#,
            "Expected 'streamIds' to be of type Array of String.",
        ),
        (
            r#"{"type":1,"target":"T","arguments":[],"headers":[]}"#,
            "Expected 'headers' to be of type Object.",
        ),
        (
            r#"{"type":1,"target":"T","arguments":[],"headers":{"a":1}}"#,
            "Expected header 'a' to be of type String.",
        ),
        (
            r#"{"type":3,"invocationId":"1","error":5}"#,
            "Expected 'error' to be of type String.",
        ),
        (
            r#"{"type":7,"allowReconnect":"yes"}"#,
            "Expected 'allowReconnect' to be of type Boolean.",
        ),
        (
            r#"{"type":7,"error":false}"#,
            "Expected 'error' to be of type String.",
        ),
        (
            r#"{"type":8,"sequenceId":"4"}"#,
            "Expected 'sequenceId' to be of type Number.",
        ),
        (
            r#"{"type":8,"sequenceId":-1}"#,
            "Expected 'sequenceId' to be of type Number.",
        ),
    ];
    for (text, error) in cases {
        assert_eq!(parse_err(text), error, "{text}");
    }
}

#[test]
fn unknown_types_are_skipped_but_must_be_valid() {
    let messages = parse(
        b"{\"type\":99,\"whatever\":[1,2]}\x1e{\"type\":0}\x1e{\"type\":-4}\x1e{\"type\":6}\x1e",
    )
    .expect("parses");
    assert_eq!(messages, vec![HubMessage::Ping]);
    assert!(matches!(
        parse(b"{\"type\":99,\x1e"),
        Err(ProtocolError::InvalidJson(_))
    ));
}

#[test]
fn invalid_json_is_refused() {
    for bad in [
        &b"{\"type\":6\x1e"[..],
        b"{\"type\":6}}\x1e",
        b"[6]\x1e",
        b"6\x1e",
        b"\x1e",
        b"  \x1e",
        b"{\"type\":6,}\x1e",
        b"{\"type\":6} x\x1e",
        b"{'type':6}\x1e",
        b"{\"type\":1,\"target\":\"\xff\",\"arguments\":[]}\x1e",
    ] {
        assert!(
            matches!(parse(bad), Err(ProtocolError::InvalidJson(_))),
            "{bad:?}"
        );
    }
    let error = parse(b"[6]\x1e").expect_err("array").to_string();
    assert!(error.starts_with("Invalid JSON: "), "{error}");
}

// === framing ===

#[test]
fn several_records_in_one_buffer() {
    let batch =
        b"{\"type\":6}\x1e{\"type\":1,\"target\":\"A\",\"arguments\":[1]}\x1e{\"type\":7}\x1e";
    assert_eq!(
        parse(batch).expect("parses"),
        vec![
            HubMessage::Ping,
            invocation(None, "A", "[1]"),
            HubMessage::Close {
                error: None,
                allow_reconnect: false
            },
        ]
    );
}

#[test]
fn records_split_byte_by_byte() {
    let stream = b"{\"type\":6}\x1e{\"type\":3,\"invocationId\":\"1\",\"result\":{\"a\":[1,2,\"\x1e\"]}}\x1e";
    // (The 0x1E inside the string is raw, which JSON forbids: the record ends there and fails.)
    let stream_ok = b"{\"type\":6}\x1e{\"type\":3,\"invocationId\":\"1\",\"result\":{\"a\":[1,2,\"\\u001e\"]}}\x1e{\"type\":6}\x1e";
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for (i, &b) in stream_ok.iter().enumerate() {
        buf.extend_from_slice(&[b]);
        Protocol::Json
            .parse_messages(&mut buf, 1 << 10, &mut out)
            .expect("parses");
        let complete = stream_ok[..=i].iter().filter(|&&c| c == 0x1e).count();
        assert_eq!(out.len(), complete, "after byte {i}");
    }
    assert!(buf.is_empty());
    assert_eq!(
        out[1],
        HubMessage::completion(
            "1",
            CompletionOutcome::Result(json(r#"{"a":[1,2,"\u001e"]}"#))
        )
    );
    assert!(parse(stream).is_err());
}

#[test]
fn partial_record_stays_in_buffer() {
    let mut buf = BytesMut::from(&b"{\"type\":6}\x1e{\"type\":"[..]);
    let mut out = Vec::new();
    Protocol::Json
        .parse_messages(&mut buf, 100, &mut out)
        .expect("parses");
    assert_eq!(out, vec![HubMessage::Ping]);
    assert_eq!(&buf[..], b"{\"type\":");
    buf.extend_from_slice(b"6}\x1e");
    Protocol::Json
        .parse_messages(&mut buf, 100, &mut out)
        .expect("parses");
    assert_eq!(out, vec![HubMessage::Ping, HubMessage::Ping]);
    assert!(buf.is_empty());
}

#[test]
fn oversize_records_are_refused_whole_or_partial() {
    let record = b"{\"type\":6}"; // 10 bytes
    let mut ok = BytesMut::from(&b"{\"type\":6}\x1e"[..]);
    let mut out = Vec::new();
    Protocol::Json
        .parse_messages(&mut ok, 10, &mut out)
        .expect("exactly the limit is fine");
    assert_eq!(out.len(), 1);

    let mut whole = BytesMut::from(&b"{\"type\":6}\x1e{\"type\":6 }\x1e"[..]);
    let mut out = Vec::new();
    let error = Protocol::Json.parse_messages(&mut whole, record.len(), &mut out);
    assert_eq!(error, Err(ProtocolError::MessageTooLarge { limit: 10 }));
    assert_eq!(
        out,
        vec![HubMessage::Ping],
        "records before the bad one are returned"
    );
    assert_eq!(&whole[..], b"{\"type\":6 }\x1e", "the bad record stays");
    assert_eq!(
        error.expect_err("too large").to_string(),
        "The maximum message size of 10B was exceeded."
    );

    // No separator yet, but already over the limit.
    let mut partial = BytesMut::from(&b"{\"type\":1,\"target\":"[..]);
    let mut out = Vec::new();
    assert_eq!(
        Protocol::Json.parse_messages(&mut partial, 10, &mut out),
        Err(ProtocolError::MessageTooLarge { limit: 10 })
    );
    let mut at_limit = BytesMut::from(&b"{\"type\":6}"[..]);
    assert_eq!(
        Protocol::Json.parse_messages(&mut at_limit, 10, &mut out),
        Ok(())
    );
}

#[test]
fn an_error_keeps_earlier_messages() {
    let mut buf = BytesMut::from(&b"{\"type\":6}\x1e{\"type\":1}\x1e{\"type\":6}\x1e"[..]);
    let mut out = Vec::new();
    let error = Protocol::Json.parse_messages(&mut buf, 1000, &mut out);
    assert_eq!(
        error,
        Err(ProtocolError::InvalidMessage(
            "Missing required property 'target'.".into()
        ))
    );
    assert_eq!(out, vec![HubMessage::Ping]);
    assert_eq!(&buf[..], b"{\"type\":1}\x1e{\"type\":6}\x1e");
}

// === writing ===

#[test]
fn writes_exact_bytes_for_fixed_messages() {
    let out = written(Protocol::Json, &HubMessage::Ping);
    assert_eq!(out, b"{\"type\":6}\x1e");
    assert_eq!(
        write(&HubMessage::Close {
            error: None,
            allow_reconnect: false
        }),
        r#"{"type":7}"#
    );
    assert_eq!(
        write(&HubMessage::Close {
            error: Some("Connection closed with an error.".into()),
            allow_reconnect: false
        }),
        r#"{"type":7,"error":"Connection closed with an error."}"#
    );
    assert_eq!(
        write(&HubMessage::Close {
            error: Some("timeout".into()),
            allow_reconnect: true
        }),
        r#"{"type":7,"error":"timeout","allowReconnect":true}"#
    );
    assert_eq!(
        write(&HubMessage::Close {
            error: None,
            allow_reconnect: true
        }),
        r#"{"type":7,"allowReconnect":true}"#
    );
    assert_eq!(
        write(&HubMessage::Ack { sequence_id: 4 }),
        r#"{"type":8,"sequenceId":4}"#
    );
    assert_eq!(
        write(&HubMessage::Sequence {
            sequence_id: u64::MAX
        }),
        r#"{"type":9,"sequenceId":18446744073709551615}"#
    );
}

#[test]
fn writes_invocations_with_arguments_always() {
    assert_eq!(
        write(&invocation(None, "Message", r#"["hi"]"#)),
        r#"{"type":1,"target":"Message","arguments":["hi"]}"#
    );
    assert_eq!(
        write(&invocation(None, "Empty", "[]")),
        r#"{"type":1,"target":"Empty","arguments":[]}"#
    );
    assert_eq!(
        write(&invocation(Some("s0"), "GetValue", "[1, 2]")),
        r#"{"type":1,"invocationId":"s0","target":"GetValue","arguments":[1, 2]}"#
    );
    let full = HubMessage::StreamInvocation {
        invocation_id: "7".into(),
        target: "Up\"load".into(),
        arguments: json("[{\"x\":null}]"),
        stream_ids: vec!["a".into(), "b".into()],
        headers: vec![("k".into(), "v\n".into())],
    };
    assert_eq!(
        write(&full),
        r#"{"type":4,"invocationId":"7","target":"Up\"load","arguments":[{"x":null}],"streamIds":["a","b"],"headers":{"k":"v\n"}}"#
    );
}

#[test]
fn an_empty_invocation_id_is_written_as_none() {
    assert_eq!(
        write(&invocation(Some(""), "T", "[]")),
        r#"{"type":1,"target":"T","arguments":[]}"#
    );
}

#[test]
fn refuses_to_write_non_array_arguments() {
    let mut out = b"keep".to_vec();
    let bad = invocation(None, "T", "{}");
    assert!(Protocol::Json.write_message(&bad, &mut out).is_err());
    assert_eq!(out, b"keep", "output untouched on error");
}

#[test]
fn writes_completions_without_mixing_result_and_error() {
    let completion = |outcome| HubMessage::Completion {
        invocation_id: "0".into(),
        outcome,
        headers: vec![],
    };
    assert_eq!(
        write(&completion(CompletionOutcome::Void)),
        r#"{"type":3,"invocationId":"0"}"#
    );
    assert_eq!(
        write(&completion(CompletionOutcome::Result(json("\"x\"")))),
        r#"{"type":3,"invocationId":"0","result":"x"}"#
    );
    assert_eq!(
        write(&completion(CompletionOutcome::Result(json("null")))),
        r#"{"type":3,"invocationId":"0","result":null}"#
    );
    assert_eq!(
        write(&completion(CompletionOutcome::Error(
            "Unknown hub method 'X'".into()
        ))),
        r#"{"type":3,"invocationId":"0","error":"Unknown hub method 'X'"}"#
    );
    assert_eq!(
        write(&HubMessage::StreamItem {
            invocation_id: "3".into(),
            item: json("[1,2]"),
            headers: vec![]
        }),
        r#"{"type":2,"invocationId":"3","item":[1,2]}"#
    );
    assert_eq!(
        write(&HubMessage::CancelInvocation {
            invocation_id: "3".into(),
            headers: vec![]
        }),
        r#"{"type":5,"invocationId":"3"}"#
    );
}

#[test]
fn every_message_round_trips() {
    let messages = vec![
        invocation(None, "A", "[]"),
        invocation(Some("é\u{1}"), "B", "[1,\"two\",{\"3\":[4.5,null,true]}]"),
        HubMessage::StreamInvocation {
            invocation_id: "1".into(),
            target: "S".into(),
            arguments: json("[0]"),
            stream_ids: vec!["9".into()],
            headers: vec![("h".into(), "v".into()), ("h".into(), "w".into())],
        },
        HubMessage::StreamItem {
            invocation_id: "1".into(),
            item: json("{}"),
            headers: vec![("a".into(), "b".into())],
        },
        HubMessage::completion("1", CompletionOutcome::Void),
        HubMessage::completion("1", CompletionOutcome::Result(json("null"))),
        HubMessage::completion("1", CompletionOutcome::Error("e\"".into())),
        HubMessage::CancelInvocation {
            invocation_id: "1".into(),
            headers: vec![],
        },
        HubMessage::Ping,
        HubMessage::Close {
            error: None,
            allow_reconnect: false,
        },
        HubMessage::Close {
            error: Some(String::new()),
            allow_reconnect: true,
        },
        HubMessage::Ack { sequence_id: 0 },
        HubMessage::Sequence {
            sequence_id: 1 << 53,
        },
    ];
    let mut stream = Vec::new();
    for message in &messages {
        Protocol::Json
            .write_message(message, &mut stream)
            .expect("writes");
    }
    assert_eq!(parse(&stream).expect("parses"), messages);
}

#[test]
fn lone_surrogates_in_values_are_refused() {
    // Half a UTF-16 pair is not text: a plugin could not read it and MessagePack cannot carry it.
    for record in [
        r#"{"type":1,"target":"T","arguments":["\ud800"]}"#,
        r#"{"type":1,"target":"T","arguments":[{"\udc00":1}]}"#,
        r#"{"type":2,"invocationId":"1","item":"a\ud83d b"}"#,
        r#"{"type":3,"invocationId":"1","result":["\\\udfff"]}"#,
    ] {
        let error = parse_err(record);
        assert!(
            error.starts_with("Invalid JSON: Cannot read invalid UTF-16 JSON text as string."),
            "{record}: {error}"
        );
    }
    // Whole pairs and escaped backslashes are fine, and kept verbatim.
    let message = parse_one(r#"{"type":1,"target":"T","arguments":["\ud83d\ude00","\\ud800"]}"#);
    assert_eq!(
        message,
        invocation(None, "T", r#"["\ud83d\ude00","\\ud800"]"#)
    );
}

#[test]
fn values_nest_as_deep_as_in_messagepack() {
    let arrays = |levels: usize| {
        format!(
            r#"{{"type":1,"target":"T","arguments":{}{}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    // `[{"k":[{"k":...1}]}]`: two levels per pair.
    let mixed = |pairs: usize| {
        format!(
            r#"{{"type":2,"invocationId":"1","item":{}1{}}}"#,
            r#"[{"k":"#.repeat(pairs),
            "}]".repeat(pairs)
        )
    };
    // The value itself is level 1; 127 levels pass and 128 are refused, as in MessagePack.
    parse_one(&arrays(127));
    parse_one(&mixed(63));
    for text in [arrays(128), arrays(10_000), mixed(64)] {
        assert_eq!(
            parse_err(&text),
            "Invalid JSON: Values are nested too deeply.",
            "{text}"
        );
    }
    // Brackets inside strings are text, not nesting.
    let brackets = format!(r#"["{}", "\"{}"]"#, "[".repeat(300), "{".repeat(300));
    parse_one(&format!(
        r#"{{"type":2,"invocationId":"1","item":{brackets}}}"#
    ));
}
