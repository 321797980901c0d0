//! The node's configuration: tenants, their keys and limits, protocol limits.
//!
//! Read from a TOML file (`--config`), or the built-in development config that
//! serves the `demo` tenant with anonymous connections allowed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub mod jwks_url;
pub mod origins;
pub mod proxies;

/// The signing key of the built-in `demo` tenant. It is public, so tokens it
/// signs prove nothing: use it for development only.
pub const DEMO_SIGNING_KEY: &str = "switchboard-demo-development-key-not-secret";

/// The REST API key of the built-in `demo` tenant; public like [`DEMO_SIGNING_KEY`].
pub const DEMO_API_KEY: &str = "switchboard-demo-api-key-not-secret";

/// ASP.NET's `StatefulReconnectBufferSize` default, in bytes.
pub const DEFAULT_STATEFUL_RECONNECT_BUFFER_BYTES: usize = 100_000;

/// The tenant the built-in configuration serves, with the bundled plugins.
pub const DEMO_TENANT: &str = "demo";

/// The node's configuration: the TOML file (or the built-in one) with the `SWITCHBOARD_*` variables
/// over it, checked. Its fields are the file's keys, by the same names.
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
    /// Messages queued for one connection before it counts as too slow and is closed: a
    /// backstop, as each queued message also counts 64 bytes against the byte budget
    /// (`limits.outbound_buffer_bytes`), which small messages reach first.
    #[serde(default = "default_outbound_queue")]
    pub outbound_queue: usize,
    /// Close a connection as too slow when one write to its transport (a frame of at most
    /// 64 KiB) makes no progress for this many seconds; its byte budget is the tenant's
    /// `limits.outbound_buffer_bytes`.
    #[serde(default = "default_write_timeout_secs")]
    pub write_timeout_secs: u64,
    /// Bytes a WebSocket reads at a time. Every connection holds this much from the start,
    /// so it is most of an idle connection's memory; a larger message still arrives whole,
    /// over several reads. Raise it when clients send many large messages. At least 256.
    #[serde(default = "default_websocket_read_buffer_bytes")]
    pub websocket_read_buffer_bytes: usize,
    /// Hold a long poll this many seconds with nothing to send, then answer an empty 200
    /// (ASP.NET's `PollTimeout`); below the JS client's fixed 100 s poll timeout.
    #[serde(default = "default_long_poll_timeout_secs")]
    pub long_poll_timeout_secs: u64,
    /// Agree to stateful reconnect when a client asks (`withStatefulReconnect()`, WebSockets
    /// only): a dropped socket keeps its connection for `disconnect_timeout_secs`, and a new
    /// socket with the same token resumes it with nothing lost or repeated.
    #[serde(default = "default_stateful_reconnect")]
    pub stateful_reconnect: bool,
    /// Bytes of unacknowledged messages kept per stateful connection for replay (ASP.NET's
    /// `StatefulReconnectBufferSize`); when full, sending waits for the client's Ack.
    #[serde(default = "default_stateful_reconnect_buffer_bytes")]
    pub stateful_reconnect_buffer_bytes: usize,
    // --- The HTTP edge: what any peer may hold before it is a connection ---
    /// Close a connection whose request head (request line and headers) is not complete this
    /// many seconds after the server started waiting for it: from accept for a new connection,
    /// from the end of the last response for a keep-alive one. So it bounds slow headers
    /// (slowloris), sockets that never send a byte, and idle keep-alive alike (Kestrel's
    /// `RequestHeadersTimeout` is 30 s). Never applies to a request in progress or a WebSocket.
    #[serde(default = "default_request_headers_timeout_secs")]
    pub request_headers_timeout_secs: u64,
    /// Largest request head (request line and headers) in bytes; larger ones get 431.
    #[serde(default = "default_max_request_head_bytes")]
    pub max_request_head_bytes: usize,
    /// TCP connections the node serves at once (HTTP, SSE, long polls, WebSockets). Above it a
    /// request gets 503, except `/healthz`, `/readyz`, `/metrics` and the admin API, which a
    /// few extra connections stay reserved for. Default: the open-file limit (raised to its
    /// hard limit at start) less the files already open and a reserve for NATS and plugins.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// On SIGTERM, how long the node waits for its connections to finish what is in
    /// flight and close (each told to reconnect elsewhere) before it exits anyway.
    #[serde(default = "default_drain_timeout_secs")]
    pub drain_timeout_secs: u64,
    /// Keep compiled plugins on disk, keyed by their bytes and the engine's settings, so a
    /// node that starts again (or loads a plugin it has compiled before) skips compiling it:
    /// seconds for a JavaScript or Python hub, tens of milliseconds for a Rust one.
    #[serde(default = "default_compile_cache")]
    pub compile_cache: bool,
    /// Where that cache lives; default: the user's cache folder (`~/.cache/wasmtime` on Linux).
    #[serde(default)]
    pub compile_cache_dir: Option<std::path::PathBuf>,
    /// Where the example hubs of the built-in `demo` tenant (`chat.wasm`, `notify.wasm`) are;
    /// relative to the config file. Default: found next to the binary (see
    /// `plugin::bundled`). Without them the node starts anyway and says so.
    #[serde(default)]
    pub bundled_plugins_dir: Option<std::path::PathBuf>,
    /// Node-wide defaults of every tenant's limits (`[limits]`); a tenant's
    /// own `limits` override them field by field.
    #[serde(default)]
    pub limits: Limits,
    /// The config file's tenants (`[tenants.NAME]`), by name.
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
    /// The admin API (`[admin]`): operator keys, kept plugin versions.
    #[serde(default)]
    pub admin: AdminConfig,
    /// TLS at the node (`[tls]`, or `serve --tls-cert/--tls-key`): without it, plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Proxies (addresses or CIDR blocks: `["127.0.0.1/32", "10.0.0.0/8"]`) whose
    /// `Forwarded` / `X-Forwarded-For` headers tell the client's address. From any
    /// other peer those headers are ignored. Empty: the socket's peer is the client.
    #[serde(default)]
    pub trusted_proxies: proxies::TrustedProxies,
}

