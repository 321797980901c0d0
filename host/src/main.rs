//! The `switchboard` command: run a node, or mint a development token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use switchboard::api::admin_client::{AdminArgs, format_version, hub_path};
use switchboard::api::auth::mint_api_token;
use switchboard::api::client::{ApiClient, Credentials, Destination, segment, send_path};
use switchboard::authoring::Lang;
use switchboard::authoring::dev::DevOptions;
use switchboard::config::Config;
use switchboard::node::Node;
use switchboard::telemetry::LogFormat;
use switchboard::telemetry::otlp::{Encoding, Export};
use switchboard::tenant::auth::mint_token;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "A SignalR-compatible push server with WebAssembly hubs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node. A repeated option overrides the earlier one. Every config
    /// key can also be set by an environment variable: SWITCHBOARD_ and the
    /// key's path joined by `__` (SWITCHBOARD_NATS__URL), or its secret read
    /// from a file with a _FILE suffix (SWITCHBOARD_ADMIN__KEYS_FILE).
    #[command(args_override_self = true)]
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:5000")]
        listen: SocketAddr,
        /// Folder of plugins as DIR/{tenant}/{hub}.wasm; adds to or replaces bundled hubs.
        #[arg(long, env = "SWITCHBOARD_PLUGINS")]
        plugins: Option<PathBuf>,
        /// TOML file with tenants, keys and limits (default: the `demo` tenant).
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
        /// Join a cluster over NATS JetStream at this URL (overrides `[nats] url`).
        #[arg(long, value_name = "URL", env = "SWITCHBOARD_NATS")]
        nats: Option<String>,
        #[command(flatten)]
        tls: TlsFiles,
        /// How log lines are written to stderr: text, or one JSON object per line.
        /// RUST_LOG filters them (default `info`; `switchboard::access=off` drops
        /// the access log).
        #[arg(
            long,
            value_enum,
            env = "SWITCHBOARD_LOG_FORMAT",
            default_value = "text"
        )]
        log_format: LogFormat,
        /// Export spans over OTLP/HTTP to this collector (a base URL; spans go to
        /// URL/v1/traces). OTEL_EXPORTER_OTLP_ENDPOINT also turns export on.
        #[arg(long, value_name = "URL", env = "SWITCHBOARD_OTLP_ENDPOINT")]
        otlp_endpoint: Option<String>,
        /// The OTLP encoding (default: OTEL_EXPORTER_OTLP_PROTOCOL, http/json or
        /// http/protobuf, else http-protobuf).
        #[arg(
            long,
            value_enum,
            value_name = "ENCODING",
            env = "SWITCHBOARD_OTLP_PROTOCOL"
        )]
        otlp_protocol: Option<Encoding>,
    },
    /// Check a config file (with the SWITCHBOARD_* environment over it, as
    /// `serve` reads it) without starting a node: prints "ok" and exits 0, or
    /// prints where the problem is (FILE:LINE:COLUMN or the variable) and exits 1.
    CheckConfig {
        /// The TOML file (without it: the built-in config and the environment).
        #[arg(env = "SWITCHBOARD_CONFIG")]
        file: Option<PathBuf>,
    },
    /// Print a client token (HS256 JWT) signed with the tenant's first key,
    /// or with --api an API token signed with its first api_keys entry.
    Token {
        /// The tenant whose key signs the token.
        #[arg(long)]
        tenant: String,
        /// The user id the token names (its `sub`, or the tenant's user_claim).
        #[arg(long, required_unless_present = "api")]
        user: Option<String>,
        /// The config file with the tenant's keys (default: the built-in `demo` tenant).
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
        /// How long the token is valid, in seconds (default: a day for client
        /// tokens; 5 minutes for API tokens, which may last at most an hour).
        #[arg(long)]
        ttl_secs: Option<u64>,
        /// Mint a token for the REST API instead of a client token.
        #[arg(long)]
        api: bool,
        /// With --api: the one hub the token is for (default: all of the tenant's hubs).
        #[arg(long, requires = "api")]
        hub: Option<String>,
        /// With --api: the node (or load balancer) URL the token is used at.
        #[arg(long, default_value = "http://127.0.0.1:5000")]
        url: String,
    },
    /// Send METHOD(ARGS) to clients through a node's REST API (or with
    /// --invoke, call the hub method METHOD server-side). Prints the status
    /// and the response body; fails on a 4xx or 5xx answer.
    Send {
        /// The node (or load balancer) URL.
        #[arg(long, default_value = "http://127.0.0.1:5000")]
        url: String,
        /// The tenant the hub belongs to.
        #[arg(long)]
        tenant: String,
        /// The hub whose clients receive it.
        #[arg(long)]
        hub: String,
        #[command(flatten)]
        to: SendTo,
        /// Connection ids that must not receive it (with --all or --group).
        #[arg(long)]
        excluded: Vec<String>,
        /// Authenticate with this API key; otherwise sign a token with the
        /// first api_keys entry of the tenant in --config.
        #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Also trust this CA certificate (PEM) for an https:// URL (a self-signed or private CA).
        #[arg(long, value_name = "FILE", env = "SWITCHBOARD_CA_CERT")]
        ca_cert: Option<PathBuf>,
        /// The config file with the tenant's api_keys (without --api-key).
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
        /// The client method (or with --invoke, the hub method).
        method: String,
        /// Its arguments as a JSON array.
        #[arg(default_value = "[]")]
        args: String,
    },
    /// Deploy FILE.wasm as the next version of a hub, through a node's admin
    /// API (cluster-wide in a cluster). Prints the new version; fails, with the
    /// server's reason, if the component is rejected.
    Deploy {
        #[command(flatten)]
        hub: AdminHub,
        /// The component (`.wasm`).
        file: PathBuf,
    },
    /// Make the previous version of a hub (or --version N) serve again.
    Rollback {
        #[command(flatten)]
        hub: AdminHub,
        /// Roll back to this version instead of the previous one.
        #[arg(long)]
        version: Option<u64>,
    },
    /// Write a new project from a template: `switchboard new hub NAME`.
    New {
        #[command(subcommand)]
        what: NewWhat,
    },
    /// Build the hub project in DIR, deploy it to a running node through its
    /// admin API, and again on every change to its sources. Build output and
    /// the node's validation errors are printed; a failed build or a refused
    /// component leaves the last good version serving.
    Dev(DevOptions),
    /// List a tenant's hubs with their versions, hashes and deploy times.
    Plugins {
        #[command(flatten)]
        admin: AdminArgs,
        /// The tenant whose hubs to list.
        #[arg(long)]
        tenant: String,
        /// Print the admin API's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// HTTPS for `serve`: a certificate chain and its key, both or neither.
#[derive(clap::Args)]
#[group(multiple = true, requires_all = ["tls_cert", "tls_key"])]
struct TlsFiles {
    /// Serve HTTPS with this certificate chain (PEM; with --tls-key; overrides `[tls]`).
    /// Reloaded when the file changes.
    #[arg(long, value_name = "FILE", env = "SWITCHBOARD_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", env = "SWITCHBOARD_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

impl TlsFiles {
    /// The `[tls]` section the files stand for, when they are given.
    fn config(self) -> Option<switchboard::config::TlsConfig> {
        Some(switchboard::config::TlsConfig {
            cert_file: self.tls_cert?,
            key_file: self.tls_key?,
        })
    }
}

/// What `switchboard new` writes.
#[derive(Subcommand)]
enum NewWhat {
    /// A hub plugin project in NAME/ (or --dir), ready for `switchboard dev`.
    Hub {
        /// The hub's name: clients connect to /hubs/{tenant}/NAME.
        name: String,
        /// The language: rust, js or python.
        #[arg(long, default_value = "rust", value_parser = parse_lang)]
        lang: Lang,
        /// The folder to write (default: ./NAME). It must be empty or absent.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The Switchboard folder with the SDKs (default: found above this binary or the
        /// current folder).
        #[arg(long, value_name = "DIR", env = "SWITCHBOARD_SDK")]
        sdk: Option<PathBuf>,
    },
}

fn parse_lang(name: &str) -> Result<Lang, String> {
    Lang::parse(name).ok_or_else(|| format!("`{name}` is not one of rust, js, python"))
}

/// A tenant's hub, through the admin API.
#[derive(clap::Args)]
struct AdminHub {
    #[command(flatten)]
    admin: AdminArgs,
    /// The tenant the hub belongs to.
    #[arg(long)]
    tenant: String,
    /// The hub.
    #[arg(long)]
    hub: String,
}

impl AdminHub {
    /// POSTs `body` to the hub's `action` (`deploy`, `rollback`); the version it answers with,
    /// as one line.
    fn post(&self, action: &str, body: Option<(&str, bytes::Bytes)>) -> anyhow::Result<String> {
        let path = hub_path(&self.tenant, &self.hub, action);
        let answer = admin_request(&self.admin, axum::http::Method::POST, &path, body)?;
        Ok(format_version(&answer))
    }
}

/// Sends one admin request; prints the error body and fails on a 4xx or 5xx.
fn admin_request(
    admin: &AdminArgs,
    method: axum::http::Method,
    path: &str,
    body: Option<(&str, bytes::Bytes)>,
) -> anyhow::Result<serde_json::Value> {
    let client = admin.client()?;
    let response = block_on(client.request_body(method, path, body))??;
    if response.status >= 400 {
        eprintln!("{} {}", response.status, response.body);
        std::process::exit(1);
    }
    serde_json::from_str(&response.body).with_context(|| {
        format!(
            "the admin API answered {}: {}",
            response.status, response.body
        )
    })
}

/// Runs one request of a command line tool on a runtime of its own (one thread).
fn block_on<F: std::future::Future>(request: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(request))
}

/// Who `switchboard send` sends to.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct SendTo {
    /// Every connection of this user.
    #[arg(long)]
    user: Option<String>,
    /// Every connection in this group.
    #[arg(long)]
    group: Option<String>,
    /// This one connection id.
    #[arg(long)]
    connection: Option<String>,
    /// Every connection of the hub.
    #[arg(long)]
    all: bool,
    /// Invoke a hub method of the tenant's plugin instead.
    #[arg(long)]
    invoke: bool,
}

