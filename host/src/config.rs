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
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
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
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })?;
        config.validate()?;
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
        for (name, tenant) in &self.tenants {
            if !crate::tenant::is_valid_name(name) {
                return Err(ConfigError::Invalid(format!(
                    "tenant name '{name}' must be 1-64 characters of a-z, 0-9, '-' or '_'"
                )));
            }
            if !tenant.allow_anonymous && tenant.signing_keys.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "tenant '{name}' allows no anonymous connections and has no signing_keys"
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
}
