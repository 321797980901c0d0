use serde::Deserialize;
use serde_json::{Value, json};

use super::{decode_args, encode_args, encode_reply};

#[test]
fn tuple_arguments_decode_from_the_array() {
    let (id, status): (i64, String) = decode_args(r#"[42,"Confirmed"]"#).unwrap();
    assert_eq!((id, status.as_str()), (42, "Confirmed"));
}

#[test]
fn values_and_structs_decode_from_the_array() {
    let all: Vec<Value> = decode_args(r#"[1,"two",null]"#).unwrap();
    assert_eq!(all, vec![json!(1), json!("two"), Value::Null]);

    #[derive(Deserialize)]
    struct Message {
        name: String,
        text: String,
    }
    let m: Message = decode_args(r#"["ann","hi"]"#).unwrap();
    assert_eq!((m.name.as_str(), m.text.as_str()), ("ann", "hi"));
}

#[test]
fn unit_takes_exactly_no_arguments() {
    decode_args::<()>("[]").unwrap();
    assert_eq!(
        decode_args::<()>("[1]").unwrap_err(),
        "expected no arguments, got 1"
    );
    assert!(decode_args::<()>("null").is_err());
}

#[test]
fn wrong_arguments_give_serde_messages() {
    let wrong_type = decode_args::<(i64,)>(r#"["x"]"#).unwrap_err();
    assert!(
        wrong_type.contains("invalid type: string \"x\", expected i64"),
        "{wrong_type}"
    );
    let too_few = decode_args::<(i64, i64)>("[1]").unwrap_err();
    assert!(too_few.contains("invalid length 1"), "{too_few}");
    let too_many = decode_args::<(i64,)>("[1,2]").unwrap_err();
    assert!(!too_many.is_empty());
    assert!(decode_args::<(i64,)>("not json").is_err());
}

#[test]
fn unit_reply_is_void() {
    assert_eq!(encode_reply(&()).unwrap(), None);
}

#[test]
fn null_replies_are_values_not_void() {
    assert_eq!(encode_reply(&Value::Null).unwrap().as_deref(), Some("null"));
    assert_eq!(encode_reply(&None::<i64>).unwrap().as_deref(), Some("null"));
    #[derive(serde::Serialize)]
    struct Ack;
    assert_eq!(encode_reply(&Ack).unwrap().as_deref(), Some("null"));
}

#[test]
fn values_reply_as_json() {
    assert_eq!(encode_reply(&"pong").unwrap().as_deref(), Some("\"pong\""));
    assert_eq!(
        encode_reply(&json!({"a": [1, 2]})).unwrap().as_deref(),
        Some(r#"{"a":[1,2]}"#)
    );
}

#[test]
fn unencodable_reply_is_an_error() {
    let map: std::collections::HashMap<(i32, i32), i32> = [((1, 2), 3)].into();
    assert!(encode_reply(&map).is_err());
}

#[test]
fn client_arguments_must_be_an_array() {
    assert_eq!(encode_args(&("text",)).unwrap(), r#"["text"]"#);
    assert_eq!(encode_args(&("a", 1, true)).unwrap(), r#"["a",1,true]"#);
    assert_eq!(encode_args(&json!([])).unwrap(), "[]");
    assert!(encode_args("text").unwrap_err().contains("JSON array"));
    assert!(encode_args(&json!({"a": 1})).is_err());
}

#[test]
fn unit_client_arguments_mean_none() {
    assert_eq!(encode_args(&()).unwrap(), "[]");
}
