//! Deploys on file drop: watches the plugin folder (`--plugins DIR`) and
//! deploys `DIR/{tenant}/{hub}.wasm` when it changes, as `switchboard
//! deploy` would (cluster-wide in a cluster).
//!
//! A file is read once it has been quiet for [`QUIET`], so a copy in
//! progress is not read half-way. A file read half-written anyway fails
//! validation: that is logged, the running version keeps serving, and the
//! file's next change (the rest of the write) is tried again. Removing a
//! file does not undeploy its hub.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::Node;
use crate::plugin::registry::{self, hub_of_file};
use crate::plugin::versions::Source;

/// How long a file must stay unchanged before it is read.
pub const QUIET: Duration = Duration::from_millis(200);

/// Whether an event may mean new content in a file.
fn is_write(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

/// Starts watching `dir` for as long as the node lives.
pub fn spawn(node: Weak<Node>, dir: PathBuf) -> notify::Result<()> {
    // Events name absolute paths: compare them with the absolute folder.
    let dir = std::fs::canonicalize(&dir).map_err(notify::Error::io)?;
    let (tx, rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if is_write(&event.kind) => {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "plugin folder watch error"),
        })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    info!(dir = %dir.display(), "watching the plugin folder");
    tokio::spawn(async move {
        // The watcher stops when dropped: it lives as long as this task.
        let _watcher = watcher;
        run(node, dir, rx).await;
    });
    Ok(())
}

async fn run(node: Weak<Node>, dir: PathBuf, mut changes: mpsc::UnboundedReceiver<PathBuf>) {
    // Each changed file and when it last changed.
    let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
    loop {
        let next_due = pending.values().min().map(|t| *t + QUIET);
        tokio::select! {
            change = changes.recv() => match change {
                Some(path) => {
                    if hub_of_file(&dir, &path).is_some() {
                        pending.insert(path, Instant::now());
                    }
                }
                None => return,
            },
            () = sleep_until(next_due) => {
                let now = Instant::now();
                let due: Vec<PathBuf> = pending
                    .iter()
                    .filter(|(_, t)| **t + QUIET <= now)
                    .map(|(p, _)| p.clone())
                    .collect();
                for path in due {
                    pending.remove(&path);
                    let Some(node) = node.upgrade() else {
                        return;
                    };
                    deploy_file(&node, &dir, &path).await;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn deploy_file(node: &Node, dir: &Path, path: &Path) {
    let Some(hub) = hub_of_file(dir, path) else {
        return;
    };
    let wasm = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        // Gone again (a temporary file renamed away, or deleted).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            error!(path = %path.display(), error = %e, "cannot read plugin file");
            return;
        }
    };
    let source = path.display().to_string();
    match registry::deploy(node.plugins(), hub.clone(), wasm, Source::File, source).await {
        Ok(deployed) if deployed.changed => info!(
            path = %path.display(),
            hub = %hub,
            version = deployed.info.version,
            "plugin file deployed"
        ),
        Ok(_) => {}
        Err(e) => error!(
            path = %path.display(),
            hub = %hub,
            error = %e,
            "plugin file rejected; the running version keeps serving (the file is tried again when it changes)"
        ),
    }
}
