//! Tenants: who may connect (keys, anonymous access), their limits, and their
//! key-value store. Everything a plugin reaches is scoped by its tenant.
//!
//! Tenants come from the config file and from the admin API (created and
//! deleted while the node runs); their signing keys and API keys rotate in
//! place, so a [`Tenant`] lives as long as the tenant does. In a cluster,
//! tenants of the admin API are shared by every node through [`cluster`].

pub mod auth;
pub mod cluster;
pub mod jwks;
pub mod limits;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::RwLock;

use crate::backplane::kv::KvStore;
use crate::config::{Config, Limits, TenantConfig};
use auth::VerifyKeys;

pub use auth::{AuthError, Identity};

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

/// Where a tenant comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This node's config file: the node's own, never shared with a cluster.
    File,
    /// The admin API: in a cluster, kept in the cluster's tenant store.
    Admin,
}

/// One tenant as the node serves it.
#[derive(Debug)]
pub struct Tenant {
    /// The tenant's name: its key in `[tenants]` or the admin API, and the `{tenant}` of its URLs.
    pub name: Arc<str>,
    /// The tenant's settings. Its `signing_keys` and `api_keys` are empty:
    /// the keys in force are [`Tenant::keys`], which rotate.
    pub config: TenantConfig,
    /// Shared with the tenant's replacement when a reload changes its settings.
    pub kv: Arc<KvStore>,
    /// Whether the config file or the admin API made it.
    pub origin: Origin,
    keys: ArcSwap<TenantKeys>,
    /// The public keys that verify its clients' tokens, parsed from its key
    /// files, and its `jwks_url`'s.
    public: VerifyKeys,
    /// The revision of the cluster's tenant store entry these settings
    /// come from (0: none), so an older entry never overwrites a newer one.
    revision: AtomicU64,
}

impl Tenant {
    /// A tenant with the keys of `config` (moved out of it into [`Tenant::keys`]).
    pub fn new(name: &str, config: TenantConfig, kv: KvStore) -> Tenant {
        Tenant::with_origin(name, config, kv, Origin::File)
    }

    fn with_origin(name: &str, config: TenantConfig, kv: KvStore, origin: Origin) -> Tenant {
        Tenant::sharing(name, config, Arc::new(kv), origin)
    }

    fn sharing(name: &str, mut config: TenantConfig, kv: Arc<KvStore>, origin: Origin) -> Tenant {
        // Every way a tenant comes in checks its keys first (the config's
        // load, a reload, the admin API: `check_tenants_apart`); were one to
        // miss, the tenant accepts no public-key token rather than an unchecked one.
        let public = VerifyKeys::of(&config).unwrap_or_else(|error| {
            tracing::error!(tenant = name, %error, "the tenant's public keys do not load");
            VerifyKeys::default()
        });
        if let Some(remote) = public.remote() {
            remote.warm();
        }
        let keys = TenantKeys {
            signing_keys: std::mem::take(&mut config.signing_keys),
            api_keys: std::mem::take(&mut config.api_keys),
        };
        Tenant {
            name: Arc::from(name),
            config,
            kv,
            origin,
            keys: ArcSwap::from_pointee(keys),
            public,
            revision: AtomicU64::new(0),
        }
    }

    /// The public keys that verify its clients' tokens.
    pub fn public_keys(&self) -> &VerifyKeys {
        &self.public
    }

    /// The cluster store revision the tenant's settings come from (0: none).
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Records that the settings are those of store revision `revision`
    /// (never going back to an older one).
    pub fn seen_revision(&self, revision: u64) {
        self.revision.fetch_max(revision, Ordering::AcqRel);
    }

    /// Sets the revision as is (to undo a [`Tenant::seen_revision`] of a change that failed).
    pub fn reset_revision(&self, revision: u64) {
        self.revision.store(revision, Ordering::Release);
    }

    /// The tenant's limits (`[tenants.NAME.limits]`).
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

