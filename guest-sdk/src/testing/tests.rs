//! The test host serves every host call as the server would.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Caller, GroupChange, Invoked, Level, LogLine, Message, Sent, TestHost, To};
use crate::host::native::NO_HOST;
use crate::streaming::UploadError;
use crate::{Context, Hub, HubError, Methods, Stream, clients, connection, groups, kv, log};

/// A hub touching every host interface.
struct Everything;

impl Hub for Everything {
    fn methods(m: &mut Methods) {
        m.method("broadcast", |ctx: &Context, (text,): (String,)| {
            clients::others(ctx).send("said", (ctx.connection_id(), &text))?;
            clients::caller(ctx).send("ack", ())?;
            Ok::<_, HubError>(())
        });
        m.method("toUser", |_: &Context, (user, text): (String, String)| {
            clients::user(&user)
                .send("direct", (text,))
                .map_err(HubError::from)
        });
        m.method(
            "toGroup",
            |ctx: &Context, (group, text): (String, String)| {
                clients::others_in_group(ctx, &group).send("inGroup", (&group, text))?;
                Ok::<_, HubError>(())
            },
        );
        m.method("join", |ctx: &Context, (group,): (String,)| {
            groups::add(ctx.connection_id(), &group).map_err(HubError::from)
        });
        m.method("leave", |ctx: &Context, (group,): (String,)| {
            groups::remove(ctx.connection_id(), &group).map_err(HubError::from)
        });
        m.method(
            "claim",
            |_: &Context, (key, value, ttl): (String, String, Option<u64>)| {
                let set = match ttl {
                    Some(ms) => {
                        kv::compare_and_set_with_ttl(&key, None, &value, Duration::from_millis(ms))
                    }
                    None => kv::compare_and_set(&key, None, &value),
                };
                set.map_err(HubError::from)
            },
        );
        m.method("whoami", |ctx: &Context, (): ()| {
            Ok::<_, HubError>(json!({
                "tenant": ctx.tenant(),
                "hub": ctx.hub(),
                "connectionId": ctx.connection_id(),
                "userId": ctx.user_id(),
                "role": ctx.claims()["role"],
                "room": connection::query_param("room"),
                "client": connection::header("X-Client"),
                "auth": connection::header("authorization"),
                "session": connection::cookie("session"),
                "transport": connection::transport().map(|t| t.as_str()),
            }))
        });
        m.method("count", |_: &Context, (): ()| {
            let calls = connection::item("calls")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            connection::set_item("calls", &calls.to_string())?;
            log::info(format_args!("call {calls}"));
            Ok::<_, HubError>(calls)
        });
        m.method("ask", |_: &Context, (id,): (String,)| {
            clients::connection(&id)
                .invoke::<i64>("pick", ("a number",), Duration::from_secs(1))
                .map_err(HubError::from)
        });
        m.stream("ticks", |_: &Context, (n,): (u32,), stream: &Stream| {
            for i in 0..n {
                stream.emit(&json!({ "tick": i }))?;
            }
            Ok::<_, HubError>(())
        });
        m.stream("paced", |_: &Context, (n,): (u32,), stream: &Stream| {
            for i in 0..n {
                stream.emit(&i)?;
                if crate::invocation::sleep(Duration::from_millis(100)).is_err() {
                    // Stopped by the client: say so in an item nobody receives.
                    assert!(crate::invocation::cancelled());
                    return Ok(());
                }
            }
            Ok::<_, HubError>(())
        });
    }

    fn on_connected(ctx: &Context) -> Result<(), HubError> {
        if ctx.user_id().is_none() {
            return Err("Sign in first".into());
        }
        groups::add(ctx.connection_id(), "everyone")?;
        Ok(())
    }

    fn on_disconnected(ctx: &Context, error: Option<&str>) {
        log::warn(format_args!("{} left: {error:?}", ctx.connection_id()));
    }
}

fn said(method: &str, args: Value) -> Message {
    Message {
        method: method.to_owned(),
        args,
    }
}

