//! Tenants: who may connect (keys, anonymous access), their limits, and their
//! key-value store. Everything a plugin reaches is scoped by its tenant.

pub mod auth;
pub mod kv;

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, Limits, TenantConfig};

pub use auth::{AuthError, Identity};
pub use kv::KvStore;

/// Tenant and hub names: short, lowercase, and safe inside a URL, a NATS
/// subject or a file name without encoding.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// One tenant as the node serves it.
#[derive(Debug)]
pub struct Tenant {
    pub name: Arc<str>,
    pub config: TenantConfig,
    pub kv: KvStore,
}

impl Tenant {
    pub fn limits(&self) -> Limits {
        self.config.limits
    }

    /// Who a request is, from its bearer token if it has one.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        auth::authenticate(&self.config, token)
    }
}

/// All tenants of the node, by name.
#[derive(Debug, Default)]
pub struct Tenants {
    by_name: HashMap<String, Arc<Tenant>>,
}

impl Tenants {
    pub fn from_config(config: &Config) -> Tenants {
        Tenants::from_config_with(config, |_| KvStore::memory())
    }

    /// Like `from_config`, with each tenant's key-value store made by `kv`.
    pub fn from_config_with(config: &Config, mut kv: impl FnMut(&str) -> KvStore) -> Tenants {
        let by_name = config
            .tenants
            .iter()
            .map(|(name, tc)| {
                let tenant = Tenant {
                    name: Arc::from(name.as_str()),
                    config: tc.clone(),
                    kv: kv(name),
                };
                (name.clone(), Arc::new(tenant))
            })
            .collect();
        Tenants { by_name }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
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
