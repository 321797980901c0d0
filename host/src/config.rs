//! The node's configuration: tenants, their keys and limits, protocol limits.
//!
//! Read from a TOML file (`--config`), or the built-in development config that
//! serves the `demo` tenant with anonymous connections allowed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The signing key of the built-in `demo` tenant. It is public, so tokens it
/// signs prove nothing: use it for development only.
pub const DEMO_SIGNING_KEY: &str = "switchboard-demo-development-key-not-secret";

/// The REST API key of the built-in `demo` tenant; public like [`DEMO_SIGNING_KEY`].
pub const DEMO_API_KEY: &str = "switchboard-demo-api-key-not-secret";

/// The tenant the built-in configuration serves, with the bundled plugins.
pub const DEMO_TENANT: &str = "demo";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Largest hub message a client may send, in bytes (SignalR's `MaximumReceiveMessageSize`).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// Send a Ping after this many seconds with nothing sent (SignalR's `KeepAliveInterval`).
    #[serde(default = "default_keep_alive_secs")]
    pub keep_alive_secs: u64,
    /// Close a connection after this many seconds with nothing received (`ClientTimeoutInterval`).
    #[serde(default = "default_client_timeout_secs")]
    pub client_timeout_secs: u64,
    /// Close a connection whose handshake has not arrived after this many seconds.
    #[serde(default = "default_handshake_timeout_secs")]
    pub handshake_timeout_secs: u64,
    /// Forget a negotiated connection no transport picked up after this many seconds.
    #[serde(default = "default_disconnect_timeout_secs")]
    pub disconnect_timeout_secs: u64,
    /// Messages queued for one connection before it counts as too slow and is closed.
    #[serde(default = "default_outbound_queue")]
    pub outbound_queue: usize,
    /// Hold a long poll this many seconds with nothing to send, then answer an empty 200
    /// (ASP.NET's `PollTimeout`); below the JS client's fixed 100 s poll timeout.
    #[serde(default = "default_long_poll_timeout_secs")]
    pub long_poll_timeout_secs: u64,
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    /// The URL backends reach the REST API at (`https://push.example.com`).
    /// When set, an API token's `aud` must be this URL plus the request path;
    /// otherwise only the path of `aud` is compared (see `api::auth`).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Join a cluster over NATS JetStream (`[nats]`, or `serve --nats URL`);
    /// without it the node runs alone on the memory backplane.
    #[serde(default)]
    pub nats: Option<NatsConfig>,
}

/// The `[nats]` section: where the cluster's NATS is and how its streams
/// and buckets are made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma separated: `nats://127.0.0.1:4222`.
    #[serde(default = "default_nats_url")]
    pub url: String,
    /// Prefix of stream, subject and bucket names, so clusters can share a NATS.
    #[serde(default = "default_nats_prefix")]
    pub prefix: String,
    /// Backplane streams; hubs are hashed over them. Every node of a cluster must agree.
    #[serde(default = "default_nats_partitions")]
    pub partitions: u32,
    /// Replicas of every stream and bucket (3 in production).
    #[serde(default = "default_nats_replicas")]
    pub replicas: usize,
    /// How long the backplane streams keep messages, in seconds.
    #[serde(default = "default_nats_max_age_secs")]
    pub max_age_secs: u64,
    /// Largest size of each backplane stream, in bytes (-1: no limit).
    #[serde(default = "default_nats_max_bytes")]
    pub max_bytes: i64,
    /// Entries of the connection registry expire this long after their node last refreshed them.
    #[serde(default = "default_nats_registry_ttl_secs")]
    pub registry_ttl_secs: u64,
    /// Envelopes queued for publishing per partition before new ones are dropped (and counted).
    #[serde(default = "default_nats_publish_queue")]
    pub publish_queue: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: default_nats_url(),
            prefix: default_nats_prefix(),
            partitions: default_nats_partitions(),
            replicas: default_nats_replicas(),
            max_age_secs: default_nats_max_age_secs(),
            max_bytes: default_nats_max_bytes(),
            registry_ttl_secs: default_nats_registry_ttl_secs(),
            publish_queue: default_nats_publish_queue(),
        }
    }
}