#[test]
fn sends_are_captured_and_delivered_to_known_connections() {
    let host = TestHost::new::<Everything>();
    let (ann, bob) = (
        Caller::new("c-ann").user("ann"),
        Caller::new("c-bob").user("bob"),
    );
    host.connect(&ann).unwrap();
    host.connect(&bob).unwrap();

    assert_eq!(host.invoke(&ann, "broadcast", ("hi",)), Ok(None));
    assert_eq!(
        host.sent(),
        [
            Sent {
                to: To::All {
                    except: vec!["c-ann".to_owned()]
                },
                method: "said".to_owned(),
                args: json!(["c-ann", "hi"]),
            },
            Sent {
                to: To::Connections(vec!["c-ann".to_owned()]),
                method: "ack".to_owned(),
                args: json!([]),
            },
        ]
    );
    assert_eq!(host.received(&bob), [said("said", json!(["c-ann", "hi"]))]);
    assert_eq!(host.received(&ann), [said("ack", json!([]))]);

    assert_eq!(host.take_sent().len(), 2);
    assert!(host.sent().is_empty() && host.received(&bob).is_empty());

    host.invoke(&ann, "toUser", ("bob", "psst")).unwrap();
    assert_eq!(host.sent()[0].to, To::Users(vec!["bob".to_owned()]));
    assert_eq!(host.received(&bob), [said("direct", json!(["psst"]))]);
    assert!(host.received(&ann).is_empty());
}

#[test]
fn groups_change_membership_and_route_group_sends() {
    let host = TestHost::new::<Everything>();
    let (ann, bob, cy) = (
        Caller::new("c-ann").user("ann"),
        Caller::new("c-bob").user("bob"),
        Caller::new("c-cy").user("cy"),
    );
    for caller in [&ann, &bob, &cy] {
        host.connect(caller).unwrap();
    }
    assert_eq!(host.group_members("everyone"), ["c-ann", "c-bob", "c-cy"]);

    host.invoke(&ann, "join", ("room",)).unwrap();
    host.invoke(&bob, "join", ("room",)).unwrap();
    host.invoke(&ann, "toGroup", ("room", "hello")).unwrap();
    assert_eq!(
        host.received(&bob),
        [said("inGroup", json!(["room", "hello"]))]
    );
    assert!(host.received(&ann).is_empty() && host.received(&cy).is_empty());

    host.invoke(&bob, "leave", ("room",)).unwrap();
    assert_eq!(host.groups_of(&bob), ["everyone"]);
    assert_eq!(
        host.group_changes().last(),
        Some(&GroupChange::Removed {
            connection_id: "c-bob".to_owned(),
            group: "room".to_owned()
        })
    );

    host.disconnect(&ann, Some("gone"));
    assert!(host.groups_of(&ann).is_empty());
    assert_eq!(host.group_members("room"), Vec::<String>::new());
    assert_eq!(
        host.logs(),
        [LogLine {
            level: Level::Warn,
            message: r#"c-ann left: Some("gone")"#.to_owned()
        }]
    );
    host.invoke(&cy, "broadcast", ("after",)).unwrap();
    assert!(
        host.received(&ann).is_empty(),
        "a disconnected caller receives nothing"
    );
}

#[test]
fn on_connected_can_refuse() {
    let host = TestHost::new::<Everything>();
    let anonymous = Caller::new("c-1");
    assert_eq!(
        host.connect(&anonymous).unwrap_err().message(),
        "Sign in first"
    );
    assert!(host.group_members("everyone").is_empty());
}

#[test]
fn kv_is_in_memory_with_ttls_and_compare_and_set() {
    let host = TestHost::new::<Everything>();
    let ann = Caller::new("c-1");
    assert_eq!(
        host.invoke(&ann, "claim", ("k", "a", 5_000)),
        Ok(Some(json!(true)))
    );
    assert_eq!(
        host.invoke(&ann, "claim", ("k", "b", None::<u64>)),
        Ok(Some(json!(false)))
    );
    assert_eq!(host.kv("k").as_deref(), Some("a"));
    assert_eq!(host.kv_ttl("k"), Some(Duration::from_secs(5)));

    host.expire("k");
    assert_eq!(
        host.invoke(&ann, "claim", ("k", "b", None::<u64>)),
        Ok(Some(json!(true)))
    );
    assert_eq!(host.kv_ttl("k"), None);
    host.set_kv("other", "1");
    assert_eq!(
        host.kv_entries(),
        [
            ("k".to_owned(), "b".to_owned()),
            ("other".to_owned(), "1".to_owned())
        ]
    );
}

