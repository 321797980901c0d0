use super::index::Routable;
use super::*;

#[derive(Clone, Debug, PartialEq)]
struct Fake {
    id: String,
    user: Option<String>,
}

impl Routable for Fake {
    fn id(&self) -> &str {
        &self.id
    }
    fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
}

fn fake(id: &str, user: Option<&str>) -> Fake {
    Fake {
        id: id.into(),
        user: user.map(Into::into),
    }
}

fn ids(mut v: Vec<Fake>) -> Vec<String> {
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v.into_iter().map(|f| f.id).collect()
}

fn sample() -> Index<Fake> {
    let mut index = Index::default();
    index.insert(fake("c1", Some("alice")));
    index.insert(fake("c2", Some("alice")));
    index.insert(fake("c3", Some("bob")));
    index.insert(fake("c4", None));
    index
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn all_with_except() {
    let index = sample();
    assert_eq!(
        ids(index.resolve(&Target::All { except: vec![] })),
        s(&["c1", "c2", "c3", "c4"])
    );
    assert_eq!(
        ids(index.resolve(&Target::All {
            except: s(&["c2", "c4"])
        })),
        s(&["c1", "c3"])
    );
}

#[test]
fn a_connection_held_again_under_another_user_leaves_its_old_user() {
    let mut index = sample();
    index.insert(fake("c3", Some("alice")));
    assert!(
        !index.has_user("bob"),
        "bob's only connection now belongs to alice"
    );
    assert_eq!(
        ids(index.resolve(&Target::Users(s(&["alice", "bob"])))),
        s(&["c1", "c2", "c3"])
    );
    index.insert(fake("c3", None));
    assert_eq!(
        ids(index.resolve(&Target::Users(s(&["alice"])))),
        s(&["c1", "c2"])
    );
    assert_eq!(index.remove("c3"), Some(fake("c3", None)));
}

#[test]
fn connections_unknown_and_duplicates() {
    let index = sample();
    assert_eq!(
        ids(index.resolve(&Target::Connections(s(&["c3", "zz", "c3"])))),
        s(&["c3"])
    );
}

#[test]
fn users_reach_every_connection_once() {
    let index = sample();
    assert_eq!(
        ids(index.resolve(&Target::Users(s(&["alice", "alice", "nobody"])))),
        s(&["c1", "c2"])
    );
}

#[test]
fn groups_dedupe_and_except() {
    let mut index = sample();
    for (c, g) in [("c1", "g1"), ("c2", "g1"), ("c2", "g2"), ("c3", "g2")] {
        index.add_to_group(c, g, 10).expect("add");
    }
    assert_eq!(
        ids(index.resolve(&Target::Groups {
            groups: s(&["g1", "g2"]),
            except: vec![]
        })),
        s(&["c1", "c2", "c3"])
    );
    assert_eq!(
        ids(index.resolve(&Target::Groups {
            groups: s(&["g1"]),
            except: s(&["c1"])
        })),
        s(&["c2"])
    );
}

#[test]
fn groups_die_with_connection() {
    let mut index = sample();
    index.add_to_group("c1", "g", 10).expect("add");
    assert!(index.has_group("g"));
    index.remove("c1");
    assert!(!index.has_group("g"));
    assert!(index.has_user("alice"), "c2 still belongs to alice");
    index.remove("c2");
    assert!(!index.has_user("alice"));
    // A reconnect under the same id starts with no groups.
    index.insert(fake("c1", Some("alice")));
    assert!(
        index
            .resolve(&Target::Groups {
                groups: s(&["g"]),
                except: vec![]
            })
            .is_empty()
    );
}

#[test]
fn group_limit_and_unknown_connection() {
    let mut index = sample();
    index.add_to_group("c1", "a", 2).expect("a");
    index.add_to_group("c1", "a", 2).expect("again is a no-op");
    index.add_to_group("c1", "b", 2).expect("b");
    assert_eq!(
        index.add_to_group("c1", "c", 2),
        Err(RouteError::TooManyGroups(2))
    );
    index.add_to_group("nobody", "a", 2).expect("ignored");
    assert!(index.connection("nobody").is_none());
    index.remove_from_group("c1", "a");
    index.add_to_group("c1", "c", 2).expect("room again");
}

#[test]
fn hostile_names_are_plain_keys() {
    let mut index = sample();
    let long = "é".repeat(500);
    for g in ["a.b", "*", ">", "with space", long.as_str()] {
        index.add_to_group("c4", g, 10).expect("add");
        let got = index.resolve(&Target::Groups {
            groups: vec![g.to_string()],
            except: vec![],
        });
        assert_eq!(ids(got), s(&["c4"]), "{g}");
    }
    assert!(
        index
            .resolve(&Target::Groups {
                groups: s(&["a"]),
                except: vec![]
            })
            .is_empty(),
        "no wildcard or prefix matching"
    );
}

#[test]
fn decide_keeps_local_connection_sends_local() {
    let local = |id: &str| id == "c1" || id == "c2";
    assert_eq!(
        decide(&Target::Connections(s(&["c1", "c2"])), local),
        Remote::None
    );
    assert_eq!(
        decide(&Target::Connections(s(&["c1", "x9"])), local),
        Remote::Publish(Target::Connections(s(&["x9"])))
    );
    for t in [
        Target::All { except: vec![] },
        Target::Users(s(&["alice"])),
        Target::Groups {
            groups: s(&["g"]),
            except: vec![],
        },
    ] {
        assert_eq!(decide(&t, local), Remote::Publish(t.clone()));
    }
}

use crate::backplane::Cursor;

/// The backplane as durable connections see it: what is published, kept.
#[derive(Default)]
struct Captured(parking_lot::Mutex<Vec<Envelope>>);

impl Backplane for Captured {
    fn publish(&self, envelope: Envelope) -> Receipt {
        self.0.lock().push(envelope);
        Receipt::done()
    }
}

fn texts(rx: &mut crate::outbound::Detached) -> Vec<String> {
    std::iter::from_fn(|| rx.try_recv())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

/// What was published, read back as the stream gives it (own, with cursors).
fn read_back(captured: &Captured, router: &Router, next: &mut u64) {
    let published: Vec<Envelope> = std::mem::take(&mut *captured.0.lock());
    for mut envelope in published {
        *next += 1;
        envelope.own = true;
        envelope.cursor = Some(Cursor {
            partition: 0,
            sequence: *next,
        });
        router.apply_remote(envelope);
    }
}

#[test]
fn durable_connections_get_local_sends_and_group_changes_only_from_the_stream() {
    use crate::protocol::Protocol;
    let captured = Arc::new(Captured::default());
    let router = Router::new(captured.clone());
    let hub = HubKey::new("t", "h");
    let track = crate::durable::Track::new("d1", Some("ann"), 10, 1, 0);
    let (durable, mut durable_rx) = ConnectionHandle::new_detached_durable(
        "d1",
        hub.clone(),
        Some("ann"),
        Protocol::Json,
        track,
        captured.clone(),
    );
    let (plain, mut plain_rx) =
        ConnectionHandle::new_detached("p1", hub.clone(), Some("ann"), Protocol::Json, 64);
    router.register(durable.clone());
    router.register(plain.clone());
    let mut seq = 0;

    // A group change for the durable connection is published, not applied here.
    let _ = router.add_to_group(&hub, "d1", "g").expect("valid");
    let _ = router.add_to_group(&hub, "p1", "g").expect("valid");
    assert_eq!(
        captured.0.lock().len(),
        1,
        "only the durable join is published"
    );
    let to_group = Target::Groups {
        groups: vec!["g".into()],
        except: Vec::new(),
    };
    let message =
        |n: &str| Arc::new(OutboundInvocation::from_json("m", &format!("[{n}]")).expect("json"));
    // Sent after the join was published, before it is read back.
    let _ = router.send(&hub, &to_group, message("1"));
    assert_eq!(
        texts(&mut plain_rx).len(),
        1,
        "the plain connection gets it in place"
    );
    assert!(
        texts(&mut durable_rx).is_empty(),
        "never in place for a durable one"
    );
    read_back(&captured, &router, &mut seq);
    let got = texts(&mut durable_rx);
    assert_eq!(
        got.len(),
        1,
        "the join precedes the send in the stream: {got:?}"
    );
    assert!(got[0].contains("[1]"), "{got:?}");

    let _ = router.send(&hub, &to_group, message("2"));
    let _ = router.send(&hub, &Target::Connections(vec!["d1".into()]), message("3"));
    assert_eq!(
        captured.0.lock().len(),
        2,
        "a send to a local durable connection is published"
    );
    assert_eq!(texts(&mut plain_rx).len(), 1);
    read_back(&captured, &router, &mut seq);
    let got = texts(&mut durable_rx);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].contains("[2]") && got[1].contains("[3]"), "{got:?}");
    assert!(
        texts(&mut plain_rx).is_empty(),
        "own envelopes are not applied twice to plain ones"
    );

    // The durable connection leaves the group: published, in effect on read-back.
    let _ = router.remove_from_group(&hub, "d1", "g").expect("valid");
    read_back(&captured, &router, &mut seq);
    let _ = router.send(&hub, &to_group, message("5"));
    read_back(&captured, &router, &mut seq);
    assert!(texts(&mut durable_rx).is_empty(), "left before the send");
    assert_eq!(texts(&mut plain_rx).len(), 1);

    // Another node's send reaches both, the durable one through its track.
    let to_group = Target::Connections(vec!["d1".into(), "p1".into()]);
    // Another node's send reaches both, the durable one through its track.
    let mut remote = Envelope::new(
        hub.clone(),
        EnvelopeKind::Send {
            target: to_group,
            message: message("4"),
        },
    );
    seq += 1;
    remote.cursor = Some(Cursor {
        partition: 0,
        sequence: seq,
    });
    router.apply_remote(remote.clone());
    assert_eq!(texts(&mut durable_rx).len(), 1);
    assert_eq!(texts(&mut plain_rx).len(), 1);
    // Redelivered by the stream: not again.
    router.apply_remote(remote);
    assert!(texts(&mut durable_rx).is_empty());

    router.unregister(&durable);
    assert!(!router.durable.read().by_hub.contains_key(&hub));
}