/// The `[tls]` section: the node terminates TLS itself with these PEM files,
/// reloaded when they change. Relative paths are relative to the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first (PEM).
    pub cert_file: std::path::PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: std::path::PathBuf,
}

/// The `[admin]` section: who may call the admin API (`/admin/v1`) and how
/// many plugin versions each hub keeps for rollback.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Operator keys, sent as `Authorization: Bearer KEY` or `X-Admin-Key`.
    /// Any of them is accepted, so a key is rotated by adding the new one,
    /// then removing the old. None: the admin API is disabled.
    pub keys: Vec<String>,
    /// Plugin versions kept per hub (the current one always).
    pub keep_versions: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            keys: Vec::new(),
            keep_versions: 10,
        }
    }
}

/// The `[nats]` section: where the cluster's NATS is and how its streams
/// and buckets are made.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma separated: `nats://127.0.0.1:4222`.
    pub url: String,
    /// Prefix of stream, subject and bucket names, so clusters can share a NATS.
    pub prefix: String,
    /// Backplane streams; hubs are hashed over them. Every node of a cluster must agree.
    pub partitions: u32,
    /// Replicas of every stream and bucket (3 in production).
    pub replicas: usize,
    /// How long the backplane streams keep messages, in seconds.
    pub max_age_secs: u64,
    /// Largest size of each backplane stream, in bytes (-1: no limit).
    pub max_bytes: i64,
    /// Entries of the connection registry expire this long after their node last refreshed them.
    pub registry_ttl_secs: u64,
    /// Envelopes waiting for NATS (or for JetStream's ack) per partition; beyond it
    /// sends to other nodes are refused and their senders told (REST 503, invocation error).
    pub publish_queue: usize,
    /// Bytes of envelopes waiting for NATS (or for JetStream's ack) per partition; beyond it
    /// sends to other nodes are refused, as for `publish_queue`.
    pub queue_max_bytes: usize,
    /// How long an envelope may wait for NATS (an outage) before it is refused, in
    /// milliseconds; also how long a REST send or a hub invocation waits for its receipt.
    pub queue_max_age_ms: u64,
    /// The URL other nodes reach this node's HTTP at (`http://10.0.0.5:5000`), to forward
    /// requests for connections it holds. Default: the listen address, when it names one IP.
    pub advertise_url: Option<String>,
    /// Durable resume (on by default in a cluster): a stateful-reconnect
    /// connection resumes on any node after its own node died, nothing lost
    /// or repeated. Such connections get every record through the backplane
    /// stream, in stream order, so their sequence ids are a function of the
    /// stream. `false` turns it off for every hub; a tenant turns it off for
    /// some of its hubs with `durable_resume_except`.
    pub durable_resume: bool,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".to_owned(),
            prefix: "sb".to_owned(),
            partitions: 4,
            replicas: 1,
            max_age_secs: 600,
            max_bytes: 1 << 30,
            registry_ttl_secs: 30,
            publish_queue: 65_536,
            queue_max_bytes: 16 << 20,
            queue_max_age_ms: 15_000,
            advertise_url: None,
            durable_resume: true,
        }
    }
}

