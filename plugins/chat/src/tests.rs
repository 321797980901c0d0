//! The host-free methods, run through the SDK's dispatch natively.

use serde_json::{Value, json};
use switchboard_guest::{Context, Methods};

use crate::Chat;

fn call(ctx: &Context, method: &str, args: &str) -> Option<String> {
    Methods::of::<Chat>()
        .invoke(ctx, method, args)
        .unwrap_or_else(|e| panic!("{method}({args}) failed: {e}"))
}

#[test]
fn echo_returns_any_value_and_null_is_not_void() {
    let ctx = Context::new("acme", "chat", "c-1");
    for value in [
        "null",
        "0",
        r#""hi""#,
        "[1,{\"a\":null}]",
        r#"{"x":[true]}"#,
    ] {
        assert_eq!(
            call(&ctx, "echo", &format!("[{value}]")).as_deref(),
            Some(value)
        );
    }
}

#[test]
fn whoami_names_the_connection_and_user() {
    let anonymous = Context::new("acme", "chat", "c-1");
    let reply: Value = serde_json::from_str(&call(&anonymous, "whoami", "[]").unwrap()).unwrap();
    assert_eq!(reply, json!({"connectionId": "c-1", "userId": null}));

    let alice = Context::new("acme", "chat", "c-2").with_user("alice");
    let reply: Value = serde_json::from_str(&call(&alice, "WhoAmI", "[]").unwrap()).unwrap();
    assert_eq!(reply, json!({"connectionId": "c-2", "userId": "alice"}));
}