#[test]
fn an_ended_connection_leaves_a_newer_one_under_its_id_in_place() {
    use crate::protocol::Protocol;
    let router = Router::new(Arc::new(Captured::default()));
    let hub = HubKey::new("t", "h");
    let (old, _old_rx) =
        ConnectionHandle::new_detached("c1", hub.clone(), Some("ann"), Protocol::Json, 64);
    let (new, _new_rx) =
        ConnectionHandle::new_detached("c1", hub.clone(), Some("ann"), Protocol::Json, 64);
    router.register(old.clone());
    // The session came back to this node under the same id before the old
    // connection's loop ended.
    router.register(new.clone());
    router.unregister(&old);
    let held = router
        .local_connection(&hub, "c1")
        .expect("the newer one stays");
    assert!(Arc::ptr_eq(&held, &new));
    router.unregister(&new);
    assert!(router.local_connection(&hub, "c1").is_none());
}

#[test]
fn a_gap_in_the_stream_closes_durable_connections_honestly_and_spares_plain_ones() {
    use crate::protocol::Protocol;
    let captured = Arc::new(Captured::default());
    let router = Router::new(captured.clone());
    let hub = HubKey::new("t", "h");
    let track = crate::durable::Track::new("d1", None, 10, 1, 0);
    let (durable, _durable_rx) = ConnectionHandle::new_detached_durable(
        "d1",
        hub.clone(),
        None,
        Protocol::Json,
        track,
        captured.clone(),
    );
    let (plain, _plain_rx) =
        ConnectionHandle::new_detached("p1", hub.clone(), None, Protocol::Json, 64);
    router.register(durable.clone());
    router.register(plain.clone());
    let message = Arc::new(OutboundInvocation::from_json("m", "[1]").expect("json"));
    let send = |sequence, broken| {
        let mut envelope = Envelope::new(
            hub.clone(),
            EnvelopeKind::Send {
                target: Target::All { except: Vec::new() },
                message: message.clone(),
            },
        );
        envelope.cursor = Some(Cursor {
            partition: 0,
            sequence,
        });
        envelope.broken = broken;
        envelope
    };
    router.apply_remote(send(1, false));
    assert!(!durable.is_closed());
    router.apply_remote(send(5, true));
    assert!(
        durable.is_closed(),
        "records 2 to 4 are gone: the durable connection cannot go on"
    );
    assert!(!plain.is_closed(), "a plain connection never promised them");
}