/// The functions serde's `#[serde(default = "...")]` names, one a line.
macro_rules! defaults {
    ($($(#[$doc:meta])* $name:ident: $ty:ty = $value:expr;)*) => {
        $($(#[$doc])* fn $name() -> $ty { $value })*
    };
}

/// One tenant's settings: a `[tenants.NAME]` table of the config file, or a tenant of the admin API
/// (stored as JSON in a cluster's tenant store).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
    /// An identity provider's JWKS URL (`https://idp.example/.well-known/jwks.json`):
    /// its keys verify client tokens beside `public_keys` and `jwks_file`. Fetched
    /// when first needed, kept as its `Cache-Control: max-age` says (1 min to 24 h),
    /// fetched again when a token names a `kid` it lacks (key rotation, no restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Allow a plain `http://` `jwks_url` to a host that is not loopback (anyone
    /// on the path could then hand the node keys of their choosing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub jwks_allow_http: bool,
    /// Fetch `jwks_url` for an unknown `kid` at most once per this many seconds.
    #[serde(
        default = "default_jwks_min_refresh_secs",
        skip_serializing_if = "is_default_jwks_min_refresh_secs"
    )]
    pub jwks_min_refresh_secs: u64,
    /// The `aud` that client tokens verified with a public key must carry.
    #[serde(default)]
    pub audience: Option<String>,
    /// The `iss` that client tokens verified with a public key must carry.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Origins whose browser pages may connect (CORS and the WebSocket `Origin`
    /// check): exact (`https://app.example.com`), subdomains
    /// (`https://*.example.com`), or `*` (anonymous tenants only; never with
    /// credentials). Empty: only pages of the server's own origin.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Hubs of the tenant whose stateful-reconnect connections are not
    /// durable (cannot resume on another node after theirs died) although
    /// the cluster's `[nats] durable_resume` is on: hubs whose clients
    /// resync anyway, which then skip its costs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub durable_resume_except: Vec<String>,
    /// Whether a failed invocation tells the client why (a panic's message,
    /// a trap): ASP.NET's `EnableDetailedErrors`. Off, the client reads only
    /// that the call failed; the plugin's own errors always reach it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detailed_errors: bool,
    /// Request headers hub plugins may read (`connection::header`), matched
    /// case-insensitively. Unset: every header but `Authorization`, `Cookie`
    /// and `Proxy-Authorization`, which are never shown. Kept of the request
    /// that opened the connection (negotiate, or a WebSocket without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_headers: Option<Vec<String>>,
    /// Cookies of that request hub plugins may read (`connection::cookie`),
    /// by exact name. Empty (the default): none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugin_cookies: Vec<String>,
    /// The texts of `public_keys` and `jwks_file`, read by [`Config::load`]
    /// (the tenant parses them into the keys it verifies tokens with).
    #[serde(skip)]
    pub key_files: KeyFiles,
    /// The tenant's limits (`[tenants.NAME.limits]`); what it leaves out comes from the node's
    /// `[limits]`.
    #[serde(default)]
    pub limits: Limits,
}

/// A tenant's key files as read: each `(where it came from, its text)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFiles {
    /// The `public_keys` PEM files, in order.
    pub pems: Vec<(String, String)>,
    /// The `jwks_file`, if the tenant names one.
    pub jwks: Option<(String, String)>,
}

/// Reads every tenant's `public_keys` and `jwks_file`, relative to `base`
/// (the config file's folder). Parsing them is the tenant's job.
fn read_key_files(tenants: &mut BTreeMap<String, TenantConfig>, base: &Path) -> Result<(), String> {
    for (name, tenant) in tenants.iter_mut() {
        let read = |path: &Path| {
            let full = base.join(path);
            std::fs::read_to_string(&full)
                .map(|text| (full.display().to_string(), text))
                .map_err(|e| format!("tenant '{name}': cannot read {}: {e}", full.display()))
        };
        tenant.key_files = KeyFiles {
            pems: tenant
                .public_keys
                .iter()
                .map(|p| read(p))
                .collect::<Result<_, _>>()?,
            jwks: tenant.jwks_file.as_deref().map(read).transpose()?,
        };
    }
    Ok(())
}

/// Per-tenant limits: what one tenant may use of the node. Each field can be
/// set in a tenant's `[tenants.NAME.limits]`; fields it leaves out come from
/// the node-wide `[limits]` section, then from the built-in defaults below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Time a plugin invocation may spend running guest code, in milliseconds.
    /// Waiting on the host (sleeps, KV, client results) does not count.
    pub invocation_cpu_ms: u64,
    /// Wall-clock time a plain invocation may take in all, running, sleeping
    /// and waiting, in milliseconds.
    pub invocation_wall_ms: u64,
    /// Wall-clock time a server stream (or a call with upload streams) may
    /// run, in milliseconds.
    pub stream_wall_ms: u64,
    /// Linear memory one plugin instance may grow to, in MiB.
    pub memory_mb: u64,
    /// Hub method invocations of the tenant running at once on this node;
    /// more wait up to `invocation_queue_ms` for a slot, then fail.
    pub concurrent_invocations: usize,
    /// How long an invocation waits for a slot when the tenant is at
    /// `concurrent_invocations`, in milliseconds (0: fail at once).
    pub invocation_queue_ms: u64,
    /// Connections of the tenant on this node; more are refused at negotiate
    /// (or at the handshake when a client skips negotiation).
    pub connections: usize,
    /// Hub invocations one connection may send per second (a token bucket
    /// refilled at this rate); more fail with an error and do not run.
    pub messages_per_second: u32,
    /// How many invocations a connection may send at once above the rate
    /// (the bucket's size); by default one second's worth.
    pub messages_burst: Option<u32>,
    /// Groups one connection may be a member of.
    pub groups_per_connection: usize,
    /// Largest hub message a client of the tenant may send, in bytes; larger
    /// ones close the connection. Defaults to the node's `max_message_size`.
    pub max_message_size: usize,
    /// Bytes of messages queued for one connection of the tenant; a client
    /// that lets more pile up is too slow and is closed. Server streams and
    /// client results wait while half of it is used.
    pub outbound_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            invocation_cpu_ms: 1000,
            // Half a minute: longer than a client waits for most calls.
            invocation_wall_ms: 30_000,
            // An hour: streams are meant to run long, but not forever unattended.
            stream_wall_ms: 3_600_000,
            memory_mb: 64,
            concurrent_invocations: 256,
            invocation_queue_ms: 5000,
            connections: 100_000,
            // Generous: a pipelining client does well over 10k echoes a second on
            // one connection here. Set it lower per tenant to rein clients in.
            messages_per_second: 100_000,
            messages_burst: None,
            groups_per_connection: 1000,
            max_message_size: default_max_message_size(),
            outbound_buffer_bytes: 1 << 20,
        }
    }
}

