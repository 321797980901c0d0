//! The `{{hub}}` hub. Clients call its methods by these names, as on an ASP.NET Core hub.

use switchboard_guest::{Context, Hub, HubError, Methods, clients};

/// The hub.
pub struct Greeter;

impl Hub for Greeter {
    fn methods(m: &mut Methods) {
        m.method("hello", hello);
        m.method("broadcast", broadcast);
    }
}

switchboard_guest::export_hub!(Greeter);

/// `hello(name)`: a greeting, returned to the caller.
fn hello(_: &Context, (name,): (String,)) -> Result<String, HubError> {
    Ok(format!("Hello, {name}!"))
}

/// `broadcast(text)`: `onMessage(user, text)` to every connection of the hub.
fn broadcast(ctx: &Context, (text,): (String,)) -> Result<(), HubError> {
    let user = ctx.user_id().unwrap_or("anonymous").to_owned();
    clients::all().send("onMessage", (user, text))?;
    Ok(())
}

// `cargo test` in this folder runs the methods natively on the SDK's test host (no server, no build).
#[cfg(test)]
mod tests {
    use switchboard_guest::serde_json::json;
    use switchboard_guest::testing::{Caller, TestHost};

    #[test]
    fn hello_greets_by_name_and_broadcast_reaches_every_connection() {
        let host = TestHost::new::<super::Greeter>();
        let ada = Caller::new("conn-1").user("ada");
        let bob = Caller::new("conn-2");
        host.connect(&ada).expect("ada connects");
        host.connect(&bob).expect("bob connects");

        let greeting = host.invoke(&ada, "hello", ("Ada",)).expect("hello");
        assert_eq!(greeting, Some(json!("Hello, Ada!")));
        host.invoke(&ada, "broadcast", ("hi all",)).expect("broadcast");
        let received = host.received(&bob);
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].method, "onMessage");
        assert_eq!(received[0].args, json!(["ada", "hi all"]));
    }
}
