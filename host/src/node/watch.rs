//! The node's watches of the cluster's stores (tenants, plugin versions):
//! each runs again a second after it ends or fails (NATS went away, the
//! bucket was recreated), for as long as the node lives, and catches up on
//! what changed meanwhile by itself.

use std::fmt::Display;
use std::future::Future;
use std::sync::Weak;
use std::time::Duration;

use tracing::debug;

use super::Node;

/// How long a watch that ended or failed waits before it starts again.
const RETRY: Duration = Duration::from_secs(1);

/// Spawns a task that runs `watch` on the store `store_of` finds on the
/// node, again and again, [`RETRY`] apart, until the node is gone or has no
/// such store. `what` names the store in the logs.
pub fn spawn_retrying<S, E, F, Fut>(
    what: &'static str,
    node: Weak<Node>,
    store_of: impl Fn(&Node) -> Option<S> + Send + 'static,
    watch: F,
) where
    S: Send + 'static,
    E: Display + Send + 'static,
    F: Fn(Weak<Node>, S) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Some(store) = node.upgrade().and_then(|n| store_of(&n)) else {
                return;
            };
            match watch(node.clone(), store).await {
                Ok(()) => debug!("{what} watch ended; restarting"),
                Err(e) => debug!(error = %e, "{what} watch failed; retrying"),
            }
            tokio::time::sleep(RETRY).await;
        }
    });
}

/// Watches the cluster's tenant store and applies its changes.
pub fn tenants(node: Weak<Node>) {
    spawn_retrying(
        "tenant store",
        node,
        |n| n.tenant_store.clone(),
        |node, store| async move {
            crate::tenant::cluster::watch_once(&store, |change| {
                let node = node.clone();
                async move {
                    let Some(node) = node.upgrade() else {
                        return false;
                    };
                    super::cluster_tenants::apply(&node, change).await;
                    true
                }
            })
            .await
        },
    );
}

/// Watches the cluster's plugin store and applies changed manifests.
pub fn plugins(node: Weak<Node>) {
    spawn_retrying(
        "plugin store",
        node,
        |n| n.registry.store().cloned(),
        |node, store| async move {
            crate::plugin::store::watch_once(&store, |hub, manifest| {
                let node = node.clone();
                async move {
                    let Some(node) = node.upgrade() else {
                        return false;
                    };
                    crate::plugin::registry::apply_manifest(node.plugins(), hub, manifest).await;
                    true
                }
            })
            .await
        },
    );
}