impl Limits {
    /// The token bucket's size for `messages_per_second`.
    pub fn burst(&self) -> u32 {
        self.messages_burst.unwrap_or(self.messages_per_second)
    }

    /// A tenant's limits given as JSON (the admin API): the fields it sets
    /// over `defaults` (the node's `[limits]`), checked.
    pub fn from_json_over(
        defaults: &Limits,
        overrides: Option<&serde_json::Value>,
    ) -> Result<Limits, String> {
        let mut merged = serde_json::to_value(defaults).map_err(|e| e.to_string())?;
        match overrides {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(fields)) => {
                if let serde_json::Value::Object(base) = &mut merged {
                    base.extend(fields.clone());
                }
            }
            Some(_) => return Err("limits must be an object".into()),
        }
        let limits: Limits = serde_json::from_value(merged).map_err(|e| e.to_string())?;
        limits.validate()?;
        Ok(limits)
    }

    /// Whether every limit is in its range.
    pub fn validate(&self) -> Result<(), String> {
        if self.memory_mb == 0 || self.memory_mb > 4096 {
            return Err("limits.memory_mb must be 1..=4096".into());
        }
        for (name, value) in [
            ("invocation_cpu_ms", self.invocation_cpu_ms),
            ("invocation_wall_ms", self.invocation_wall_ms),
            ("stream_wall_ms", self.stream_wall_ms),
        ] {
            if value == 0 {
                return Err(format!("limits.{name} must be positive"));
            }
        }
        for (name, value) in [
            ("concurrent_invocations", self.concurrent_invocations as u64),
            ("connections", self.connections as u64),
            ("messages_per_second", u64::from(self.messages_per_second)),
            ("messages_burst", u64::from(self.burst())),
            ("groups_per_connection", self.groups_per_connection as u64),
        ] {
            if value == 0 {
                return Err(format!("limits.{name} must be positive"));
            }
        }
        if !(1024..=MAX_MESSAGE_SIZE_CEILING).contains(&self.max_message_size) {
            return Err(format!(
                "limits.max_message_size must be 1024..={MAX_MESSAGE_SIZE_CEILING} bytes"
            ));
        }
        if !(OUTBOUND_BUFFER_FLOOR..=OUTBOUND_BUFFER_CEILING).contains(&self.outbound_buffer_bytes)
        {
            return Err(format!(
                "limits.outbound_buffer_bytes must be {OUTBOUND_BUFFER_FLOOR}..={OUTBOUND_BUFFER_CEILING} bytes"
            ));
        }
        Ok(())
    }
}

/// The range of a tenant's `outbound_buffer_bytes`: 16 KiB to 1 GiB.
pub const OUTBOUND_BUFFER_FLOOR: usize = 16 << 10;
/// The largest `outbound_buffer_bytes` a tenant may be given: 1 GiB.
pub const OUTBOUND_BUFFER_CEILING: usize = 1 << 30;

/// The largest `max_message_size` a tenant may be given: 16 MiB.
pub const MAX_MESSAGE_SIZE_CEILING: usize = 16 << 20;

/// Lets every tenant's `limits` inherit what it leaves out from the
/// node-wide `[limits]` section, and `limits.max_message_size` from the
/// top-level `max_message_size`, before the config is deserialized.
fn inherit_limits(root: &mut toml::Table) {
    let mut defaults = match root.get("limits") {
        Some(toml::Value::Table(t)) => t.clone(),
        _ => toml::Table::new(),
    };
    if let Some(size) = root.get("max_message_size").cloned() {
        defaults.entry("max_message_size").or_insert(size);
        // A `limits` that is not a table stays, for deserialization to refuse.
        if root.get("limits").is_none_or(toml::Value::is_table) {
            root.insert("limits".into(), toml::Value::Table(defaults.clone()));
        }
    }
    let Some(toml::Value::Table(tenants)) = root.get_mut("tenants") else {
        return;
    };
    for (_, tenant) in tenants.iter_mut() {
        let toml::Value::Table(tenant) = tenant else {
            continue;
        };
        let limits = tenant
            .entry("limits")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(limits) = limits {
            for (key, value) in &defaults {
                limits.entry(key).or_insert_with(|| value.clone());
            }
        }
    }
}

