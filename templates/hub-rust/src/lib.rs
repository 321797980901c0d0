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
