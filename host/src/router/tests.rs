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