    /// Whether stateful-reconnect connections of `hub` are durable (resume
    /// on any node), given the cluster's `[nats] durable_resume`: on unless
    /// the tenant lists the hub in `durable_resume_except`.
    pub fn durable_resume(&self, hub: &str, cluster_on: bool) -> bool {
        cluster_on && !self.config.durable_resume_except.iter().any(|h| h == hub)
    }

    /// Who a request is, from its bearer token if it has one (fetching the
    /// tenant's JWKS URL again when the token names a key it lacks).
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let keys = self.keys.load_full();
        auth::authenticate_fetching(&self.config, &self.public, &keys.signing_keys, token).await
    }
}

/// Why a change to the tenants was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TenantError {
    /// No tenant of that name.
    #[error("no tenant '{0}'")]
    Unknown(String),
    /// A tenant of that name exists already.
    #[error("tenant '{0}' already exists")]
    Exists(String),
    /// The settings or keys do not validate, or would let a token of one tenant open another.
    #[error("{0}")]
    Invalid(String),
}

/// What applying an entry of the cluster's tenant store did.
#[derive(Debug)]
pub enum Applied {
    /// The tenant is new here.
    Created(Arc<Tenant>),
    /// Only its keys changed (in place: open connections keep the tenant).
    Keys,
    /// Its other settings changed: a new [`Tenant`] serves new connections.
    Replaced,
    /// Nothing changed (this node made the change, or saw it already).
    Unchanged,
    /// The entry is older than the settings in force.
    Stale,
    /// A tenant of this node's config file has the name; it stays as it is.
    FileTenant,
}

