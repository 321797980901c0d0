//! The caller's connection: the request that opened it (query string and
//! headers, never credentials) and its items, which persist across the
//! connection's invocations like SignalR's `Context.Items`.
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
