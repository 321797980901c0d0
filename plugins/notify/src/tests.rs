//! The notify contract natively: argument decoding, then register and
//! notify on the SDK's test host. (`Integer` and `hub_enum!` are tested in
//! the SDK.)

use serde_json::json;
use switchboard_guest::testing::{Caller, Sent, TestHost, To};
use switchboard_guest::{Context, Methods};

use crate::{Notify, Status, TTL};

const NOT_FOUND: &str = "Unable to find connection";

#[test]
fn statuses_by_name_or_number() {
    let status = |v| serde_json::from_value::<Status>(v);
    assert_eq!(status(json!("Confirmed")).unwrap(), Status::Confirmed);
    assert_eq!(status(json!("confirmed")).unwrap(), Status::Confirmed);
    assert_eq!(status(json!(0)).unwrap(), Status::Confirmed);
    assert_eq!(status(json!("Failed")).unwrap(), Status::Failed);
    assert_eq!(status(json!(1.0)).unwrap(), Status::Failed);
    let e = status(json!("Pending")).unwrap_err().to_string();
    assert!(
        e.starts_with(r#"Unknown status "Pending": expected "Confirmed" (0) or "Failed" (1)"#),
        "{e}"
    );
}

#[test]
fn bad_arguments_fail_before_any_host_call() {
    let ctx = Context::new("acme", "notify", "c-1");
    let methods = Methods::of::<Notify>();
    let e = methods
        .invoke(&ctx, "notifyClient", r#"[1, "Pending"]"#)
        .unwrap_err();
    assert!(
        e.message().starts_with(
            "Failed to invoke 'notifyClient': invalid arguments: Unknown status \"Pending\""
        ),
        "{e}"
    );
    let e = methods.invoke(&ctx, "registerClient", "[1.5]").unwrap_err();
    assert!(
        e.message().starts_with(
            "Failed to invoke 'registerClient': invalid arguments: expected an integer, got 1.5"
        ),
        "{e}"
    );
}

#[test]
fn a_registered_client_and_only_it_is_notified() {
    let host = TestHost::new::<Notify>();
    let phone = Caller::new("c-phone");
    let other = Caller::new("c-other");
    let backend = Caller::new("c-backend");
    for caller in [&phone, &other, &backend] {
        host.connect(caller).unwrap();
    }

    assert_eq!(host.invoke(&phone, "registerClient", (42,)), Ok(None));
    assert_eq!(host.kv("notify:client:42").as_deref(), Some("c-phone"));
    assert_eq!(host.kv_ttl("notify:client:42"), Some(TTL));

    // A MessagePack client's 42.0 names the same registration.
    assert_eq!(
        host.invoke(&backend, "notifyClient", (42.0, "Confirmed")),
        Ok(None)
    );
    assert_eq!(
        host.sent(),
        [Sent {
            to: To::Connections(vec!["c-phone".to_owned()]),
            method: "addMessage".to_owned(),
            args: json!(["Here's the message for confirmation"]),
        }]
    );
    assert_eq!(host.received(&phone).len(), 1);
    assert!(host.received(&other).is_empty() && host.received(&backend).is_empty());

    host.invoke(&backend, "notifyClient", (42, 1)).unwrap();
    assert_eq!(
        host.received(&phone)[1].args,
        json!(["Here's the message for failure"])
    );
}

#[test]
fn registering_again_moves_the_identifier() {
    let host = TestHost::new::<Notify>();
    let (old, new) = (Caller::new("c-old"), Caller::new("c-new"));
    host.invoke(&old, "registerClient", (7,)).unwrap();
    host.invoke(&new, "registerClient", (7,)).unwrap();
    host.invoke(&old, "notifyClient", (7, "Confirmed")).unwrap();
    assert_eq!(host.received(&new).len(), 1);
    assert!(host.received(&old).is_empty());
}

#[test]
fn unknown_or_expired_identifiers_are_not_found() {
    let host = TestHost::new::<Notify>();
    let caller = Caller::new("c-1");
    let e = host
        .invoke(&caller, "notifyClient", (1, "Confirmed"))
        .unwrap_err();
    assert_eq!(e.message(), NOT_FOUND);

    host.invoke(&caller, "registerClient", (1,)).unwrap();
    host.expire("notify:client:1");
    let e = host
        .invoke(&caller, "notifyClient", (1, "Confirmed"))
        .unwrap_err();
    assert_eq!(e.message(), NOT_FOUND);
    assert!(host.sent().is_empty());
}

#[test]
fn store_failures_reach_the_caller() {
    let host = TestHost::new::<Notify>();
    let caller = Caller::new("c-1");
    host.fail("kv.set", "bucket unavailable");
    let e = host.invoke(&caller, "registerClient", (1,)).unwrap_err();
    assert_eq!(e.message(), "kv.set failed: bucket unavailable");
    assert!(host.kv_entries().is_empty());
}