/// What [`Tenants::reload_file`] changed, by tenant name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Tenants the file has now and did not have before.
    pub added: Vec<String>,
    /// Tenants the file no longer has.
    pub removed: Vec<String>,
    /// Only the keys changed, in place.
    pub keys: Vec<String>,
    /// Other settings changed: new connections get the new ones.
    pub replaced: Vec<String>,
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
    /// The config file's tenants, each with a key-value store in memory.
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

    /// The tenant `name`, if the node serves it.
    pub fn get(&self, name: &str) -> Option<Arc<Tenant>> {
        self.by_name.read().get(name).cloned()
    }

    /// Every tenant's name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Adds a tenant (of the admin API). Its settings are checked as the
    /// config file's are, and against every other tenant: no two tenants may share a key.
    pub fn create(&self, name: &str, config: TenantConfig) -> Result<Arc<Tenant>, TenantError> {
        Config::validate_tenant(name, &config).map_err(|e| TenantError::Invalid(e.to_string()))?;
        let mut by_name = self.by_name.write();
        if by_name.contains_key(name) {
            return Err(TenantError::Exists(name.to_owned()));
        }
        let mut all = current_configs(&by_name);
        all.insert(name.to_owned(), config.clone());
        auth::check_tenants_apart(&all).map_err(TenantError::Invalid)?;
        let tenant = Arc::new(Tenant::with_origin(
            name,
            config,
            (self.kv)(name),
            Origin::Admin,
        ));
        by_name.insert(name.to_owned(), tenant.clone());
        Ok(tenant)
    }

    /// Applies revision `revision` of a tenant of the cluster's store: creates
    /// the tenant, or changes its keys in place, or replaces it when other
    /// settings differ. Checked like [`Tenants::create`]; a refused entry
    /// changes nothing. Tenants of the config file are left as they are.
    pub fn apply_stored(
        &self,
        name: &str,
        config: TenantConfig,
        revision: u64,
    ) -> Result<Applied, TenantError> {
        Config::validate_tenant(name, &config).map_err(|e| TenantError::Invalid(e.to_string()))?;
        let mut by_name = self.by_name.write();
        let existing = by_name.get(name).cloned();
        if let Some(tenant) = &existing {
            if tenant.origin == Origin::File {
                return Ok(Applied::FileTenant);
            }
            if revision <= tenant.revision() {
                return Ok(Applied::Stale);
            }
        }
        let mut all = current_configs(&by_name);
        all.insert(name.to_owned(), config.clone());
        auth::check_tenants_apart(&all).map_err(TenantError::Invalid)?;
        // An admin-API tenant at the store's revision.
        let stored = |config: TenantConfig| {
            let tenant = Arc::new(Tenant::with_origin(
                name,
                config,
                (self.kv)(name),
                Origin::Admin,
            ));
            tenant.seen_revision(revision);
            tenant
        };
        let Some(tenant) = existing else {
            let tenant = stored(config);
            by_name.insert(name.to_owned(), tenant.clone());
            return Ok(Applied::Created(tenant));
        };
        tenant.seen_revision(revision);
        if settings_json(&tenant.current_config()) == settings_json(&config) {
            return Ok(Applied::Unchanged);
        }
        let keys = TenantKeys {
            signing_keys: config.signing_keys.clone(),
            api_keys: config.api_keys.clone(),
        };
        let mut without_keys = config.clone();
        without_keys.signing_keys = tenant.config.signing_keys.clone();
        without_keys.api_keys = tenant.config.api_keys.clone();
        if settings_json(&tenant.config) == settings_json(&without_keys) {
            tenant.keys.store(Arc::new(keys));
            return Ok(Applied::Keys);
        }
        by_name.insert(name.to_owned(), stored(config));
        Ok(Applied::Replaced)
    }

    /// Makes the tenants of the config file those of `configs` (a reloaded
    /// file): new ones are added, those no longer in it removed (their open
    /// connections stay until they end), a tenant whose keys alone changed
    /// gets them in place, and one whose other settings changed is replaced
    /// (open connections keep the old settings; its key-value store is kept).
    /// Tenants of the admin API stay, unless the file now names one. Checked
    /// first as a whole (no two tenants share a key); refused, nothing changes.
    pub fn reload_file(
        &self,
        configs: &BTreeMap<String, TenantConfig>,
    ) -> Result<Reloaded, TenantError> {
        let mut by_name = self.by_name.write();
        let mut all: BTreeMap<String, TenantConfig> = by_name
            .iter()
            .filter(|(name, t)| t.origin == Origin::Admin && !configs.contains_key(*name))
            .map(|(name, t)| (name.clone(), t.current_config()))
            .collect();
        all.extend(configs.iter().map(|(n, c)| (n.clone(), c.clone())));
        auth::check_tenants_apart(&all).map_err(TenantError::Invalid)?;
        let mut done = Reloaded::default();
        let gone: Vec<String> = by_name
            .iter()
            .filter(|(name, t)| t.origin == Origin::File && !configs.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            by_name.remove(&name);
            done.removed.push(name);
        }
        for (name, config) in configs {
            let Some(tenant) = by_name.get(name).cloned() else {
                let tenant =
                    Tenant::with_origin(name, config.clone(), (self.kv)(name), Origin::File);
                by_name.insert(name.clone(), Arc::new(tenant));
                done.added.push(name.clone());
                continue;
            };
            // Keys read from files (public_keys, jwks_file) may have changed
            // behind the same paths: such a tenant is always replaced.
            let file_keys = !config.public_keys.is_empty() || config.jwks_file.is_some();
            let mut without_keys = config.clone();
            without_keys.signing_keys = Vec::new();
            without_keys.api_keys = Vec::new();
            if tenant.origin == Origin::File
                && !file_keys
                && settings_json(&tenant.config) == settings_json(&without_keys)
            {
                let keys = TenantKeys {
                    signing_keys: config.signing_keys.clone(),
                    api_keys: config.api_keys.clone(),
                };
                if *tenant.keys() != keys {
                    tenant.keys.store(Arc::new(keys));
                    done.keys.push(name.clone());
                }
                continue;
            }
            let replacement =
                Tenant::sharing(name, config.clone(), tenant.kv.clone(), Origin::File);
            by_name.insert(name.clone(), Arc::new(replacement));
            done.replaced.push(name.clone());
        }
        Ok(done)
    }

    /// Removes a tenant; its live connections are the caller's to close.
    pub fn remove(&self, name: &str) -> Result<Arc<Tenant>, TenantError> {
        self.by_name
            .write()
            .remove(name)
            .ok_or_else(|| TenantError::Unknown(name.to_owned()))
    }

    /// Removes the tenant `name` if it is `tenant` (and not a newer one of that name).
    pub fn remove_if_same(&self, name: &str, tenant: &Arc<Tenant>) -> bool {
        let mut by_name = self.by_name.write();
        if by_name.get(name).is_some_and(|t| Arc::ptr_eq(t, tenant)) {
            by_name.remove(name);
            true
        } else {
            false
        }
    }

    /// Removes a tenant of the admin API that revision `revision` of the
    /// cluster's store deleted, unless its settings in force are newer.
    pub fn remove_stored(&self, name: &str, revision: u64) -> Option<Arc<Tenant>> {
        let mut by_name = self.by_name.write();
        let tenant = by_name.get(name)?;
        if tenant.origin == Origin::File || revision <= tenant.revision() {
            return None;
        }
        by_name.remove(name)
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
        check_keys(&by_name, tenant, &keys)?;
        let keys = Arc::new(keys);
        tenant.keys.store(keys.clone());
        Ok(keys)
    }

    /// Checks `keys` as [`Tenants::update_keys`] would, without applying them.
    pub fn check_keys(&self, name: &str, keys: &TenantKeys) -> Result<(), TenantError> {
        let by_name = self.by_name.read();
        let tenant = by_name
            .get(name)
            .ok_or_else(|| TenantError::Unknown(name.to_owned()))?;
        check_keys(&by_name, tenant, keys)
    }
}