fn default_nats_url() -> String {
    "nats://127.0.0.1:4222".to_owned()
}
fn default_nats_prefix() -> String {
    "sb".to_owned()
}
fn default_nats_partitions() -> u32 {
    4
}
fn default_nats_replicas() -> usize {
    1
}
fn default_nats_max_age_secs() -> u64 {
    600
}
fn default_nats_max_bytes() -> i64 {
    1 << 30
}
fn default_nats_registry_ttl_secs() -> u64 {
    30
}
fn default_nats_publish_queue() -> usize {
    65_536
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Whether clients may connect without a token.
    #[serde(default)]
    pub allow_anonymous: bool,
    /// HS256 secrets that sign client tokens; any of them is accepted, so a
    /// key can be rotated by adding the new one before removing the old.
    #[serde(default)]
    pub signing_keys: Vec<String>,
    /// The claim that holds the user id (`sub` by default; Azure uses `nameid`).
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Secrets for the REST API: each is accepted as an `X-Api-Key` header and
    /// signs HS256 API tokens; several at once, for rotation.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// PEM files of public keys (RSA, EC P-256/P-384, Ed25519) that verify
    /// client tokens an identity provider issues (RS256, ES256, ...).
    /// Relative paths are relative to the config file.
    #[serde(default)]
    pub public_keys: Vec<std::path::PathBuf>,
    /// A JWKS file (`{"keys":[...]}`) with more public keys for client tokens.
    #[serde(default)]
    pub jwks_file: Option<std::path::PathBuf>,
    /// The `aud` that client tokens verified with a public key must carry.
    #[serde(default)]
    pub audience: Option<String>,
    /// The `iss` that client tokens verified with a public key must carry.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The keys loaded from `public_keys` and `jwks_file` by [`Config::load`].
    #[serde(skip)]
    pub verify_keys: crate::tenant::auth::VerifyKeys,
    #[serde(default)]
    pub limits: Limits,
}

/// Per-tenant limits on what one plugin invocation may use.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time a plugin invocation may run guest code, in milliseconds.
    #[serde(default = "default_invocation_cpu_ms")]
    pub invocation_cpu_ms: u64,
    /// Linear memory one plugin instance may grow to, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            invocation_cpu_ms: default_invocation_cpu_ms(),
            memory_mb: default_memory_mb(),
        }
    }
}

fn default_max_message_size() -> usize {
    32 * 1024
}
fn default_keep_alive_secs() -> u64 {
    15
}
fn default_client_timeout_secs() -> u64 {
    30
}
fn default_handshake_timeout_secs() -> u64 {
    15
}
fn default_disconnect_timeout_secs() -> u64 {
    15
}
fn default_outbound_queue() -> usize {
    4096
}
fn default_long_poll_timeout_secs() -> u64 {
    90
}
fn default_user_claim() -> String {
    "sub".to_owned()
}
fn default_invocation_cpu_ms() -> u64 {
    1000
}
fn default_memory_mb() -> u64 {
    64
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// The configuration used when no file is given: the `demo` tenant,
    /// anonymous connections allowed, the public development key.
    pub fn builtin() -> Config {
        let mut tenants = BTreeMap::new();
        tenants.insert(
            DEMO_TENANT.to_owned(),
            TenantConfig {
                allow_anonymous: true,
                signing_keys: vec![DEMO_SIGNING_KEY.to_owned()],
                user_claim: default_user_claim(),
                api_keys: vec![DEMO_API_KEY.to_owned()],
                public_keys: Vec::new(),
                jwks_file: None,
                audience: None,
                issuer: None,
                verify_keys: Default::default(),
                limits: Limits::default(),
            },
        );
        Config {
            tenants,
            ..Config::parse("").unwrap_or_else(|_| unreachable!("the empty config is valid"))
        }
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })?;
        config.validate()?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        crate::tenant::auth::load_verify_keys(&mut config.tenants, base)
            .map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: "<inline>".to_owned(),
            source: Box::new(source),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_message_size < 1024 {
            return Err(ConfigError::Invalid(
                "max_message_size must be at least 1024 bytes".into(),
            ));
        }
        if self.client_timeout_secs <= self.keep_alive_secs {
            return Err(ConfigError::Invalid(
                "client_timeout_secs must be larger than keep_alive_secs".into(),
            ));
        }
        if !(1..100).contains(&self.long_poll_timeout_secs) {
            return Err(ConfigError::Invalid(
                "long_poll_timeout_secs must be 1..=99 (clients give up on a poll after 100 s)"
                    .into(),
            ));
        }
        if let Some(nats) = &self.nats {
            nats.validate().map_err(ConfigError::Invalid)?;
        }
        for (name, tenant) in &self.tenants {
            if !crate::tenant::is_valid_name(name) {
                return Err(ConfigError::Invalid(format!(
                    "tenant name '{name}' must be 1-64 characters of a-z, 0-9, '-' or '_'"
                )));
            }
            if !tenant.allow_anonymous
                && tenant.signing_keys.is_empty()
                && tenant.public_keys.is_empty()
                && tenant.jwks_file.is_none()
            {
                return Err(ConfigError::Invalid(format!(
                    "tenant '{name}' allows no anonymous connections and has no signing_keys, public_keys or jwks_file"
                )));
            }
            if tenant.limits.memory_mb == 0 || tenant.limits.memory_mb > 4096 {
                return Err(ConfigError::Invalid(format!(
                    "tenant '{name}': limits.memory_mb must be 1..=4096"
                )));
            }
            if tenant.limits.invocation_cpu_ms == 0 {
                return Err(ConfigError::Invalid(format!(
                    "tenant '{name}': limits.invocation_cpu_ms must be positive"
                )));
            }
        }
        Ok(())
    }
}