defaults! {
    default_drain_timeout_secs: u64 = 30;
    default_compile_cache: bool = true;
    default_max_message_size: usize = 32 * 1024;
    default_keep_alive_secs: u64 = 15;
    default_client_timeout_secs: u64 = 30;
    default_handshake_timeout_secs: u64 = 15;
    default_disconnect_timeout_secs: u64 = 15;
    default_websocket_read_buffer_bytes: usize = 1024;
    default_outbound_queue: usize = 65_536;
    default_write_timeout_secs: u64 = 10;
    default_stateful_reconnect: bool = true;
    default_stateful_reconnect_buffer_bytes: usize = DEFAULT_STATEFUL_RECONNECT_BUFFER_BYTES;
    default_long_poll_timeout_secs: u64 = 90;
    default_request_headers_timeout_secs: u64 = 30;
    default_max_request_head_bytes: usize = 64 * 1024;
    default_jwks_min_refresh_secs: u64 = 30;
    default_user_claim: String = "sub".to_owned();
}

/// Left out of a serialized tenant (the cluster's tenant store) when it is the
/// default, so nodes of an earlier version still read tenants without a JWKS URL.
fn is_default_jwks_min_refresh_secs(secs: &u64) -> bool {
    *secs == default_jwks_min_refresh_secs()
}

/// Why a config cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A problem at a place: `FILE:LINE:COLUMN`, `FILE`, or an environment variable.
    #[error("{at}: {message}")]
    At {
        /// Where: `FILE:LINE:COLUMN`, `FILE`, or the variable's name.
        at: String,
        /// What is wrong there.
        message: String,
    },
    /// A `SWITCHBOARD_*` variable cannot be used.
    #[error("{0}")]
    Env(#[from] crate::config_source::EnvError),
    /// A setting is out of range, found where there is no file to point into (a tenant of the admin
    /// API).
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The config's top-level keys: the first segment of every config variable
/// (see [`crate::config_source`]).
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "max_message_size",
    "keep_alive_secs",
    "client_timeout_secs",
    "handshake_timeout_secs",
    "disconnect_timeout_secs",
    "outbound_queue",
    "write_timeout_secs",
    "websocket_read_buffer_bytes",
    "long_poll_timeout_secs",
    "stateful_reconnect",
    "stateful_reconnect_buffer_bytes",
    "request_headers_timeout_secs",
    "max_request_head_bytes",
    "max_connections",
    "drain_timeout_secs",
    "compile_cache",
    "compile_cache_dir",
    "bundled_plugins_dir",
    "limits",
    "tenants",
    "public_url",
    "nats",
    "admin",
    "tls",
    "trusted_proxies",
];

/// A setting out of range: the key's dotted path, and what is wrong.
#[derive(Debug)]
struct Problem {
    key: String,
    message: String,
}

