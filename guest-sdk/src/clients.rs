//! Sending to clients: pick recipients, then `send` (or `invoke` on one
//! connection for a client result).
//!
//! ```
//! use switchboard_guest::{Context, HubError, clients};
//!
//! fn shout(ctx: &Context, (text,): (String,)) -> Result<(), HubError> {
//!     clients::others(ctx).send("addMessage", (&text,))?;
//!     clients::caller(ctx).send("sent", ())?;
//!     clients::group("admins").except([ctx.connection_id()]).send("audit", (ctx.connection_id(), &text))?;
//!     Ok(())
//! }
//! ```
//!
//! Arguments are any `Serialize` value that encodes as a JSON array, which
//! SignalR spreads over the client handler's parameters: a tuple
//! (`("text",)`, `(name, message)`), an array, a `Vec`, or `json!([..])`;
//! `()` sends none. Every name is scoped by the host to the caller's tenant
//! and hub. Delivery is at most once, in order per sender and target.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::types::{GroupTarget, Target};
use crate::codec::encode_args;
use crate::error::host;
use crate::host::clients as wit;
use crate::{Context, HostError};

/// Every connection of the hub.
pub fn all() -> Broadcast {
    Broadcast::new(None)
}

/// Every connection of the hub except these.
pub fn all_except<I>(connection_ids: I) -> Broadcast
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    all().except(connection_ids)
}

/// Every connection of the hub except the caller's.
pub fn others(ctx: &Context) -> Broadcast {
    all().except([ctx.connection_id()])
}

/// Every member of `group`.
pub fn group(name: &str) -> Broadcast {
    Broadcast::new(Some(vec![name.to_owned()]))
}

/// Every member of any of these groups (each connection once).
pub fn groups<I>(names: I) -> Broadcast
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    Broadcast::new(Some(strings(names)))
}

/// Every member of `group` except the caller.
pub fn others_in_group(ctx: &Context, name: &str) -> Broadcast {
    group(name).except([ctx.connection_id()])
}

/// The caller's own connection.
pub fn caller(ctx: &Context) -> Connection {
    connection(ctx.connection_id())
}

/// One connection, by id.
pub fn connection(connection_id: &str) -> Connection {
    Connection {
        id: connection_id.to_owned(),
    }
}

/// These connections.
pub fn connections<I>(connection_ids: I) -> Recipients
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    Recipients {
        target: Target::Connections(strings(connection_ids)),
    }
}

/// Every connection of the user (as in the token's `sub`), on every node.
pub fn user(user_id: &str) -> Recipients {
    users([user_id])
}

/// Every connection of each of these users, on every node.
pub fn users<I>(user_ids: I) -> Recipients
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    Recipients {
        target: Target::Users(strings(user_ids)),
    }
}

/// The whole hub or some of its groups, minus an except-list of connections.
#[derive(Debug, Clone)]
pub struct Broadcast {
    /// `None`: every connection of the hub; otherwise these groups' members.
    groups: Option<Vec<String>>,
    /// Connections that must not receive the message.
    except: Vec<String>,
}

impl Broadcast {
    fn new(groups: Option<Vec<String>>) -> Self {
        Self {
            groups,
            except: Vec::new(),
        }
    }

    /// Leaves these connections out (in addition to any already left out).
    pub fn except<I>(mut self, connection_ids: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.except.extend(strings(connection_ids));
        self
    }

    /// Invokes `method` with `args` on every recipient.
    pub fn send(&self, method: &str, args: impl Serialize) -> Result<(), HostError> {
        send(&self.target(), method, args)
    }

    /// The WIT target this broadcast stands for.
    fn target(&self) -> Target {
        match &self.groups {
            None => Target::All(self.except.clone()),
            Some(groups) => Target::Groups(GroupTarget {
                groups: groups.clone(),
                except: self.except.clone(),
            }),
        }
    }
}

/// Listed connections or users.
#[derive(Debug, Clone)]
pub struct Recipients {
    target: Target,
}

impl Recipients {
    /// Invokes `method` with `args` on every recipient.
    pub fn send(&self, method: &str, args: impl Serialize) -> Result<(), HostError> {
        send(&self.target, method, args)
    }
}

/// One connection: it can be sent to, or asked for a result.
#[derive(Debug, Clone)]
pub struct Connection {
    id: String,
}

impl Connection {
    /// Invokes `method` with `args` on this connection.
    pub fn send(&self, method: &str, args: impl Serialize) -> Result<(), HostError> {
        send(&Target::Connections(vec![self.id.clone()]), method, args)
    }

    /// Invokes `method` with `args` on this connection and waits up to
    /// `timeout` for the value its handler returns (a SignalR client result),
    /// decoded into `R` (`()` for a handler that returns nothing).
    ///
    /// Fails if the client has no handler, throws, disconnects, or does not
    /// answer in time. A timeout beyond `u32::MAX` milliseconds is capped.
    pub fn invoke<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
        timeout: Duration,
    ) -> Result<R, HostError> {
        const CALL: &str = "clients.invoke";
        let args = encode_args(&args).map_err(host(CALL))?;
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let json = wit::invoke(&self.id, method, &args, timeout_ms).map_err(host(CALL))?;
        serde_json::from_str(&json)
            .map_err(|e| HostError::new(CALL, format!("invalid result from the client: {e}")))
    }
}

fn send(target: &Target, method: &str, args: impl Serialize) -> Result<(), HostError> {
    const CALL: &str = "clients.send";
    let args = encode_args(&args).map_err(host(CALL))?;
    wit::send(target, method, &args).map_err(host(CALL))
}

fn strings<I>(items: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    items.into_iter().map(|s| s.as_ref().to_owned()).collect()
}

#[cfg(test)]
mod tests;
