//! Addresses: which tenant's hub a connection, user or group name lives in,
//! where a send goes within it, and the invocation it carries. Plain data
//! with no I/O, so every layer from the backplane up can name them.

pub mod client;
mod invocation;

use std::sync::Arc;

pub use invocation::OutboundInvocation;

/// Longest user or group name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Tenant and hub names: short, lowercase, and safe inside a URL, a NATS
/// subject or a file name without encoding.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A tenant's hub: the scope of every connection, user and group name.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct HubKey {
    /// The tenant's name (see [`is_valid_name`]).
    pub tenant: Arc<str>,
    /// The hub's name within the tenant.
    pub hub: Arc<str>,
}

impl HubKey {
    /// The hub `hub` of tenant `tenant`; the names are not checked.
    pub fn new(tenant: &str, hub: &str) -> HubKey {
        HubKey {
            tenant: Arc::from(tenant),
            hub: Arc::from(hub),
        }
    }
}

impl std::fmt::Display for HubKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.hub)
    }
}

/// A tenant or hub that a request names and this node does not have: the
/// same 404 (`UnknownTenant`, `UnknownHub`) for the REST API and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unknown {
    /// No tenant of that name.
    #[error("no tenant '{0}'")]
    Tenant(String),
    /// The tenant has no plugin deployed for this hub.
    #[error("tenant '{tenant}' has no hub '{hub}'")]
    Hub {
        /// The tenant's name.
        tenant: String,
        /// The hub as named in the request.
        hub: String,
    },
}

impl Unknown {
    /// `hub` is not deployed.
    pub fn hub(hub: &HubKey) -> Unknown {
        Unknown::Hub {
            tenant: hub.tenant.to_string(),
            hub: hub.hub.to_string(),
        }
    }

    /// The stable name of the error, for programs (an API error body's `code`).
    pub fn code(&self) -> &'static str {
        match self {
            Unknown::Tenant(_) => "UnknownTenant",
            Unknown::Hub { .. } => "UnknownHub",
        }
    }
}

/// Where a send goes, within one hub.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Target {
    /// Every connection of the hub, except these.
    All {
        /// Ids of connections left out.
        except: Vec<String>,
    },
    /// These connections.
    Connections(Vec<String>),
    /// Every connection of each of these users, on every node.
    Users(Vec<String>),
    /// Every member of these groups, except these connections.
    Groups {
        /// Names of the groups; a member of several gets the send once.
        groups: Vec<String>,
        /// Ids of connections left out.
        except: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name("demo"));
        assert!(is_valid_name("acme-2_b"));
        for bad in ["", "Demo", "a.b", "a*", "a>", "a b", "ü", &"x".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }
}
