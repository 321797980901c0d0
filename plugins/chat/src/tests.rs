//! The chat hub natively: the host-free methods through the SDK's dispatch,
//! the rest on the SDK's test host.

use serde_json::{Value, json};
use switchboard_guest::testing::{Caller, GroupChange, Message, Sent, TestHost, To};
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

fn connected(host: &TestHost, callers: &[&Caller]) {
    for caller in callers {
        host.connect(caller).unwrap();
    }
}

#[test]
fn send_reaches_every_connection_the_caller_included() {
    let host = TestHost::new::<Chat>();
    let (ann, bob) = (Caller::new("c-ann"), Caller::new("c-bob"));
    connected(&host, &[&ann, &bob]);

    assert_eq!(host.invoke(&ann, "send", ("ann", "hello")), Ok(None));
    assert_eq!(
        host.sent(),
        [Sent {
            to: To::All { except: vec![] },
            method: "addNewMessageToPage".to_owned(),
            args: json!(["ann", "hello"]),
        }]
    );
    for caller in [&ann, &bob] {
        assert_eq!(host.received(caller).len(), 1);
        assert_eq!(host.received(caller)[0].args, json!(["ann", "hello"]));
    }
}

#[test]
fn group_messages_reach_members_only_until_they_leave() {
    let host = TestHost::new::<Chat>();
    let (ann, bob, cy) = (
        Caller::new("c-ann"),
        Caller::new("c-bob"),
        Caller::new("c-cy"),
    );
    connected(&host, &[&ann, &bob, &cy]);

    host.invoke(&ann, "joinGroup", ("room",)).unwrap();
    host.invoke(&bob, "JoinGroup", ("room",)).unwrap();
    assert_eq!(host.group_members("room"), ["c-ann", "c-bob"]);

    // The sender hears its own group message only because it is a member.
    host.invoke(&cy, "sendToGroup", ("room", "cy", "knock knock"))
        .unwrap();
    let expected = [Message {
        method: "addNewMessageToPage".to_owned(),
        args: json!(["cy", "knock knock"]),
    }];
    assert_eq!(host.received(&ann), expected);
    assert_eq!(host.received(&bob), expected);
    assert!(host.received(&cy).is_empty());

    host.take_sent();
    host.invoke(&bob, "leaveGroup", ("room",)).unwrap();
    host.invoke(&ann, "sendToGroup", ("room", "ann", "still here?"))
        .unwrap();
    assert_eq!(host.received(&ann).len(), 1);
    assert!(host.received(&bob).is_empty());
    assert_eq!(
        host.group_changes(),
        [
            GroupChange::Added {
                connection_id: "c-ann".to_owned(),
                group: "room".to_owned()
            },
            GroupChange::Added {
                connection_id: "c-bob".to_owned(),
                group: "room".to_owned()
            },
            GroupChange::Removed {
                connection_id: "c-bob".to_owned(),
                group: "room".to_owned()
            },
        ]
    );
}

#[test]
fn direct_messages_name_the_sender_or_anonymous() {
    let host = TestHost::new::<Chat>();
    let ann = Caller::new("c-ann").user("ann");
    let bob_phone = Caller::new("c-bob-1").user("bob");
    let bob_laptop = Caller::new("c-bob-2").user("bob");
    let anonymous = Caller::new("c-anon");
    connected(&host, &[&ann, &bob_phone, &bob_laptop, &anonymous]);

    host.invoke(&ann, "sendToUser", ("bob", "hi bob")).unwrap();
    host.invoke(&anonymous, "sendToUser", ("bob", "guess who"))
        .unwrap();
    assert_eq!(host.sent()[0].to, To::Users(vec!["bob".to_owned()]));
    for bob in [&bob_phone, &bob_laptop] {
        let args: Vec<Value> = host.received(bob).into_iter().map(|m| m.args).collect();
        assert_eq!(
            args,
            [json!(["ann", "hi bob"]), json!(["anonymous", "guess who"])]
        );
    }
    assert!(host.received(&ann).is_empty());
}

#[test]
fn counter_streams_until_done_or_cancelled() {
    let host = TestHost::new::<Chat>();
    let ann = Caller::new("c-ann");
    let all = host.stream(&ann, "counter", (3,));
    assert_eq!(all.items, [0, 1, 2]);
    assert_eq!(all.result, Ok(()));
    assert!(host.stream(&ann, "counter", (0,)).items.is_empty());

    let cancelled = host
        .call(&ann, "counter")
        .args((1000,))
        .cancel_after(2)
        .stream();
    assert_eq!(cancelled.items, [0, 1]);
    assert!(cancelled.result.is_err());
}

#[test]
fn sum_adds_an_upload_stream_and_reports_its_error() {
    let host = TestHost::new::<Chat>();
    let ann = Caller::new("c-ann");
    assert_eq!(
        host.call(&ann, "sum").upload([1, 2, 39]).invoke(),
        Ok(Some(json!(42)))
    );
    assert_eq!(
        host.call(&ann, "sum").upload([0_i64; 0]).invoke(),
        Ok(Some(json!(0)))
    );
    assert_eq!(
        host.call(&ann, "sum").upload([i64::MAX, 1]).invoke(),
        Ok(Some(json!(i64::MAX)))
    );
    let e = host
        .call(&ann, "sum")
        .upload_failing([1], "client error")
        .invoke()
        .unwrap_err();
    assert_eq!(e.message(), "client error");
    let e = host
        .call(&ann, "sum")
        .upload([json!("x")])
        .invoke()
        .unwrap_err();
    assert!(
        e.message().starts_with("invalid item in upload stream 0"),
        "{e}"
    );
}

#[test]
fn a_failed_send_is_the_callers_error() {
    let host = TestHost::new::<Chat>();
    let ann = Caller::new("c-ann");
    host.fail("clients.send", "outbound queue full");
    assert_eq!(
        host.invoke(&ann, "send", ("ann", "hi"))
            .unwrap_err()
            .message(),
        "clients.send failed: outbound queue full"
    );
    assert!(host.sent().is_empty());
}