#[test]
fn the_caller_is_what_the_hub_sees() {
    let host = TestHost::new::<Everything>().named("acme", "lobby");
    let ann = Caller::new("c-1")
        .user("ann")
        .claim("role", "admin")
        .query("room", "42")
        .header("x-client", "web")
        .header("Authorization", "Bearer secret")
        .cookie("session", "s-1")
        .transport(connection::Transport::LongPolling);
    assert_eq!(
        host.invoke(&ann, "whoami", ()),
        Ok(Some(json!({
            "tenant": "acme",
            "hub": "lobby",
            "connectionId": "c-1",
            "userId": "ann",
            "role": "admin",
            "room": "42",
            "client": "web",
            "auth": null,
            "session": "s-1",
            "transport": "LongPolling",
        })))
    );
    assert_eq!(
        host.context(&ann).claims(),
        json!({"sub": "ann", "role": "admin"})
    );
}

#[test]
fn items_last_for_the_connection() {
    let host = TestHost::new::<Everything>();
    let ann = Caller::new("c-1").user("ann");
    assert_eq!(host.invoke(&ann, "count", ()), Ok(Some(json!(1))));
    assert_eq!(host.invoke(&ann, "COUNT", ()), Ok(Some(json!(2))));
    assert_eq!(host.item(&ann, "calls").as_deref(), Some("2"));
    assert_eq!(host.logs()[1].message, "call 2");

    host.disconnect(&ann, None);
    assert_eq!(host.item(&ann, "calls"), None);
    assert_eq!(host.invoke(&ann, "count", ()), Ok(Some(json!(1))));
}

#[test]
fn client_results_come_from_the_test() {
    let host = TestHost::new::<Everything>();
    let ann = Caller::new("c-1");
    let e = host.invoke(&ann, "ask", ("c-2",)).unwrap_err();
    assert!(
        e.message()
            .starts_with("clients.invoke failed: the test host has no client results")
    );

    host.answer_client_invocations(|connection, method, args| match connection {
        "c-2" => Ok(json!(args.as_array().map_or(0, Vec::len) + method.len())),
        _ => Err("client went away".to_owned()),
    });
    assert_eq!(host.invoke(&ann, "ask", ("c-2",)), Ok(Some(json!(5))));
    assert_eq!(
        host.invoke(&ann, "ask", ("c-3",)).unwrap_err().message(),
        "clients.invoke failed: client went away"
    );
    assert_eq!(
        host.client_invocations()[1],
        Invoked {
            connection_id: "c-2".to_owned(),
            method: "pick".to_owned(),
            args: json!(["a number"]),
        }
    );
}

#[test]
fn streams_collect_items_and_can_be_cancelled() {
    let host = TestHost::new::<Everything>();
    let ann = Caller::new("c-1");
    let all = host.stream(&ann, "ticks", (3,));
    assert_eq!(
        all.items,
        [json!({"tick": 0}), json!({"tick": 1}), json!({"tick": 2})]
    );
    assert_eq!(all.result, Ok(()));

    let cancelled = host.call(&ann, "ticks").args((3,)).cancel_after(1).stream();
    assert_eq!(cancelled.items.len(), 1);
    let e = cancelled.result.unwrap_err();
    assert_eq!(
        e.message(),
        "streaming.emit failed: the client cancelled the stream"
    );
}

#[test]
fn sleeps_are_virtual_and_end_when_the_client_cancels() {
    let host = TestHost::new::<Everything>();
    let ann = Caller::new("c-1");
    let paced = host.stream(&ann, "paced", (5,));
    assert_eq!(
        paced.items,
        [json!(0), json!(1), json!(2), json!(3), json!(4)]
    );
    assert_eq!(host.slept(), Duration::from_millis(500));

    let cancelled = host.call(&ann, "paced").args((5,)).cancel_after(2).stream();
    assert_eq!(cancelled.items, [json!(0), json!(1)]);
    // The second sleep saw the cancellation, and the method returned cleanly.
    assert_eq!(cancelled.result, Ok(()));
    assert_eq!(host.slept(), Duration::from_millis(600));
}

