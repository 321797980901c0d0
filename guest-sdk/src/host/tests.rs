//! In a native build host calls fail cleanly instead of aborting.

use std::time::Duration;

use crate::{HubError, clients, groups, kv, streaming};

use super::native::NO_HOST;

#[test]
fn native_host_calls_fail_with_a_clear_error() {
    let e = kv::get("k").unwrap_err();
    assert_eq!((e.call(), e.reason()), ("kv.get", NO_HOST));
    assert_eq!(
        kv::set_with_ttl("k", "v", Duration::from_secs(1))
            .unwrap_err()
            .call(),
        "kv.set"
    );
    assert!(kv::compare_and_set("k", None, "v").is_err());
    assert!(kv::delete("k").is_err());
    assert!(groups::add("c", "g").is_err());
    assert!(groups::remove("c", "g").is_err());
    assert!(clients::all().send("m", ("x",)).is_err());
    let e = clients::connection("c")
        .invoke::<i64>("m", (), Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(e.call(), "clients.invoke");
    crate::log::info("native log lines go to stderr");
}

#[test]
fn host_errors_become_hub_errors_naming_the_call() {
    let e: HubError = kv::get("k").unwrap_err().into();
    assert_eq!(e.message(), format!("kv.get failed: {NO_HOST}"));
}

#[test]
fn stream_calls_fail_and_uploads_end_after_the_error() {
    assert_eq!(
        crate::Stream::new().emit(&1).unwrap_err().call(),
        "streaming.emit"
    );
    let mut upload = streaming::upload::<i64>(0);
    assert!(matches!(upload.next(), Some(Err(_))));
    assert!(upload.next().is_none());
}

#[test]
fn client_arguments_that_are_not_arrays_fail_before_the_host() {
    let e = clients::all().send("m", "text").unwrap_err();
    assert_eq!(e.call(), "clients.send");
    assert!(e.reason().contains("JSON array"), "{e}");
}
