//! Dispatch as the host sees it: names, arguments, void versus null, errors.

use serde_json::{Value, json};

use crate::{Context, Hub, HubError, Methods, Stream};

/// A hub exercising every shape of handler the SDK accepts.
struct Sample;

impl Hub for Sample {
    fn methods(m: &mut Methods) {
        m.method("registerClient", register_client);
        m.method("echo", |_: &Context, (value,): (Value,)| {
            Ok::<_, HubError>(value)
        });
        m.method("maybe", |_: &Context, (): ()| {
            Ok::<Option<i64>, HubError>(None)
        });
        m.method("whoami", |ctx: &Context, (): ()| {
            Ok::<_, HubError>(json!({"connectionId": ctx.connection_id(), "userId": ctx.user_id()}))
        });
        m.method("all", |_: &Context, args: Vec<Value>| {
            Ok::<_, HubError>(args.len())
        });
        m.method("fail", |_: &Context, (): ()| {
            Err::<(), _>("nope, said the plugin")
        });
        m.method("failOwned", |_: &Context, (n,): (u8,)| {
            Err::<(), _>(format!("bad {n}"))
        });
        m.stream("counter", counter);
    }
}

fn register_client(_: &Context, (id,): (i64,)) -> Result<(), HubError> {
    if id < 0 {
        return Err(HubError::new("negative ids are not allowed"));
    }
    Ok(())
}

fn counter(_: &Context, (count,): (u32,), _: &Stream) -> Result<(), HubError> {
    if count > 10 {
        return Err("too many".into());
    }
    Ok(())
}

fn call(method: &str, args: &str) -> Result<Option<String>, HubError> {
    let ctx = Context::new("acme", "sample", "conn-1").with_user("alice");
    Methods::of::<Sample>().invoke(&ctx, method, args)
}

fn ok(method: &str, args: &str) -> Option<String> {
    call(method, args).unwrap_or_else(|e| panic!("{method}({args}) failed: {e}"))
}

fn err(method: &str, args: &str) -> String {
    match call(method, args) {
        Ok(reply) => panic!("{method}({args}) succeeded with {reply:?}"),
        Err(e) => e.into_message(),
    }
}

#[test]
fn unit_results_are_void() {
    assert_eq!(ok("registerClient", "[42]"), None);
}

#[test]
fn null_results_are_null_not_void() {
    assert_eq!(ok("echo", "[null]").as_deref(), Some("null"));
    assert_eq!(ok("maybe", "[]").as_deref(), Some("null"));
}

#[test]
fn values_come_back_unchanged() {
    for value in [r#""text""#, "1.5", "[1,[2]]", r#"{"a":{"b":true}}"#] {
        assert_eq!(ok("echo", &format!("[{value}]")).as_deref(), Some(value));
    }
    let me: Value = serde_json::from_str(&ok("whoami", "[]").unwrap_or_default()).unwrap();
    assert_eq!(me, json!({"connectionId": "conn-1", "userId": "alice"}));
    assert_eq!(ok("all", r#"[1,"x",null]"#).as_deref(), Some("3"));
}

#[test]
fn method_names_match_case_insensitively() {
    assert_eq!(ok("REGISTERCLIENT", "[1]"), None);
    assert_eq!(ok("Echo", "[7]").as_deref(), Some("7"));
}

#[test]
fn unknown_methods_are_named_in_the_error() {
    assert_eq!(err("nope", "[]"), "Unknown hub method 'nope'");
}

#[test]
fn argument_errors_name_the_method_and_serde_reason() {
    let e = err("registerclient", r#"["x"]"#);
    assert!(
        e.starts_with("Failed to invoke 'registerClient': invalid arguments: invalid type: string \"x\", expected i64"),
        "{e}"
    );
    let e = err("registerClient", "[]");
    assert!(
        e.starts_with("Failed to invoke 'registerClient': invalid arguments: invalid length 0"),
        "{e}"
    );
    assert_eq!(
        err("maybe", "[1]"),
        "Failed to invoke 'maybe': invalid arguments: expected no arguments, got 1"
    );
    assert!(err("echo", "{").starts_with("Failed to invoke 'echo': invalid arguments: "));
}

#[test]
fn handler_errors_reach_the_client_verbatim() {
    assert_eq!(
        err("registerClient", "[-1]"),
        "negative ids are not allowed"
    );
    assert_eq!(err("fail", "[]"), "nope, said the plugin");
    assert_eq!(err("failOwned", "[3]"), "bad 3");
}

#[test]
fn stream_methods_complete_void_or_with_their_error() {
    assert_eq!(ok("counter", "[3]"), None);
    assert_eq!(err("counter", "[11]"), "too many");
    assert!(err("counter", "[]").starts_with("Failed to invoke 'counter': invalid arguments: "));
}
