//! Registration: names, kinds, upload counts, duplicates.

use crate::methods::Kind;
use crate::{Context, HubError, Methods, Stream};

fn nothing(_: &Context, (): ()) -> Result<(), HubError> {
    Ok(())
}

fn ticks(_: &Context, (): (), _: &Stream) -> Result<(), HubError> {
    Ok(())
}

#[test]
fn methods_keep_name_kind_and_uploads_in_order() {
    let mut m = Methods::new();
    m.method("registerClient", nothing);
    m.stream("counter", ticks);
    m.method("sum", nothing).uploads(2);
    let listed: Vec<_> = m
        .iter()
        .map(|m| (m.name.to_string(), m.kind, m.uploads))
        .collect();
    assert_eq!(
        listed,
        [
            ("registerClient".to_owned(), Kind::Unary, 0),
            ("counter".to_owned(), Kind::ServerStream, 0),
            ("sum".to_owned(), Kind::Unary, 2),
        ]
    );
}

#[test]
fn lookup_ignores_ascii_case() {
    let mut m = Methods::new();
    m.method("registerClient", nothing);
    for name in [
        "registerClient",
        "registerclient",
        "REGISTERCLIENT",
        "RegisterClient",
    ] {
        assert_eq!(
            m.find(name).map(|m| &*m.name),
            Some("registerClient"),
            "{name}"
        );
    }
    assert!(m.find("registerClients").is_none());
    assert!(m.find("").is_none());
}

#[test]
fn names_may_be_owned_strings() {
    let mut m = Methods::new();
    m.method(String::from("dynamic"), nothing);
    assert!(m.find("DYNAMIC").is_some());
}

#[test]
#[should_panic(expected = "hub method 'Ping' is registered twice (as 'ping')")]
fn registering_a_name_twice_panics() {
    let mut m = Methods::new();
    m.method("ping", nothing);
    m.stream("Ping", ticks);
}
