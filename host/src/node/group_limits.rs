//! The node's tenants as the router sees their groups-per-connection limit.

use std::sync::Weak;

use super::Node;
use crate::address::HubKey;
use crate::router::{GroupLimits, MAX_GROUPS_PER_CONNECTION};
use crate::tenant::limits::{Limit, record_hit};

/// The node's tenants as the router sees their groups-per-connection limit.
#[derive(Debug)]
pub(super) struct NodeGroupLimits(pub Weak<Node>);

impl GroupLimits for NodeGroupLimits {
    fn groups_per_connection(&self, hub: &HubKey) -> usize {
        self.0
            .upgrade()
            .and_then(|node| {
                node.tenants
                    .get(&hub.tenant)
                    .map(|t| t.limits().groups_per_connection)
            })
            .unwrap_or(MAX_GROUPS_PER_CONNECTION)
    }

    fn reached(&self, hub: &HubKey, max: usize) {
        match self.0.upgrade() {
            Some(node) => node.usage.tenant(&hub.tenant).hit(
                hub,
                Limit::GroupsPerConnection,
                &format!("a connection was refused a group beyond its {max}"),
            ),
            None => record_hit(hub, Limit::GroupsPerConnection),
        }
    }
}
