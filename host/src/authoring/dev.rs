//! `switchboard dev`: build a hub project, deploy it to a running node, and
//! do it again on every source change, printing build and validation errors
//! in the terminal. A failed build or a refused component leaves the last
//! good version serving.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use notify::{RecursiveMode, Watcher};

use super::project::{BuildPlan, Project, is_source_change};
use crate::api::admin_client::{AdminArgs, format_version, hub_path};

/// The longest one build may take (a first Rust build fetches and compiles
/// the SDK's dependencies; a Python build embeds CPython).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the files must stay unchanged before a rebuild starts, so that
/// an editor's save (often several writes) builds once.
pub const SETTLE: Duration = Duration::from_millis(300);

/// Where `dev` deploys and what it watches (the command line's options).
#[derive(Debug, clap::Args)]
pub struct DevOptions {
    /// The project folder (with its switchboard.toml).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The node's admin API.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Deploy to this tenant instead of the project's.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Deploy as this hub instead of the project's.
    #[arg(long)]
    pub hub: Option<String>,
    /// Build and deploy once, then exit (non-zero if either failed).
    #[arg(long)]
    pub once: bool,
}

/// How one round ended.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    Deployed,
    BuildFailed,
    Refused,
}

/// Runs `dev` until interrupted (or once, with `--once`).
pub fn run(options: DevOptions) -> anyhow::Result<()> {
    let dir = std::fs::canonicalize(&options.dir)
        .with_context(|| format!("cannot open {}", options.dir.display()))?;
    let project = Project::load(&dir)?;
    let tenant = options.tenant.clone().unwrap_or(project.tenant.clone());
    let hub = options.hub.clone().unwrap_or(project.hub.clone());
    let cargo_target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from);
    let plan = project.build_plan(&dir, cargo_target.as_deref());
    let client = options.admin.client()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let deploy = |wasm: Vec<u8>| -> Round {
        let path = hub_path(&tenant, &hub, "deploy");
        let body = Some(("application/wasm", bytes::Bytes::from(wasm)));
        // The client gives up after DEPLOY_TIMEOUT.
        let answer = runtime.block_on(client.request_body(axum::http::Method::POST, &path, body));
        match answer {
            Ok(response) if response.status < 400 => {
                let answer = serde_json::from_str(&response.body).unwrap_or_default();
                println!("deployed {}", format_version(&answer));
                Round::Deployed
            }
            Ok(response) => {
                println!(
                    "deploy refused ({}): {}; the last good version keeps serving",
                    response.status,
                    response.body.trim()
                );
                Round::Refused
            }
            Err(e) => {
                println!("deploy failed: {e}; the last good version keeps serving");
                Round::Refused
            }
        }
    };
    let round = || -> Round {
        println!("building {tenant}/{hub} ({})", project.lang.name());
        match build(&dir, &plan) {
            Ok(wasm) => deploy(wasm),
            Err(e) => {
                println!("build failed: {e}; the last good version keeps serving");
                Round::BuildFailed
            }
        }
    };

    if options.once {
        return match round() {
            Round::Deployed => Ok(()),
            Round::BuildFailed => anyhow::bail!("the build failed"),
            Round::Refused => anyhow::bail!("the node refused the component"),
        };
    }

    let (events, changes) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // The receiver only goes away when dev exits.
        let _ = events.send(event);
    })
    .context("cannot watch the project")?;
    watcher
        .watch(&dir, RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    round();
    println!("watching {} for changes (Ctrl-C to stop)", dir.display());
    loop {
        // Wait for a source change, then for the files to settle.
        let first = changes.recv().context("the file watcher stopped")?;
        if !touches_source(&dir, &first) {
            continue;
        }
        while let Ok(_more) = changes.recv_timeout(SETTLE) {}
        round();
    }
}

/// Whether a watcher event names a file whose change needs a rebuild.
fn touches_source(dir: &Path, event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(event) if !event.kind.is_access() => {
            event.paths.iter().any(|path| is_source_change(dir, path))
        }
        Ok(_) => false,
        // A lost event may have been a change: rebuild rather than miss it.
        Err(_) => true,
    }
}

/// Why a build produced no component.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The build tool could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The tool.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It failed (its own output above says why).
    #[error("{program} exited with {status}")]
    Failed {
        /// The tool.
        program: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// It ran past [`BUILD_TIMEOUT`] and was stopped.
    #[error("{program} took longer than {BUILD_TIMEOUT:?} and was stopped")]
    TimedOut {
        /// The tool.
        program: String,
    },
    /// It succeeded but the component is not where it should be.
    #[error("the build wrote no {0}")]
    NoArtifact(PathBuf),
}

/// Runs the build in `dir` (its output goes to the terminal) and reads the
/// component it wrote.
fn build(dir: &Path, plan: &BuildPlan) -> Result<Vec<u8>, BuildError> {
    let program = plan.program.clone();
    let mut child = Command::new(&plan.program)
        .args(&plan.args)
        .current_dir(dir)
        .spawn()
        .map_err(|source| BuildError::Spawn {
            program: program.clone(),
            source,
        })?;
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BuildError::TimedOut { program });
            }
        }
    };
    if !status.success() {
        return Err(BuildError::Failed { program, status });
    }
    std::fs::read(&plan.artifact).map_err(|_| BuildError::NoArtifact(plan.artifact.clone()))
}
