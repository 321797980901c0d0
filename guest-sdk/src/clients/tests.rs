//! The recipient builders map to the right WIT targets (no host needed).

use crate::Context;
use crate::bindings::types::Target;

use super::{
    Broadcast, all, all_except, caller, connections, group, groups, others, others_in_group, users,
};

fn ctx() -> Context {
    Context::new("acme", "chat", "me")
}

fn target(b: &Broadcast) -> String {
    match b.target() {
        Target::All(except) => format!("all except {except:?}"),
        Target::Groups(g) => format!("groups {:?} except {:?}", g.groups, g.except),
        other => format!("unexpected {other:?}"),
    }
}

#[test]
fn all_and_others() {
    assert_eq!(target(&all()), "all except []");
    assert_eq!(target(&others(&ctx())), r#"all except ["me"]"#);
    assert_eq!(target(&all_except(["a", "b"])), r#"all except ["a", "b"]"#);
    assert_eq!(
        target(&others(&ctx()).except(vec!["x".to_owned()])),
        r#"all except ["me", "x"]"#
    );
}

#[test]
fn groups_with_except_lists() {
    assert_eq!(target(&group("g")), r#"groups ["g"] except []"#);
    assert_eq!(
        target(&groups(&["g", "h"])),
        r#"groups ["g", "h"] except []"#
    );
    assert_eq!(
        target(&others_in_group(&ctx(), "g")),
        r#"groups ["g"] except ["me"]"#
    );
}

#[test]
fn listed_connections_and_users() {
    assert!(
        matches!(connections(["a", "b"]).target, Target::Connections(ids) if ids == ["a", "b"])
    );
    assert!(matches!(users(["u"]).target, Target::Users(ids) if ids == ["u"]));
    assert_eq!(caller(&ctx()).id, "me");
}