impl NatsConfig {
    fn validate(&self) -> Result<(), String> {
        if !(1..=1024).contains(&self.partitions) {
            return Err("nats.partitions must be 1..=1024".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return Err("nats.replicas must be 1..=5".into());
        }
        if !crate::tenant::is_valid_name(&self.prefix) {
            return Err("nats.prefix must be 1-64 characters of a-z, 0-9, '-' or '_'".into());
        }
        if self.registry_ttl_secs < 3 || self.max_age_secs == 0 || self.publish_queue == 0 {
            return Err(
                "nats.registry_ttl_secs must be >= 3; max_age_secs and publish_queue positive"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_demo_with_anonymous() {
        let c = Config::builtin();
        let demo = &c.tenants[DEMO_TENANT];
        assert!(demo.allow_anonymous);
        assert_eq!(c.max_message_size, 32 * 1024);
        assert_eq!(demo.limits.memory_mb, 64);
    }

    #[test]
    fn parses_tenants_and_limits() {
        let c: Config = toml::from_str(
            r#"
            max_message_size = 4096
            [tenants.acme]
            signing_keys = ["k1", "k2"]
            [tenants.acme.limits]
            invocation_cpu_ms = 200
            "#,
        )
        .expect("valid");
        c.validate().expect("valid");
        let acme = &c.tenants["acme"];
        assert!(!acme.allow_anonymous);
        assert_eq!(acme.signing_keys.len(), 2);
        assert_eq!(acme.limits.invocation_cpu_ms, 200);
        assert_eq!(acme.limits.memory_mb, 64);
    }

    #[test]
    fn rejects_unknown_fields_and_bad_tenants() {
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
        let c: Config = toml::from_str("[tenants.\"a.b\"]\nallow_anonymous = true").expect("toml");
        assert!(c.validate().is_err());
        let c: Config = toml::from_str("[tenants.x]\n").expect("toml");
        assert!(c.validate().is_err(), "no keys and no anonymous");
    }

    #[test]
    fn parses_nats_section_with_defaults() {
        let c: Config =
            toml::from_str("[nats]\nurl = \"nats://h:1\"\npartitions = 8").expect("toml");
        c.validate().expect("valid");
        let nats = c.nats.expect("nats");
        assert_eq!(
            (nats.url.as_str(), nats.partitions, nats.replicas),
            ("nats://h:1", 8, 1)
        );
        let c: Config = toml::from_str("[nats]\npartitions = 0").expect("toml");
        assert!(c.validate().is_err());
        assert!(Config::builtin().nats.is_none());
    }
}
