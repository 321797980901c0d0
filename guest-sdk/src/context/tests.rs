use serde_json::json;

use crate::Context;

#[test]
fn anonymous_context_has_no_user_and_empty_claims() {
    let ctx = Context::new("acme", "chat", "c-1");
    assert_eq!(ctx.tenant(), "acme");
    assert_eq!(ctx.hub(), "chat");
    assert_eq!(ctx.connection_id(), "c-1");
    assert_eq!(ctx.user_id(), None);
    assert_eq!(ctx.claims(), json!({}));
}

#[test]
fn user_and_claims_are_readable() {
    let ctx = Context::new("acme", "chat", "c-1")
        .with_user("alice")
        .with_claims(&json!({"sub": "alice", "role": "admin"}));
    assert_eq!(ctx.user_id(), Some("alice"));
    assert_eq!(ctx.claims()["role"], "admin");
}

#[test]
fn malformed_claims_read_as_empty_object() {
    let mut ctx = Context::new("acme", "chat", "c-1");
    ctx.inner.claims_json = "not json".to_owned();
    assert_eq!(ctx.claims(), json!({}));
    ctx.inner.claims_json = "[1]".to_owned();
    assert_eq!(ctx.claims(), json!({}));
}
