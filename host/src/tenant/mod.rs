//! Tenants: who may connect (keys, anonymous access), their limits, and their
//! key-value store. Everything a plugin reaches is scoped by its tenant.
//!
//! Tenants come from the config file and from the admin API (created and
//! deleted while the node runs); their signing keys and API keys rotate in
//! place, so a [`Tenant`] lives as long as the tenant does.

pub mod auth;
pub mod kv;
pub mod limits;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::RwLock;

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

/// The secrets of a tenant that rotate while it serves: any key of a list
/// is accepted, so a key is replaced by adding the new one first and
/// removing the old one once every issuer uses the new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantKeys {
    /// HS256 secrets that sign client tokens.
    pub signing_keys: Vec<String>,
    /// Secrets of the REST API (`X-Api-Key`, or HS256 API tokens).
    pub api_keys: Vec<String>,
}

/// One tenant as the node serves it.
#[derive(Debug)]
pub struct Tenant {
    pub name: Arc<str>,
    /// The tenant's settings. Its `signing_keys` and `api_keys` are empty:
    /// the keys in force are [`Tenant::keys`], which rotate.
    pub config: TenantConfig,
    pub kv: KvStore,
    keys: ArcSwap<TenantKeys>,
}

impl Tenant {
    /// A tenant with the keys of `config` (moved out of it into [`Tenant::keys`]).
    pub fn new(name: &str, mut config: TenantConfig, kv: KvStore) -> Tenant {
        let keys = TenantKeys {
            signing_keys: std::mem::take(&mut config.signing_keys),
            api_keys: std::mem::take(&mut config.api_keys),
        };
        Tenant {
            name: Arc::from(name),
            config,
            kv,
            keys: ArcSwap::from_pointee(keys),
        }
    }

    pub fn limits(&self) -> Limits {
        self.config.limits
    }

    /// The keys in force now.
    pub fn keys(&self) -> Arc<TenantKeys> {
        self.keys.load_full()
    }

    /// The tenant's settings with the keys in force, as the config file would hold them.
    pub fn current_config(&self) -> TenantConfig {
        let keys = self.keys();
        let mut config = self.config.clone();
        config.signing_keys = keys.signing_keys.clone();
        config.api_keys = keys.api_keys.clone();
        config
    }

    /// Who a request is, from its bearer token if it has one.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let keys = self.keys.load();
        auth::authenticate_with_keys(&self.config, &keys.signing_keys, token)
    }
}

/// Why a change to the tenants was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TenantError {
    #[error("no tenant '{0}'")]
    Unknown(String),
    #[error("tenant '{0}' already exists")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
}

/// Makes a tenant's key-value store (memory alone, JetStream in a cluster).
type KvFactory = Box<dyn Fn(&str) -> KvStore + Send + Sync>;

/// All tenants of the node, by name; tenants come and go while it runs.
pub struct Tenants {
    by_name: RwLock<HashMap<String, Arc<Tenant>>>,
    kv: KvFactory,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants")
            .field("names", &self.names())
            .finish_non_exhaustive()
    }
}

impl Default for Tenants {
    fn default() -> Self {
        Tenants {
            by_name: RwLock::default(),
            kv: Box::new(|_| KvStore::memory()),
        }
    }
}

impl Tenants {
    pub fn from_config(config: &Config) -> Tenants {
        Tenants::from_config_with(config, |_| KvStore::memory())
    }