#[test]
fn failed_uploads_and_raw_arguments() {
    struct Uploads;
    impl Hub for Uploads {
        fn methods(m: &mut Methods) {
            m.method("sum", |_: &Context, (): ()| {
                crate::streaming::upload::<i64>(1).sum::<Result<i64, UploadError>>()
            })
            .uploads(2);
            // What the method saw of its upload's end, as a value.
            m.method("outcome", |_: &Context, (): ()| {
                let mut items = Vec::new();
                for item in crate::streaming::upload::<i64>(0) {
                    match item {
                        Ok(n) => items.push(n),
                        Err(UploadError::Client(why)) => {
                            return Ok(json!({"items": items, "client": why}));
                        }
                        Err(UploadError::Cancelled) => {
                            return Ok(json!({"items": items, "cancelled": true}));
                        }
                        Err(other) => return Err(HubError::from(other)),
                    }
                }
                Ok::<_, HubError>(json!({"items": items}))
            })
            .uploads(1);
        }
    }
    let host = TestHost::new::<Uploads>();
    let ann = Caller::new("c-1");
    let sum = host
        .call(&ann, "sum")
        .upload([0; 0])
        .upload([4, 5])
        .invoke();
    assert_eq!(sum, Ok(Some(json!(9))));
    let failed = host
        .call(&ann, "sum")
        .upload([0; 0])
        .upload_failing([1], "client gave up")
        .invoke();
    assert_eq!(
        failed.unwrap_err().message(),
        "client gave up",
        "the client's error, propagated with `?`, is its own text"
    );
    let seen = host
        .call(&ann, "outcome")
        .upload_failing([1, 2], "client gave up")
        .invoke();
    assert_eq!(
        seen,
        Ok(Some(json!({"items": [1, 2], "client": "client gave up"})))
    );
    let seen = host.call(&ann, "outcome").upload([3]).invoke();
    assert_eq!(seen, Ok(Some(json!({"items": [3]}))));
    let cancelled = host
        .call(&ann, "outcome")
        .upload([3])
        .cancel_after(0)
        .invoke();
    assert_eq!(cancelled, Ok(Some(json!({"items": [], "cancelled": true}))));
    let bad = host.call(&ann, "outcome").upload(["x"]).invoke();
    assert!(
        bad.as_ref()
            .is_err_and(|e| e.message().starts_with("invalid item in upload stream 0")),
        "{bad:?}"
    );
    let e = host
        .call(&ann, "sum")
        .args_json("[1]")
        .invoke()
        .unwrap_err();
    assert_eq!(
        e.message(),
        "Failed to invoke 'sum': invalid arguments: expected no arguments, got 1"
    );
}

#[test]
fn injected_failures_reach_the_hub_until_healed() {
    let host = TestHost::new::<Everything>();
    let ann = Caller::new("c-1");
    host.fail("kv.compare-and-set", "quota exceeded");
    assert_eq!(
        host.invoke(&ann, "claim", ("k", "v", None::<u64>))
            .unwrap_err()
            .message(),
        "kv.compare-and-set failed: quota exceeded"
    );
    host.heal("kv.compare-and-set");
    assert_eq!(
        host.invoke(&ann, "claim", ("k", "v", None::<u64>)),
        Ok(Some(json!(true)))
    );
}

#[test]
fn host_calls_outside_a_test_host_still_fail_cleanly() {
    let host = TestHost::new::<Everything>();
    let ann = Caller::new("c-1");
    host.enter(&ann, || kv::set("inside", "1")).unwrap();
    assert_eq!(host.kv("inside").as_deref(), Some("1"));
    assert_eq!(kv::get("inside").unwrap_err().reason(), NO_HOST);
    assert_eq!(connection::item("calls"), None);
}

#[test]
fn a_panicking_hub_function_uninstalls_its_host() {
    let host = TestHost::new::<Everything>();
    let ann = Caller::new("c-1");
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        host.enter::<()>(&ann, || panic!("in the hub"));
    }));
    assert!(panicked.is_err());
    assert_eq!(kv::get("k").unwrap_err().reason(), NO_HOST);
}
