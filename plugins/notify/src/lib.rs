//! The notify hub: the motivating problem of Switchboard.
//!
//! A client calls `registerClient(specificIdentifier)`; later a backend (or
//! another client), on any node, calls `notifyClient(specificIdentifier,
//! status)` and exactly that client receives `addMessage(text)`.
//!
//! The identifier maps to the registering connection in the tenant's
//! key-value store, shared by every node, so register and notify may land
//! on different servers. Registrations expire after [`REGISTRATION_TTL`];
//! registering the same identifier again moves it to the new connection.

use std::time::Duration;

use switchboard_guest::{Context, Hub, HubError, Methods, clients, kv};

mod identifier;
mod status;

use identifier::SpecificIdentifier;
use status::Status;

/// How long a registration lasts without being renewed.
pub const REGISTRATION_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The error text when nobody registered the identifier (or it expired).
/// Part of the public contract: clients match on it.
pub const NOT_FOUND: &str = "Unable to find connection";

/// The notify hub.
pub struct Notify;

impl Hub for Notify {
    fn methods(m: &mut Methods) {
        m.method("registerClient", register_client);
        m.method("notifyClient", notify_client);
    }
}

switchboard_guest::export_hub!(Notify);

/// `registerClient(specificIdentifier)`: this connection now receives the
/// identifier's notifications.
fn register_client(ctx: &Context, (id,): (SpecificIdentifier,)) -> Result<(), HubError> {
    kv::set_with_ttl(&id.key(), ctx.connection_id(), REGISTRATION_TTL)?;
    Ok(())
}

/// `notifyClient(specificIdentifier, status)`: sends `addMessage(text)` to
/// the connection registered for the identifier, and to no one else. An
/// unknown status fails while decoding the arguments, before any host call.
fn notify_client(_: &Context, (id, status): (SpecificIdentifier, Status)) -> Result<(), HubError> {
    let connection = kv::get(&id.key())?.ok_or(NOT_FOUND)?;
    clients::connection(&connection).send("addMessage", (status.message(),))?;
    Ok(())
}

#[cfg(test)]
mod tests;