    /// Like `from_config`, with each tenant's key-value store made by `kv`
    /// (also for tenants created later).
    pub fn from_config_with(
        config: &Config,
        kv: impl Fn(&str) -> KvStore + Send + Sync + 'static,
    ) -> Tenants {
        let by_name = config
            .tenants
            .iter()
            .map(|(name, tc)| {
                (
                    name.clone(),
                    Arc::new(Tenant::new(name, tc.clone(), kv(name))),
                )
            })
            .collect();
        Tenants {
            by_name: RwLock::new(by_name),
            kv: Box::new(kv),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Tenant>> {
        self.by_name.read().get(name).cloned()
    }

    /// Every tenant's name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Adds a tenant. Its settings are checked as the config file's are, and
    /// against every other tenant: no two tenants may share a key.
    pub fn create(&self, name: &str, config: TenantConfig) -> Result<Arc<Tenant>, TenantError> {
        Config::validate_tenant(name, &config).map_err(|e| TenantError::Invalid(e.to_string()))?;
        let mut by_name = self.by_name.write();
        if by_name.contains_key(name) {
            return Err(TenantError::Exists(name.to_owned()));
        }
        let mut all = current_configs(&by_name);
        all.insert(name.to_owned(), config.clone());
        auth::check_tenants_apart(&all).map_err(TenantError::Invalid)?;
        let tenant = Arc::new(Tenant::new(name, config, (self.kv)(name)));
        by_name.insert(name.to_owned(), tenant.clone());
        Ok(tenant)
    }

    /// Removes a tenant; its live connections are the caller's to close.
    pub fn remove(&self, name: &str) -> Result<Arc<Tenant>, TenantError> {
        self.by_name
            .write()
            .remove(name)
            .ok_or_else(|| TenantError::Unknown(name.to_owned()))
    }

    /// Changes a tenant's keys with `change`, then checks the result as a
    /// config file would be checked; refused changes leave the keys as they were.
    pub fn update_keys(
        &self,
        name: &str,
        change: impl FnOnce(&mut TenantKeys) -> Result<(), String>,
    ) -> Result<Arc<TenantKeys>, TenantError> {
        // The write lock orders concurrent rotations and creations.
        let by_name = self.by_name.write();
        let tenant = by_name
            .get(name)
            .ok_or_else(|| TenantError::Unknown(name.to_owned()))?;
        let mut keys = TenantKeys::clone(&tenant.keys());
        change(&mut keys).map_err(TenantError::Invalid)?;
        let mut config = tenant.current_config();
        config.signing_keys = keys.signing_keys.clone();
        config.api_keys = keys.api_keys.clone();
        Config::validate_tenant(name, &config).map_err(|e| TenantError::Invalid(e.to_string()))?;
        let mut all = current_configs(&by_name);
        all.insert(name.to_owned(), config);
        auth::check_tenants_apart(&all).map_err(TenantError::Invalid)?;
        let keys = Arc::new(keys);
        tenant.keys.store(keys.clone());
        Ok(keys)
    }
}

fn current_configs(by_name: &HashMap<String, Arc<Tenant>>) -> BTreeMap<String, TenantConfig> {
    by_name
        .iter()
        .map(|(name, t)| (name.clone(), t.current_config()))
        .collect()
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

    fn tenant_config(signing: &[&str], api: &[&str]) -> TenantConfig {
        let mut config = Config::builtin().tenants[crate::config::DEMO_TENANT].clone();
        config.allow_anonymous = false;
        config.signing_keys = signing.iter().map(|k| k.to_string()).collect();
        config.api_keys = api.iter().map(|k| k.to_string()).collect();
        config
    }

    #[test]
    fn create_checks_names_keys_and_neighbours() {
        let tenants = Tenants::from_config(&Config::builtin());
        let acme = tenants
            .create(
                "acme",
                tenant_config(&["acme-sign"], &["acme-api-key-0123456789"]),
            )
            .expect("created");
        assert_eq!(acme.keys().signing_keys, ["acme-sign"]);
        assert!(acme.config.signing_keys.is_empty(), "keys live in keys()");
        assert_eq!(tenants.names(), ["acme", "demo"]);
        assert!(matches!(
            tenants.create("acme", tenant_config(&["x"], &[])),
            Err(TenantError::Exists(_))
        ));
        assert!(matches!(
            tenants.create("Bad.Name", tenant_config(&["y"], &[])),
            Err(TenantError::Invalid(_))
        ));
        // Another tenant's key would let one token into both.
        let err = tenants
            .create("other", tenant_config(&["acme-sign"], &[]))
            .expect_err("shared key");
        assert!(err.to_string().contains("share a signing key"), "{err}");
        assert!(matches!(
            tenants.create("nokeys", tenant_config(&[], &[])),
            Err(TenantError::Invalid(_))
        ));
        tenants.remove("acme").expect("removed");
        assert!(tenants.get("acme").is_none());
        assert!(matches!(
            tenants.remove("acme"),
            Err(TenantError::Unknown(_))
        ));
    }

    #[test]
    fn keys_rotate_in_place_with_two_valid_at_once() {
        let tenants = Tenants::from_config(&Config::builtin());
        let acme = tenants
            .create("acme", tenant_config(&["old-key"], &[]))
            .expect("created");
        let token = |key: &str| {
            auth::mint_token(
                key,
                "u",
                std::time::Duration::from_secs(60),
                Default::default(),
            )
            .expect("mint")
        };
        tenants
            .update_keys("acme", |k| {
                k.signing_keys.push("new-key".into());
                Ok(())
            })
            .expect("added");
        // The same Tenant (held by live connections) sees the new keys.
        assert!(acme.authenticate(Some(&token("old-key"))).is_ok());
        assert!(acme.authenticate(Some(&token("new-key"))).is_ok());
        tenants
            .update_keys("acme", |k| {
                k.signing_keys.retain(|x| x != "old-key");
                Ok(())
            })
            .expect("removed");
        assert!(acme.authenticate(Some(&token("old-key"))).is_err());
        assert!(acme.authenticate(Some(&token("new-key"))).is_ok());
        // A change that leaves no way in is refused, and changes nothing.
        let err = tenants
            .update_keys("acme", |k| {
                k.signing_keys.clear();
                Ok(())
            })
            .expect_err("no keys left");
        assert!(matches!(err, TenantError::Invalid(_)));
        assert_eq!(acme.keys().signing_keys, ["new-key"]);
        // A key of another tenant is refused.
        let err = tenants
            .update_keys("acme", |k| {
                k.api_keys.push(crate::config::DEMO_API_KEY.into());
                Ok(())
            })
            .expect_err("shared");
        assert!(err.to_string().contains("share an API key"), "{err}");
    }
}