fn problem(key: &str, message: impl Into<String>) -> Problem {
    Problem {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The built-in configuration as TOML: what the node serves without `--config`.
fn builtin_toml() -> String {
    format!(
        "[tenants.{DEMO_TENANT}]\nallow_anonymous = true\nsigning_keys = [\"{DEMO_SIGNING_KEY}\"]\n\
         api_keys = [\"{DEMO_API_KEY}\"]\nallowed_origins = [\"*\"]\n"
    )
}

impl Config {
    /// The configuration used when no file is given: the `demo` tenant,
    /// anonymous connections allowed, the public development key.
    pub fn builtin() -> Config {
        Config::parse(&builtin_toml())
            .unwrap_or_else(|_| unreachable!("the built-in config is valid"))
    }

    /// Checks one tenant's settings as the config file's tenants are
    /// checked (for tenants created through the admin API).
    pub fn validate_tenant(name: &str, tenant: &TenantConfig) -> Result<(), ConfigError> {
        let mut config = Config::builtin();
        config.tenants = BTreeMap::from([(name.to_owned(), tenant.clone())]);
        config.validate()
    }

    /// The config file at `path`, without the environment's variables, checked.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_layered(Some(path), &[])
    }

    /// The config of the file at `path` (or the built-in one), with the
    /// values of `env` (see [`crate::config_source`]) over it, checked.
    /// Errors say where the offending value is: `FILE:LINE:COLUMN` or the
    /// environment variable. Without a file and with tenants in `env`, the
    /// built-in `demo` tenant is left out.
    pub fn load_layered(
        path: Option<&Path>,
        env: &[crate::config_source::EnvValue],
    ) -> Result<Config, ConfigError> {
        use crate::config_source::{key_span, overlay, position};
        let (text, name) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                (text, path.display().to_string())
            }
            None if env.iter().any(|v| v.path[0] == "tenants") => {
                (String::new(), "<built-in>".to_owned())
            }
            None => (builtin_toml(), "<built-in>".to_owned()),
        };
        let at_span = |span: Option<std::ops::Range<usize>>| match span {
            Some(span) => {
                let p = position(&text, span.start);
                format!("{name}:{}:{}", p.line, p.column)
            }
            None => name.clone(),
        };
        let located = |e: toml::de::Error| ConfigError::At {
            at: at_span(e.span()),
            message: e.message().trim_end().to_owned(),
        };
        // The file alone first: its syntax, unknown keys and types, with positions.
        let mut table: toml::Table = toml::from_str(&text).map_err(located)?;
        toml::from_str::<Config>(&text).map_err(located)?;
        for value in env {
            overlay(&mut table, value).map_err(|message| ConfigError::At {
                at: value.var.clone(),
                message,
            })?;
        }
        let mut config = Config::from_table(table).map_err(|e| {
            // Name the first variable whose value the config refuses.
            let mut partial: toml::Table = toml::from_str(&text).unwrap_or_default();
            for value in env {
                let _ = overlay(&mut partial, value);
                if let Err(e) = Config::from_table(partial.clone()) {
                    return ConfigError::At {
                        at: value.var.clone(),
                        message: e.message().trim_end().to_owned(),
                    };
                }
            }
            ConfigError::At {
                at: name.clone(),
                message: e.message().trim_end().to_owned(),
            }
        })?;
        config.check().map_err(|p| {
            let key: Vec<&str> = p.key.split('.').filter(|s| !s.is_empty()).collect();
            let from_env = env.iter().rev().find(|v| {
                let n = v.path.len().min(key.len());
                n > 0 && v.path[..n].iter().zip(&key[..n]).all(|(a, b)| a == b)
            });
            let at = match from_env {
                Some(v) => v.var.clone(),
                None => at_span(key_span(&text, &key)),
            };
            ConfigError::At {
                at,
                message: p.message,
            }
        })?;
        let base = path
            .and_then(Path::parent)
            .unwrap_or_else(|| Path::new("."));
        if let Some(dir) = &mut config.bundled_plugins_dir {
            *dir = base.join(&*dir);
        }
        if let Some(tls) = &mut config.tls {
            tls.cert_file = base.join(&tls.cert_file);
            tls.key_file = base.join(&tls.key_file);
        }
        read_key_files(&mut config.tenants, base).map_err(|message| ConfigError::At {
            at: name.clone(),
            message,
        })?;
        Ok(config)
    }

    /// Deserializes a config, tenants' limits inheriting the node-wide ones.
    fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        Config::from_table(toml::from_str(text)?)
    }

    fn from_table(mut table: toml::Table) -> Result<Config, toml::de::Error> {
        inherit_limits(&mut table);
        toml::Value::Table(table).try_into()
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text).map_err(|e| ConfigError::At {
            at: "<inline>".to_owned(),
            message: e.message().trim_end().to_owned(),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(|p| ConfigError::Invalid(p.message))
    }

    /// Whether every setting is in range; if not, which key is not.
    fn check(&self) -> Result<(), Problem> {
        if self
            .compile_cache_dir
            .as_ref()
            .is_some_and(|dir| !dir.is_absolute())
        {
            return Err(problem(
                "compile_cache_dir",
                "compile_cache_dir must be an absolute path",
            ));
        }
        if self.max_message_size < 1024 {
            return Err(problem(
                "max_message_size",
                "max_message_size must be at least 1024 bytes",
            ));
        }
        if self.client_timeout_secs <= self.keep_alive_secs {
            return Err(problem(
                "client_timeout_secs",
                "client_timeout_secs must be larger than keep_alive_secs",
            ));
        }
        if self.stateful_reconnect_buffer_bytes < 1024 {
            return Err(problem(
                "stateful_reconnect_buffer_bytes",
                "stateful_reconnect_buffer_bytes must be at least 1024",
            ));
        }
        if !(1..=3600).contains(&self.write_timeout_secs) {
            return Err(problem(
                "write_timeout_secs",
                "write_timeout_secs must be 1..=3600",
            ));
        }
        if !(1..=3600).contains(&self.drain_timeout_secs) {
            return Err(problem(
                "drain_timeout_secs",
                "drain_timeout_secs must be 1..=3600",
            ));
        }
        if !(1..100).contains(&self.long_poll_timeout_secs) {
            return Err(problem(
                "long_poll_timeout_secs",
                "long_poll_timeout_secs must be 1..=99 (clients give up on a poll after 100 s)",
            ));
        }
        self.validate_edge().map_err(|m| keyed("", m))?;
        if let Some(nats) = &self.nats {
            nats.validate().map_err(|m| keyed("", m))?;
        }
        if self.admin.keys.iter().any(|k| k.len() < 16) {
            return Err(problem(
                "admin.keys",
                "admin.keys must be at least 16 characters each",
            ));
        }
        if !(1..=1000).contains(&self.admin.keep_versions) {
            return Err(problem(
                "admin.keep_versions",
                "admin.keep_versions must be 1..=1000",
            ));
        }
        self.limits.validate().map_err(|m| keyed("", m))?;
        for (name, tenant) in &self.tenants {
            let at = format!("tenants.{name}");
            if !crate::address::is_valid_name(name) {
                return Err(problem(
                    &at,
                    format!("tenant name '{name}' must be 1-64 characters of a-z, 0-9, '-' or '_'"),
                ));
            }
            if !tenant.allow_anonymous
                && tenant.signing_keys.is_empty()
                && tenant.public_keys.is_empty()
                && tenant.jwks_file.is_none()
                && tenant.jwks_url.is_none()
            {
                return Err(problem(
                    &at,
                    format!(
                        "tenant '{name}' allows no anonymous connections and has no signing_keys, public_keys, jwks_file or jwks_url"
                    ),
                ));
            }
            if let Some(url) = &tenant.jwks_url {
                jwks_url::check_url(url, tenant.jwks_allow_http).map_err(|e| {
                    problem(
                        &format!("{at}.jwks_url"),
                        format!("tenant '{name}': jwks_url: {e}"),
                    )
                })?;
            }
            if !(1..=3600).contains(&tenant.jwks_min_refresh_secs) {
                return Err(problem(
                    &format!("{at}.jwks_min_refresh_secs"),
                    format!("tenant '{name}': jwks_min_refresh_secs must be 1..=3600"),
                ));
            }
            origins::validate(&tenant.allowed_origins, tenant.allow_anonymous).map_err(|e| {
                problem(
                    &format!("{at}.allowed_origins"),
                    format!("tenant '{name}': allowed_origins: {e}"),
                )
            })?;
            if let Some(hub) = tenant
                .durable_resume_except
                .iter()
                .find(|hub| !crate::address::is_valid_name(hub))
            {
                return Err(problem(
                    &format!("{at}.durable_resume_except"),
                    format!(
                        "tenant '{name}': durable_resume_except: hub name '{hub}' must be 1-64 characters of a-z, 0-9, '-' or '_'"
                    ),
                ));
            }
            tenant
                .limits
                .validate()
                .map_err(|e| keyed(&format!("{at}."), format!("tenant '{name}': {e}")))?;
        }
        Ok(())
    }
}

