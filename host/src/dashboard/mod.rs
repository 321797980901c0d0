//! The live dashboard's server side: the built-in admin hub
//! (`/dashboard/hub`) that pushes a snapshot of the node every second to
//! each open dashboard page (the page itself is in `web`).
//!
//! - [`hub`]: the SignalR endpoint (negotiate, WebSocket, handshake), admins only.
//! - [`feed`]: one sampler per node, running only while a dashboard is open.
//! - [`snapshot`]: rates, p99s and events from two readings (pure).
//! - [`prom`]: the node's Prometheus text read back into numbers (pure).
//!
//! Deploys and rollbacks from the page go through the admin API (`/admin/v1`).

pub mod feed;
pub mod hub;
pub mod prom;
pub mod snapshot;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::node::Node;

pub use feed::Feed;

/// The dashboard hub, on any state that holds the node and its feed.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Node>: axum::extract::FromRef<S>,
    Arc<Feed>: axum::extract::FromRef<S>,
{
    Router::new()
        .route("/dashboard/hub/negotiate", post(hub::negotiate))
        .route("/dashboard/hub", get(hub::connect))
}