/// The config the commands run with: the file (or the built-in one) with the
/// `SWITCHBOARD_*` environment variables over it. The variables the command
/// line itself reads are not config keys.
fn load_serve_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    let env = switchboard::config_source::from_env(
        std::env::vars(),
        switchboard::config::TOP_LEVEL_KEYS,
        &command_line_vars(),
        |file| std::fs::read_to_string(file),
    )?;
    let config = Config::load_layered(path.map(PathBuf::as_path), &env)?;
    // The key files are read with the config; whether they parse, and trust
    // no key another tenant trusts, is the tenants' rule.
    switchboard::tenant::auth::check_tenants_apart(&config.tenants).map_err(|message| {
        let at = path.map_or("<built-in>".into(), |p| p.display().to_string());
        anyhow::anyhow!("{at}: {message}")
    })?;
    Ok(config)
}

/// The variables the command line itself reads (`SWITCHBOARD_LISTEN`, ...).
fn command_line_vars() -> Vec<String> {
    use clap::CommandFactory;
    let command = Cli::command();
    let mut vars: Vec<String> = Vec::new();
    for sub in command.get_subcommands() {
        for arg in sub.get_arguments() {
            if let Some(env) = arg.get_env() {
                vars.push(env.to_string_lossy().into_owned());
            }
        }
    }
    vars
}

