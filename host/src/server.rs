//! The HTTP server: transports, health endpoints, graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tracing::info;

use crate::node::Node;

pub fn app(node: Arc<Node>) -> Router {
    Router::new()
        .merge(crate::transport::routes())
        .merge(crate::api::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(node)
}

/// 200 when the node can serve; 503 while a cluster node has lost NATS
/// (it still serves its local connections, but a load balancer should
/// prefer other nodes).
async fn readyz(
    axum::extract::State(node): axum::extract::State<Arc<Node>>,
) -> (axum::http::StatusCode, &'static str) {
    if node.is_ready() {
        (axum::http::StatusCode::OK, "ready")
    } else if node.is_draining() {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down",
        )
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not ready: NATS disconnected",
        )
    }
}

/// The node's metrics in Prometheus text format (version 0.0.4).
async fn metrics() -> axum::response::Response {
    use axum::response::IntoResponse;
    match crate::metrics::render() {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed",
        )
            .into_response(),
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    info!(addr = %listener.local_addr()?, "listening");
    // Small frames (pings, single invocations) go out at once instead of waiting on Nagle.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app(node))
        .with_graceful_shutdown(shutdown)
        .await
}
