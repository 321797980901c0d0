//! The tenant's key-value store: memory on one node, JetStream KV in a
//! cluster, so a value set on one node is read on another. Keys are scoped by
//! the host to the tenant; values are strings (store JSON for structure).
//!
//! ```
//! use std::time::Duration;
//! use switchboard_guest::{Context, HubError, kv};
//!
//! fn remember(ctx: &Context, (id,): (i64,)) -> Result<(), HubError> {
//!     let day = Duration::from_secs(24 * 60 * 60);
//!     kv::set_with_ttl(&format!("client:{id}"), ctx.connection_id(), day)?;
//!     Ok(())
//! }
//! ```

use std::time::Duration;

use crate::HostError;
use crate::error::host;
use crate::host::kv as wit;

/// The value of `key`, or `None` when it is absent or expired.
pub fn get(key: &str) -> Result<Option<String>, HostError> {
    wit::get(key).map_err(host("kv.get"))
}

/// Sets `key` to `value`, with no expiry.
pub fn set(key: &str, value: &str) -> Result<(), HostError> {
    wit::set(key, value, None).map_err(host("kv.set"))
}

/// Sets `key` to `value`; the entry expires `ttl` from now (millisecond
/// precision; the host may enforce a minimum or maximum).
pub fn set_with_ttl(key: &str, value: &str, ttl: Duration) -> Result<(), HostError> {
    wit::set(key, value, Some(millis(ttl))).map_err(host("kv.set"))
}

/// Removes `key`; removing an absent key is not an error.
pub fn delete(key: &str) -> Result<(), HostError> {
    wit::delete(key).map_err(host("kv.delete"))
}

/// Sets `key` to `value` only if its current value is `expected` (`None`:
/// only if it is absent), atomically across the cluster. Returns whether the
/// value was set.
pub fn compare_and_set(key: &str, expected: Option<&str>, value: &str) -> Result<bool, HostError> {
    wit::compare_and_set(key, expected, value, None).map_err(host("kv.compare-and-set"))
}

/// [`compare_and_set`], and the new entry expires `ttl` from now.
pub fn compare_and_set_with_ttl(
    key: &str,
    expected: Option<&str>,
    value: &str,
    ttl: Duration,
) -> Result<bool, HostError> {
    wit::compare_and_set(key, expected, value, Some(millis(ttl)))
        .map_err(host("kv.compare-and-set"))
}

/// A TTL in whole milliseconds, saturating (a TTL of 584 million years is
/// as good as none).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}
