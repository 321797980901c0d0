//! The notify hub: `registerClient(id)`, then `notifyClient(id, status)` messages that connection.

use switchboard_guest::{Context, HostError, Hub, HubError, Methods, args::Integer, clients, kv};

/// How long a registration lasts; registering again renews it, or moves it to a new connection.
pub const TTL: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

switchboard_guest::hub_enum! {
    /// The outcome `notifyClient` reports, by name (any case) or number, as .NET clients send it.
    enum Status { Confirmed, Failed }
}

/// The hub: a registration is a key in the tenant's key-value store, which every node shares.
pub struct Notify;

impl Hub for Notify {
    fn methods(m: &mut Methods) {
        m.method("registerClient", register_client);
        m.method("notifyClient", notify_client);
    }
}

switchboard_guest::export_hub!(Notify);

fn register_client(ctx: &Context, (id,): (Integer,)) -> Result<(), HostError> {
    kv::set_with_ttl(&format!("notify:client:{id}"), ctx.connection_id(), TTL)
}

fn notify_client(_: &Context, (id, status): (Integer, Status)) -> Result<(), HubError> {
    let connection = kv::get(&format!("notify:client:{id}"))?.ok_or("Unable to find connection")?;
    let text = match status {
        Status::Confirmed => "Here's the message for confirmation",
        Status::Failed => "Here's the message for failure",
    };
    Ok(clients::connection(&connection).send("addMessage", (text,))?)
}

#[cfg(test)]
mod tests;
