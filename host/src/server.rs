//! The HTTP server: transports, health endpoints, graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::info;

use crate::node::Node;

pub fn app(node: Arc<Node>) -> Router {
    Router::new()
        .merge(crate::transport::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }))
        .with_state(node)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    info!(addr = %listener.local_addr()?, "listening");
    axum::serve(listener, app(node))
        .with_graceful_shutdown(shutdown)
        .await
}
