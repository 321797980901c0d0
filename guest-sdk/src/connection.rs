//! The caller's connection: its transport, the request that opened it (query
//! string, the headers and cookies its tenant lets plugins see, never
//! credentials) and its items, which persist across the connection's
//! invocations like SignalR's `Context.Items`.
//!
//! ```
//! use switchboard_guest::{Context, HubError, connection};
//!
//! fn count_calls(_: &Context, (): ()) -> Result<u64, HubError> {
//!     let calls = connection::item("calls").and_then(|v| v.parse().ok()).unwrap_or(0) + 1;
//!     connection::set_item("calls", &calls.to_string())?;
//!     Ok(calls)
//! }
//! ```
//!
//! A call no connection made (a backend invoking a method) sees no request
//! and cannot set items.

use crate::HostError;
use crate::error::host;
use crate::host::connection as wit;

/// Query parameters of the request that opened the connection, in order.
pub fn query() -> Vec<(String, String)> {
    wit::query()
}

/// The first query parameter named `name`.
pub fn query_param(name: &str) -> Option<String> {
    wit::query()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A header of that request; names match case-insensitively.
pub fn header(name: &str) -> Option<String> {
    wit::header(name)
}

/// A cookie of that request, by exact name. Plugins see only the cookies
/// their tenant lists in `plugin_cookies` (none by default).
pub fn cookie(name: &str) -> Option<String> {
    wit::cookie(name)
}

/// The transport that carries the connection; none for a call no connection
/// made.
pub fn transport() -> Option<Transport> {
    wit::transport().and_then(|name| Transport::from_name(&name))
}

/// A SignalR transport, as ASP.NET names it (`HttpTransportType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// `WebSockets`.
    WebSockets,
    /// `ServerSentEvents`.
    ServerSentEvents,
    /// `LongPolling`.
    LongPolling,
}

impl Transport {
    /// ASP.NET's name: `"WebSockets"`, `"ServerSentEvents"` or `"LongPolling"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSockets => "WebSockets",
            Transport::ServerSentEvents => "ServerSentEvents",
            Transport::LongPolling => "LongPolling",
        }
    }

    /// The transport of that name (as [`Transport::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<Transport> {
        [
            Transport::WebSockets,
            Transport::ServerSentEvents,
            Transport::LongPolling,
        ]
        .into_iter()
        .find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An item of the connection.
pub fn item(key: &str) -> Option<String> {
    wit::get_item(key)
}

/// Sets an item of the connection.
pub fn set_item(key: &str, value: &str) -> Result<(), HostError> {
    wit::set_item(key, Some(value)).map_err(host("connection.set-item"))
}

/// Removes an item of the connection.
pub fn remove_item(key: &str) -> Result<(), HostError> {
    wit::set_item(key, None).map_err(host("connection.set-item"))
}
