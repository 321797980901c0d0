use std::time::Duration;
use serde::Deserialize;
use switchboard_guest::{Context, Hub, HubError, Methods, Stream, clients, groups, kv, log};

pub struct Greeter;

impl Hub for Greeter {
    fn methods(m: &mut Methods) {
        m.method("hello", hello);           // an Invocation
        m.method("join", join);
        m.method("introduce", introduce);
        m.stream("countdown", countdown);   // a StreamInvocation
    }

    // Optional. An error refuses the connection.
    fn on_connected(ctx: &Context) -> Result<(), HubError> {
        log::info(format_args!("{} connected", ctx.connection_id()));
        Ok(())
    }
}

/// hello(name) -> "Hello, <name>", and tells everyone else.
fn hello(ctx: &Context, (name,): (String,)) -> Result<String, HubError> {
    clients::others(ctx).send("greeted", (&name,))?;
    kv::set_with_ttl(&format!("last:{name}"), ctx.connection_id(), Duration::from_secs(3600))?;
    Ok(format!("Hello, {name}"))
}

/// join(group): returns nothing, so the client gets a void completion.
fn join(ctx: &Context, (group,): (String,)) -> Result<(), HubError> {
    groups::add(ctx.connection_id(), &group)?;
    Ok(())
}

/// introduce({name, title}): an object argument, decoded with serde's derive.
#[derive(Deserialize)]
struct Person {
    name: String,
    title: Option<String>,
}

fn introduce(_: &Context, (person,): (Person,)) -> Result<String, HubError> {
    Ok(match person.title {
        Some(title) => format!("{title} {}", person.name),
        None => person.name,
    })
}

/// countdown(n): streams n, n-1, ..., 1.
fn countdown(_: &Context, (n,): (u32,), stream: &Stream) -> Result<(), HubError> {
    for i in (1..=n).rev() {
        stream.emit(&i)?; // fails once the client cancels: just return
    }
    Ok(())
}

switchboard_guest::export_hub!(Greeter);

// in the hub's lib.rs: `cargo test` (no --target) runs it
#[cfg(test)]
mod tests {
    use std::time::Duration;
    use switchboard_guest::serde_json::json;
    use switchboard_guest::testing::{Caller, TestHost, To};

    use super::Greeter;

    #[test]
    fn hello_greets_and_tells_the_others() {
        let host = TestHost::new::<Greeter>();               // tenant "tenant", hub "hub"; see .named()
        let ann = Caller::new("conn-1").user("ann").claim("role", "admin");
        let bob = Caller::new("conn-2").query("room", "7").header("X-Client", "web");
        host.connect(&ann).unwrap();                         // runs on_connected
        host.connect(&bob).unwrap();

        assert_eq!(host.invoke(&ann, "hello", ("Ann",)), Ok(Some(json!("Hello, Ann"))));
        assert_eq!(host.sent()[0].to, To::All { except: vec!["conn-1".into()] });
        assert_eq!(host.received(&bob)[0].args, json!(["Ann"]));
        assert_eq!(host.kv("last:Ann").as_deref(), Some("conn-1"));
        assert_eq!(host.kv_ttl("last:Ann"), Some(Duration::from_secs(3600)));

        host.invoke(&bob, "join", ("room-7",)).unwrap();
        assert_eq!(host.group_members("room-7"), ["conn-2"]);

        let countdown = host.stream(&ann, "countdown", (3,));
        assert_eq!(countdown.items, [3, 2, 1]);

        let e = host.invoke(&ann, "hello", ()).unwrap_err();   // what the client would see
        assert!(e.message().starts_with("Failed to invoke 'hello': invalid arguments"));
    }
}
