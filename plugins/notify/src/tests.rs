//! The parts of the contract that need no host: argument and status parsing.

use serde_json::json;
use switchboard_guest::{Context, Methods};

use crate::Notify;
use crate::identifier::SpecificIdentifier;
use crate::status::Status;

fn id(value: serde_json::Value) -> Result<SpecificIdentifier, serde_json::Error> {
    serde_json::from_value(value)
}

#[test]
fn identifiers_are_canonical_integers() {
    assert_eq!(id(json!(42)).unwrap().key(), "notify:client:42");
    assert_eq!(id(json!(42.0)).unwrap(), id(json!(42)).unwrap());
    assert_eq!(id(json!(-7)).unwrap().to_string(), "-7");
    assert_eq!(
        id(json!(u64::MAX)).unwrap().to_string(),
        u64::MAX.to_string()
    );
    assert!(
        id(json!(1.5))
            .unwrap_err()
            .to_string()
            .contains("must be an integer")
    );
    assert!(id(json!("42")).is_err());
    assert!(id(json!(null)).is_err());
}

fn status(value: serde_json::Value) -> Result<Status, serde_json::Error> {
    serde_json::from_value(value)
}

#[test]
fn statuses_by_name_or_number() {
    assert_eq!(status(json!("Confirmed")).unwrap(), Status::Confirmed);
    assert_eq!(status(json!("confirmed")).unwrap(), Status::Confirmed);
    assert_eq!(status(json!(0)).unwrap(), Status::Confirmed);
    assert_eq!(status(json!(0.0)).unwrap(), Status::Confirmed);
    assert_eq!(status(json!("Failed")).unwrap(), Status::Failed);
    assert_eq!(status(json!(1)).unwrap(), Status::Failed);
    assert_eq!(
        Status::Confirmed.message(),
        "Here's the message for confirmation"
    );
    assert_eq!(Status::Failed.message(), "Here's the message for failure");
}

#[test]
fn unknown_statuses_are_named() {
    let e = status(json!("Pending")).unwrap_err().to_string();
    assert!(
        e.starts_with(r#"Unknown status "Pending": expected "Confirmed" (0) or "Failed" (1)"#),
        "{e}"
    );
    let e = status(json!(2)).unwrap_err().to_string();
    assert!(e.starts_with("Unknown status 2:"), "{e}");
    let e = status(json!(-1)).unwrap_err().to_string();
    assert!(e.starts_with("Unknown status -1:"), "{e}");
    let e = status(json!(true)).unwrap_err().to_string();
    assert!(
        e.contains(r#"expected "Confirmed" (0) or "Failed" (1)"#),
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
    let e = methods
        .invoke(&ctx, "registerClient", r#"["x"]"#)
        .unwrap_err();
    assert!(
        e.message()
            .starts_with("Failed to invoke 'registerClient': invalid arguments:"),
        "{e}"
    );
}