/// A problem whose message starts with its key (`nats.partitions must ...`),
/// after `prefix`'s own words, if any (`tenant 'a': limits.connections ...`).
fn keyed(prefix: &str, message: String) -> Problem {
    let words = message
        .split_once(": ")
        .map_or(message.as_str(), |(_, rest)| rest);
    let key = words
        .split([' ', ','])
        .next()
        .unwrap_or_default()
        .to_owned();
    Problem {
        key: format!("{prefix}{key}"),
        message,
    }
}

impl Config {
    /// The HTTP edge's settings are in range.
    fn validate_edge(&self) -> Result<(), String> {
        if !(1..=3600).contains(&self.request_headers_timeout_secs) {
            return Err("request_headers_timeout_secs must be 1..=3600".into());
        }
        // hyper refuses a read buffer below 8 KiB.
        if !(8192..=1 << 20).contains(&self.max_request_head_bytes) {
            return Err("max_request_head_bytes must be 8192..=1048576".into());
        }
        if self.max_connections == Some(0) {
            return Err("max_connections must be positive".into());
        }
        Ok(())
    }
}

impl NatsConfig {
    /// The longest an envelope waits for NATS before it is refused.
    pub fn queue_max_age(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.queue_max_age_ms)
    }

    fn validate(&self) -> Result<(), String> {
        if self.queue_max_bytes < 1024 {
            return Err("nats.queue_max_bytes must be at least 1024".into());
        }
        if !(100..=600_000).contains(&self.queue_max_age_ms) {
            return Err("nats.queue_max_age_ms must be 100..=600000 (10 minutes)".into());
        }
        if !(1..=1024).contains(&self.partitions) {
            return Err("nats.partitions must be 1..=1024".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return Err("nats.replicas must be 1..=5".into());
        }
        if !crate::address::is_valid_name(&self.prefix) {
            return Err("nats.prefix must be 1-64 characters of a-z, 0-9, '-' or '_'".into());
        }
        if let Some(url) = &self.advertise_url
            && !(url.starts_with("http://") && url.len() > "http://".len())
        {
            return Err(format!(
                "nats.advertise_url must be an http:// URL (got '{url}')"
            ));
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
    fn top_level_keys_are_the_config_fields() {
        // serde lists the fields it expects when it meets an unknown one.
        let err = toml::from_str::<Config>("zz_not_a_key = 1").expect_err("unknown");
        let message = err.message();
        let listed: Vec<&str> = message.split('`').skip(3).step_by(2).collect();
        assert_eq!(listed, TOP_LEVEL_KEYS, "{message}");
    }

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
    fn tenant_limits_inherit_node_limits_field_by_field() {
        let c = Config::parse(
            r#"
            max_message_size = 4096
            [limits]
            connections = 50
            messages_per_second = 7
            [tenants.a]
            allow_anonymous = true
            [tenants.a.limits]
            connections = 2
            max_message_size = 2048
            [tenants.b]
            allow_anonymous = true
            "#,
        )
        .expect("valid");
        c.validate().expect("valid");
        let (a, b) = (c.tenants["a"].limits, c.tenants["b"].limits);
        assert_eq!((a.connections, a.messages_per_second), (2, 7));
        assert_eq!((b.connections, b.messages_per_second), (50, 7));
        assert_eq!((a.max_message_size, b.max_message_size), (2048, 4096));
        assert_eq!(b.burst(), 7, "the burst defaults to one second's worth");
        assert_eq!(b.groups_per_connection, 1000);
        assert_eq!(c.limits.max_message_size, 4096);
        let c = Config::parse(
            "[tenants.a]\nallow_anonymous = true\n[tenants.a.limits]\nconnections = 0",
        )
        .expect("toml");
        assert!(c.validate().is_err(), "a zero limit is refused");
        assert!(Config::parse("[limits]\nbogus = 1").is_err());
    }

    #[test]
    fn json_limits_fill_in_from_node_defaults() {
        let defaults = Limits {
            connections: 9,
            ..Limits::default()
        };
        let over = serde_json::json!({"messages_per_second": 3});
        let l = Limits::from_json_over(&defaults, Some(&over)).expect("valid");
        assert_eq!((l.connections, l.messages_per_second, l.burst()), (9, 3, 3));
        assert_eq!(Limits::from_json_over(&defaults, None), Ok(defaults));
        let bad = serde_json::json!({"connections": 0});
        assert!(Limits::from_json_over(&defaults, Some(&bad)).is_err());
        let unknown = serde_json::json!({"bogus": 1});
        assert!(Limits::from_json_over(&defaults, Some(&unknown)).is_err());
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
    fn nats_advertise_url_must_be_http() {
        let c: Config =
            toml::from_str("[nats]\nadvertise_url = \"http://10.0.0.5:5000\"").expect("toml");
        c.validate().expect("valid");
        assert_eq!(
            c.nats.and_then(|n| n.advertise_url).as_deref(),
            Some("http://10.0.0.5:5000")
        );
        for bad in ["10.0.0.5:5000", "https://x", "http://"] {
            let c: Config =
                toml::from_str(&format!("[nats]\nadvertise_url = \"{bad}\"")).expect("toml");
            assert!(c.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn stateful_reconnect_defaults_and_bounds() {
        let c = Config::builtin();
        assert!(c.stateful_reconnect);
        assert_eq!(c.stateful_reconnect_buffer_bytes, 100_000);
        let c: Config = toml::from_str("stateful_reconnect_buffer_bytes = 100").expect("toml");
        assert!(c.validate().is_err(), "a buffer below 1024 bytes");
        let c: Config = toml::from_str("stateful_reconnect = false").expect("toml");
        assert!(!c.stateful_reconnect);
    }

    #[test]
    fn edge_defaults_and_bounds() {
        let c = Config::builtin();
        assert_eq!(c.request_headers_timeout_secs, 30);
        assert_eq!(c.max_request_head_bytes, 64 * 1024);
        assert_eq!(c.max_connections, None, "derived from the open-file limit");
        let c =
            Config::parse("request_headers_timeout_secs = 2\nmax_connections = 10").expect("toml");
        c.validate().expect("valid");
        assert_eq!(
            (c.request_headers_timeout_secs, c.max_connections),
            (2, Some(10))
        );
        for bad in [
            "request_headers_timeout_secs = 0",
            "max_connections = 0",
            "max_request_head_bytes = 4096",
        ] {
            assert!(
                Config::parse(bad).expect("toml").validate().is_err(),
                "{bad}"
            );
        }
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

    #[test]
    fn durable_resume_is_on_in_a_cluster_unless_turned_off_globally_or_per_hub() {
        let c: Config = toml::from_str("[nats]\nurl = \"nats://h:1\"").expect("toml");
        assert!(c.nats.expect("nats").durable_resume);
        assert!(NatsConfig::default().durable_resume, "serve --nats URL too");
        let c: Config = toml::from_str("[nats]\ndurable_resume = false").expect("toml");
        assert!(!c.nats.expect("nats").durable_resume);
        let c: Config = toml::from_str(
            "[tenants.acme]\nallow_anonymous = true\ndurable_resume_except = [\"ticker\"]",
        )
        .expect("toml");
        c.validate().expect("valid");
        let acme = crate::tenant::Tenant::new(
            "acme",
            c.tenants["acme"].clone(),
            crate::backplane::kv::KvStore::memory(),
        );
        assert!(!acme.durable_resume("ticker", true));
        assert!(acme.durable_resume("orders", true));
        assert!(!acme.durable_resume("orders", false), "off for every hub");
        let c: Config = toml::from_str(
            "[tenants.acme]\nallow_anonymous = true\ndurable_resume_except = [\"Bad Hub\"]",
        )
        .expect("toml");
        let err = c.validate().expect_err("a bad hub name");
        assert!(err.to_string().contains("durable_resume_except"), "{err}");
    }
}