/// Checks a tenant's settings with `keys` as a config file would be checked.
fn check_keys(
    by_name: &HashMap<String, Arc<Tenant>>,
    tenant: &Tenant,
    keys: &TenantKeys,
) -> Result<(), TenantError> {
    let name = &*tenant.name;
    let mut config = tenant.current_config();
    config.signing_keys = keys.signing_keys.clone();
    config.api_keys = keys.api_keys.clone();
    Config::validate_tenant(name, &config).map_err(|e| TenantError::Invalid(e.to_string()))?;
    let mut all = current_configs(by_name);
    all.insert(name.to_owned(), config);
    auth::check_tenants_apart(&all).map_err(TenantError::Invalid)
}

/// A tenant's settings as JSON, to compare two of them.
fn settings_json(config: &TenantConfig) -> serde_json::Value {
    serde_json::to_value(config).unwrap_or_default()
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
    fn reload_rotates_keys_in_place_and_replaces_changed_tenants() {
        let configs = |entries: &[(&str, &[&str], usize)]| {
            entries
                .iter()
                .map(|(name, keys, connections)| {
                    let mut c = tenant_config(keys, &[]);
                    c.limits.connections = *connections;
                    ((*name).to_owned(), c)
                })
                .collect::<BTreeMap<_, _>>()
        };
        let mut config = Config::builtin();
        config.tenants = configs(&[("a", &["ka"], 5), ("b", &["kb"], 5), ("gone", &["kg"], 5)]);
        let tenants = Tenants::from_config(&config);
        let (a, b) = (tenants.get("a").expect("a"), tenants.get("b").expect("b"));
        let done = tenants
            .reload_file(&configs(&[
                ("a", &["ka2"], 5),
                ("b", &["kb"], 1),
                ("new", &["kn"], 5),
            ]))
            .expect("valid");
        assert_eq!(done.keys, ["a"]);
        assert_eq!(done.replaced, ["b"]);
        assert_eq!(
            (done.added.as_slice(), done.removed.as_slice()),
            (&["new".to_owned()][..], &["gone".to_owned()][..])
        );
        assert!(
            Arc::ptr_eq(&a, &tenants.get("a").expect("a")),
            "keys rotate in place"
        );
        assert_eq!(a.keys().signing_keys, ["ka2"]);
        let b2 = tenants.get("b").expect("b");
        assert_eq!((b.limits().connections, b2.limits().connections), (5, 1));
        assert!(Arc::ptr_eq(&b.kv, &b2.kv), "the key-value store is kept");
        // Two tenants sharing a key: refused, nothing changes.
        let clash = tenants.reload_file(&configs(&[("a", &["same"], 5), ("b", &["same"], 5)]));
        assert!(clash.is_err());
        assert_eq!(tenants.names(), ["a", "b", "new"]);
    }

    fn tenant_config(signing: &[&str], api: &[&str]) -> TenantConfig {
        let mut config = Config::builtin().tenants[crate::config::DEMO_TENANT].clone();
        config.allow_anonymous = false;
        config.allowed_origins = Vec::new();
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
    fn stored_tenants_apply_in_revision_order_and_leave_file_tenants_alone() {
        let tenants = Tenants::from_config(&Config::builtin());
        let created = match tenants.apply_stored("acme", tenant_config(&["k1"], &[]), 5) {
            Ok(Applied::Created(t)) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!((created.origin, created.revision()), (Origin::Admin, 5));
        // Its own change seen again: nothing to do; an older one: ignored.
        assert!(matches!(
            tenants.apply_stored("acme", tenant_config(&["k1"], &[]), 6),
            Ok(Applied::Unchanged)
        ));
        assert!(matches!(
            tenants.apply_stored("acme", tenant_config(&["old"], &[]), 4),
            Ok(Applied::Stale)
        ));
        // New keys: in place, so open connections' tenant sees them.
        assert!(matches!(
            tenants.apply_stored("acme", tenant_config(&["k1", "k2"], &[]), 7),
            Ok(Applied::Keys)
        ));
        assert_eq!(created.keys().signing_keys, ["k1", "k2"]);
        // Other settings: a new Tenant.
        let mut limited = tenant_config(&["k2"], &[]);
        limited.limits.connections = 3;
        assert!(matches!(
            tenants.apply_stored("acme", limited, 8),
            Ok(Applied::Replaced)
        ));
        let replaced = tenants.get("acme").expect("acme");
        assert!(!Arc::ptr_eq(&replaced, &created));
        assert_eq!(replaced.limits().connections, 3);
        // A refused entry (a key of another tenant) changes nothing.
        assert!(
            tenants
                .apply_stored(
                    "acme",
                    tenant_config(&[crate::config::DEMO_SIGNING_KEY], &[]),
                    9
                )
                .is_err()
        );
        assert_eq!(tenants.get("acme").expect("acme").revision(), 8);
        // The config file's tenant stays as it is.
        assert!(matches!(
            tenants.apply_stored("demo", tenant_config(&["other"], &[]), 10),
            Ok(Applied::FileTenant)
        ));
        assert!(tenants.remove_stored("demo", 11).is_none());
        assert!(tenants.get("demo").is_some());
        // Deletions too follow revisions.
        assert!(tenants.remove_stored("acme", 8).is_none());
        assert!(tenants.remove_stored("acme", 12).is_some());
        assert!(tenants.get("acme").is_none());
    }

    #[tokio::test]
    async fn keys_rotate_in_place_with_two_valid_at_once() {
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
        assert!(acme.authenticate(Some(&token("old-key"))).await.is_ok());
        assert!(acme.authenticate(Some(&token("new-key"))).await.is_ok());
        tenants
            .update_keys("acme", |k| {
                k.signing_keys.retain(|x| x != "old-key");
                Ok(())
            })
            .expect("removed");
        assert!(acme.authenticate(Some(&token("old-key"))).await.is_err());
        assert!(acme.authenticate(Some(&token("new-key"))).await.is_ok());
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
