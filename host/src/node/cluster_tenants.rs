//! The cluster's tenants (the admin API's, in the tenant store) applied to
//! this node: at start, as the store's watch reports them, and when the
//! admin API deletes one here.

use tracing::{info, warn};

use super::Node;
use crate::tenant::Applied;
use crate::tenant::cluster::{Change, TenantStoreError};

/// Removes what this node serves of a deleted tenant: its hubs, and its
/// connections, closed with `reason`. Returns how many were closed.
pub fn close_local(node: &Node, name: &str, reason: &str) -> usize {
    node.registry.remove_tenant(name);
    let mut closed = 0;
    for connection in node.router.local_connections() {
        if *connection.hub.tenant == *name {
            connection.abort(reason);
            closed += 1;
        }
    }
    closed
}

/// Applies one change of the store to this node.
pub async fn apply(node: &Node, change: Change) {
    match change {
        Change::Put {
            name,
            config,
            revision,
        } => match node.tenants.apply_stored(&name, *config, revision) {
            Ok(Applied::Created(_)) => {
                info!(tenant = %name, revision, "tenant created in the cluster");
                // Hubs deployed to the tenant before it existed here.
                if let Err(e) = crate::plugin::store::sync_all(node.plugins(), Some(&name)).await {
                    warn!(tenant = %name, error = %e, "cannot load the tenant's cluster plugin versions");
                }
            }
            Ok(Applied::Keys) => {
                info!(tenant = %name, revision, "tenant keys changed in the cluster")
            }
            Ok(Applied::Replaced) => {
                info!(tenant = %name, revision, "tenant settings changed in the cluster")
            }
            Ok(Applied::FileTenant) => warn!(
                tenant = %name,
                "the cluster has an admin-API tenant of this name; this node keeps the one of its config file"
            ),
            Ok(Applied::Unchanged | Applied::Stale) => {}
            Err(e) => {
                warn!(tenant = %name, revision, error = %e, "cannot apply the cluster's tenant here")
            }
        },
        Change::Delete {
            name,
            reason,
            revision,
        } => {
            if node.tenants.remove_stored(&name, revision).is_some() {
                let closed = close_local(node, &name, &reason);
                info!(tenant = %name, closed, "tenant deleted in the cluster");
            }
        }
    }
}

/// Applies every tenant of the store to this node; returns how many there are.
pub async fn sync_all(node: &Node) -> Result<usize, TenantStoreError> {
    let Some(store) = node.tenant_store.clone() else {
        return Ok(0);
    };
    let changes = store.all().await?;
    let count = changes.len();
    for change in changes {
        apply(node, change).await;
    }
    Ok(count)
}
