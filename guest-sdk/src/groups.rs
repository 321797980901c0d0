//! Group membership. A connection's groups end with the connection, and
//! group names are scoped by the host to the tenant's hub.

use crate::HostError;
use crate::error::host;
use crate::host::groups as wit;

/// Adds a connection (usually [`crate::Context::connection_id`]) to `group`.
pub fn add(connection_id: &str, group: &str) -> Result<(), HostError> {
    wit::add(connection_id, group).map_err(host("groups.add"))
}

/// Removes a connection from `group`; removing a non-member is not an error.
pub fn remove(connection_id: &str, group: &str) -> Result<(), HostError> {
    wit::remove(connection_id, group).map_err(host("groups.remove"))
}
