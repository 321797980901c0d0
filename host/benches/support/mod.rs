//! What the benches share.

use switchboard::address::HubKey;
use switchboard::node::Node;
use switchboard::plugin::CallEnv;

/// A call to the `demo` tenant's hub `key`, made for connection `c1`.
pub(crate) fn demo_env(node: &Node, key: &HubKey) -> CallEnv {
    CallEnv {
        tenant: node.tenants.get("demo").expect("demo").clone(),
        hub: key.clone(),
        router: node.router.clone(),
        // The context names connection c1; no such connection is held here.
        caller: None,
        receipts: Default::default(),
    }
}