#[test]
fn a_record_for_one_durable_connection_is_found_by_its_id() {
    use crate::protocol::Protocol;
    let captured = Arc::new(Captured::default());
    let hub = HubKey::new("t", "h");
    let durable = |id: &str| {
        let track = crate::durable::Track::new(id, None, 10, 1, 0);
        let (handle, _rx) = ConnectionHandle::new_detached_durable(
            id,
            hub.clone(),
            None,
            Protocol::Json,
            track,
            captured.clone(),
        );
        handle
    };
    let (a, old_b, new_b) = (durable("a"), durable("b"), durable("b"));
    let mut held = Durables::default();
    for handle in [&a, &old_b, &new_b] {
        held.hold(handle);
    }
    let ids = |found: Option<Vec<Arc<ConnectionHandle>>>| -> Vec<String> {
        found
            .unwrap_or_default()
            .iter()
            .map(|c| c.id.to_string())
            .collect()
    };
    assert_eq!(ids(held.concerned(&hub, None)), ["a", "b", "b"]);
    assert_eq!(ids(held.concerned(&hub, Some("a"))), ["a"]);
    assert_eq!(ids(held.concerned(&hub, Some("c"))), Vec::<String>::new());
    held.release(&old_b);
    let b = held.concerned(&hub, Some("b")).expect("the newer b");
    assert!(b.len() == 1 && Arc::ptr_eq(&b[0], &new_b));
    held.release(&new_b);
    held.release(&a);
    assert!(
        held.by_hub.is_empty(),
        "a hub without durable connections is forgotten"
    );
}
