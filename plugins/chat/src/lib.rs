//! The chat hub: the classic SignalR sample, plus groups and users, and a few
//! methods that tests use to check results and streams end to end: `echo`,
//! `whoami`, `counter` (server-to-client stream) and `sum` (client-to-server
//! stream).
//!
//! Every chat message reaches clients as `addNewMessageToPage(name, message)`.

use serde_json::{Value, json};
use switchboard_guest::{Context, Hub, HubError, Methods, Stream, clients, groups, streaming};

/// What clients receive for every chat message.
const ON_MESSAGE: &str = "addNewMessageToPage";

/// The sender name of a direct message from an anonymous connection.
const ANONYMOUS: &str = "anonymous";

/// The chat hub.
pub struct Chat;

impl Hub for Chat {
    fn methods(m: &mut Methods) {
        m.method("send", send);
        m.method("joinGroup", join_group);
        m.method("leaveGroup", leave_group);
        m.method("sendToGroup", send_to_group);
        m.method("sendToUser", send_to_user);
        m.method("echo", echo);
        m.method("whoami", whoami);
        m.stream("counter", counter);
        m.method("sum", sum).uploads(1);
    }
}

switchboard_guest::export_hub!(Chat);

/// `send(name, message)`: to every connection of the hub, the caller included.
fn send(_: &Context, (name, message): (String, String)) -> Result<(), HubError> {
    clients::all().send(ON_MESSAGE, (name, message))?;
    Ok(())
}

/// `joinGroup(group)`: the caller receives the group's messages.
fn join_group(ctx: &Context, (group,): (String,)) -> Result<(), HubError> {
    groups::add(ctx.connection_id(), &group)?;
    Ok(())
}

/// `leaveGroup(group)`: the caller stops receiving the group's messages.
fn leave_group(ctx: &Context, (group,): (String,)) -> Result<(), HubError> {
    groups::remove(ctx.connection_id(), &group)?;
    Ok(())
}

/// `sendToGroup(group, name, message)`: to the group's members (the caller
/// only if it is one).
fn send_to_group(
    _: &Context,
    (group, name, message): (String, String, String),
) -> Result<(), HubError> {
    clients::group(&group).send(ON_MESSAGE, (name, message))?;
    Ok(())
}

/// `sendToUser(userId, message)`: to every connection of that user, on any
/// node, named after the caller's user id.
fn send_to_user(ctx: &Context, (user_id, message): (String, String)) -> Result<(), HubError> {
    let sender = ctx.user_id().unwrap_or(ANONYMOUS);
    clients::user(&user_id).send(ON_MESSAGE, (sender, message))?;
    Ok(())
}

/// `echo(value)`: returns its argument unchanged, `null` included.
fn echo(_: &Context, (value,): (Value,)) -> Result<Value, HubError> {
    Ok(value)
}

/// `whoami()`: `{"connectionId": ..., "userId": ...}`, `userId` null when
/// the caller is anonymous.
fn whoami(ctx: &Context, (): ()) -> Result<Value, HubError> {
    Ok(json!({
        "connectionId": ctx.connection_id(),
        "userId": ctx.user_id(),
    }))
}

/// `counter(count)`, a stream: emits `0, 1, ..., count - 1`, then completes.
fn counter(_: &Context, (count,): (u32,), stream: &Stream) -> Result<(), HubError> {
    for i in 0..count {
        // Fails once the client cancels or leaves; nobody hears the error.
        stream.emit(&i)?;
    }
    Ok(())
}

/// `sum(numbers)`, where `numbers` is an upload stream of integers: returns
/// their sum once the client completes the stream.
fn sum(_: &Context, (): ()) -> Result<i64, HubError> {
    let mut total: i64 = 0;
    for number in streaming::upload::<i64>(0) {
        total = total.saturating_add(number?);
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