/// The config, or its error printed once (where it is, what is wrong) and exit code 1.
fn config_or_exit(config: anyhow::Result<Config>) -> Config {
    match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            plugins,
            config,
            nats,
            tls,
            log_format,
            otlp_endpoint,
            otlp_protocol,
        } => {
            let otlp =
                Export::configured(otlp_endpoint, otlp_protocol, |var| std::env::var(var).ok());
            // Flushes the last spans when `serve` returns.
            let _telemetry = switchboard::telemetry::init(&switchboard::telemetry::Options {
                log_format,
                otlp,
            })?;
            // Every connection is a file: take all the system allows, before anything opens one.
            switchboard::server::files::raise_open_file_limit();
            let config_path = config;
            let mut config = config_or_exit(load_serve_config(config_path.as_ref()));
            if let Some(url) = nats {
                config.nats.get_or_insert_with(Default::default).url = url;
            }
            if let Some(tls) = tls.config() {
                config.tls = Some(tls);
            }
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(serve(config, listen, plugins, move || {
                load_serve_config(config_path.as_ref())
            }))
        }
        Command::CheckConfig { file } => {
            let config = config_or_exit(load_serve_config(file.as_ref()));
            // Left alone by the loader: another tool's variable, or a misspelt key.
            for var in switchboard::config_source::unused(
                std::env::vars(),
                switchboard::config::TOP_LEVEL_KEYS,
                &command_line_vars(),
            ) {
                eprintln!("note: {var} names no config key; ignored");
            }
            println!(
                "ok: {} ({} tenants)",
                file.as_deref()
                    .map_or("<built-in>".into(), |f| f.display().to_string()),
                config.tenants.len()
            );
            Ok(())
        }
        Command::Token {
            tenant,
            user,
            config,
            ttl_secs,
            api,
            hub,
            url,
        } => {
            let config = config_or_exit(load_serve_config(config.as_ref()));
            let Some(tenant_config) = config.tenants.get(&tenant) else {
                bail!("unknown tenant '{tenant}'");
            };
            let token = if api {
                let Some(key) = tenant_config.api_keys.first() else {
                    bail!("tenant '{tenant}' has no api_keys");
                };
                let ttl = Duration::from_secs(ttl_secs.unwrap_or(300));
                if ttl > switchboard::api::auth::MAX_TOKEN_LIFETIME {
                    bail!("API tokens may last at most 3600 seconds");
                }
                let mut aud = format!(
                    "{}/api/v1/tenants/{}",
                    url.trim_end_matches('/'),
                    segment(&tenant)
                );
                if let Some(hub) = hub {
                    aud = format!("{aud}/hubs/{}", segment(&hub));
                }
                mint_api_token(key, &aud, ttl)?
            } else {
                let Some(key) = tenant_config.signing_keys.first() else {
                    bail!("tenant '{tenant}' has no signing_keys");
                };
                let user = user.unwrap_or_default();
                let ttl = Duration::from_secs(ttl_secs.unwrap_or(24 * 3600));
                mint_token(key, &user, ttl, Default::default())?
            };
            println!("{token}");
            Ok(())
        }
        Command::New {
            what:
                NewWhat::Hub {
                    name,
                    lang,
                    dir,
                    sdk,
                },
        } => {
            use switchboard::authoring::create::{find_sdk, write_project};
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let sdk = find_sdk(sdk.as_deref())?;
            let files = write_project(&dir, &name, lang, &sdk)?;
            println!(
                "wrote a {} hub `{name}` in {}: {}",
                lang.name(),
                dir.display(),
                files.join(", ")
            );
            println!("next, with a node running (./dev serve):");
            println!(
                "  switchboard dev {} --admin-key KEY   # builds, deploys to tenant `demo`, redeploys on save",
                dir.display()
            );
            Ok(())
        }
        Command::Dev(options) => switchboard::authoring::dev::run(options),
        command @ (Command::Deploy { .. } | Command::Rollback { .. } | Command::Plugins { .. }) => {
            run_admin(command)
        }
        Command::Send {
            url,
            tenant,
            hub,
            to,
            excluded,
            api_key,
            ca_cert,
            config,
            method,
            args,
        } => {
            let credentials = match api_key {
                Some(key) => Credentials::ApiKey(key),
                None => {
                    let config = config_or_exit(load_serve_config(config.as_ref()));
                    let Some(key) = config.tenants.get(&tenant).and_then(|t| t.api_keys.first())
                    else {
                        bail!("tenant '{tenant}' has no api_keys in the config; pass --api-key");
                    };
                    Credentials::SigningKey(key.clone())
                }
            };
            let to = match to {
                SendTo { user: Some(u), .. } => Destination::User(u),
                SendTo { group: Some(g), .. } => Destination::Group(g),
                SendTo {
                    connection: Some(c),
                    ..
                } => Destination::Connection(c),
                SendTo { invoke: true, .. } => Destination::Invoke,
                _ => Destination::All,
            };
            let arguments: serde_json::Value =
                serde_json::from_str(&args).context("ARGS must be JSON")?;
            if !arguments.is_array() {
                bail!("ARGS must be a JSON array, such as '[\"hello\"]'");
            }
            let body = serde_json::json!({ "target": method, "arguments": arguments }).to_string();
            let path = send_path(&tenant, &hub, &to, &excluded);
            let client = ApiClient::with_ca_cert(&url, credentials, ca_cert.as_deref())?;
            let response = block_on(client.request(axum::http::Method::POST, &path, Some(body)))??;
            println!("{} {}", response.status, response.body);
            if response.status >= 400 {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn run_admin(command: Command) -> anyhow::Result<()> {
    use switchboard::api::admin_client::{format_plugins, plugins_path};
    match command {
        Command::Deploy { hub, file } => {
            let wasm =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let body = Some(("application/wasm", bytes::Bytes::from(wasm)));
            println!("deployed {}", hub.post("deploy", body)?);
        }
        Command::Rollback { hub, version } => {
            let body = version.map(|v| {
                let json = serde_json::json!({ "version": v }).to_string();
                ("application/json", bytes::Bytes::from(json))
            });
            println!("rolled back to {}", hub.post("rollback", body)?);
        }
        Command::Plugins {
            admin,
            tenant,
            json,
        } => {
            let answer = admin_request(
                &admin,
                axum::http::Method::GET,
                &plugins_path(&tenant),
                None,
            )?;
            if json {
                println!("{answer}");
            } else {
                print!("{}", format_plugins(&answer));
            }
        }
        _ => unreachable!("run_admin gets admin commands only"),
    }
    Ok(())
}

async fn serve(
    config: Config,
    listen: SocketAddr,
    plugins: Option<PathBuf>,
    reload: impl Fn() -> anyhow::Result<Config> + Send + 'static,
) -> anyhow::Result<()> {
    let node = Node::start(config, plugins.as_deref()).await?;
    reload_on_hangup(node.clone(), reload)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    node.advertise(listener.local_addr()?);
    let draining = node.clone();
    let shutdown = async move {
        shutdown_signal().await;
        let timeout = Duration::from_secs(draining.config.drain_timeout_secs);
        draining.drain(timeout).await;
    };
    switchboard::server::serve(node, listener, shutdown).await?;
    Ok(())
}

/// Reloads the configuration on every SIGHUP; a config that does not load
/// (or that the node refuses) is logged, and the running one stays.
fn reload_on_hangup(
    node: std::sync::Arc<Node>,
    reload: impl Fn() -> anyhow::Result<Config> + Send + 'static,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Installed before the node listens: from then on SIGHUP never kills it.
        let mut hangups = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let applied = reload()
                    .map_err(|e| format!("{e:#}"))
                    .and_then(|config| node.reload(config));
                match applied {
                    Ok(done) => tracing::info!(
                        added = ?done.added,
                        removed = ?done.removed,
                        keys = ?done.keys,
                        replaced = ?done.replaced,
                        "config reloaded"
                    ),
                    Err(error) => tracing::error!(
                        %error,
                        "config reload refused; the running config stays"
                    ),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (node, reload);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn every_option_has_help_text() {
        let command = Cli::command();
        command.clone().debug_assert();
        for sub in command.get_subcommands() {
            assert!(sub.get_about().is_some(), "{} has no help", sub.get_name());
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some(),
                    "{} --{id} has no help",
                    sub.get_name()
                );
            }
        }
    }
}
