//! The `switchboard` command: run a node, or mint a development token.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use switchboard::config::Config;
use switchboard::node::Node;
use switchboard::tenant::auth::mint_token;
use tracing_subscriber::EnvFilter;

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
    /// Run a node.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:5000")]
        listen: SocketAddr,
        /// Folder of plugins as DIR/{tenant}/{hub}.wasm; adds to or replaces bundled hubs.
        #[arg(long)]
        plugins: Option<PathBuf>,
        /// TOML file with tenants, keys and limits (default: the `demo` tenant).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a client token (HS256 JWT) signed with the tenant's first key.
    Token {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        config: Option<PathBuf>,
        /// How long the token is valid, in seconds.
        #[arg(long, default_value_t = 24 * 3600)]
        ttl_secs: u64,
    },
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Ok(Config::load(path)?),
        None => Ok(Config::builtin()),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            plugins,
            config,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init();
            let config = load_config(config.as_ref())?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(serve(config, listen, plugins))
        }
        Command::Token {
            tenant,
            user,
            config,
            ttl_secs,
        } => {
            let config = load_config(config.as_ref())?;
            let Some(tenant_config) = config.tenants.get(&tenant) else {
                bail!("unknown tenant '{tenant}'");
            };
            let Some(key) = tenant_config.signing_keys.first() else {
                bail!("tenant '{tenant}' has no signing_keys");
            };
            let token = mint_token(
                key,
                &user,
                Duration::from_secs(ttl_secs),
                Default::default(),
            )?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(config: Config, listen: SocketAddr, plugins: Option<PathBuf>) -> anyhow::Result<()> {
    let node = Node::start(config, plugins.as_deref()).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    switchboard::server::serve(node, listener, shutdown_signal()).await?;
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
