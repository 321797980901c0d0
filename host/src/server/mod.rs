//! The HTTP server: transports, health endpoints, graceful shutdown, and
//! the edge every peer meets before it is a connection.
//!
//! Our own accept loop (rather than `axum::serve`) so that hyper gets a timer
//! and limits:
//! - a request head must arrive within `request_headers_timeout_secs` of the
//!   server starting to wait for it: slow headers, sockets that send nothing,
//!   and idle keep-alive connections are all closed ([`Edge::http1`]);
//! - a request head is at most `max_request_head_bytes` (431 above);
//! - at most `max_connections` sockets hold a slot ([`slots`]); above that a
//!   few more are accepted for the operator's routes only and everything else
//!   on them is answered 503 ([`reserved`]);
//! - a failed accept (out of files) waits before the next ([`backoff`]).

pub mod backoff;
pub mod client_addr;
pub mod files;
pub mod reserved;
pub mod slots;
pub mod tls;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::node::Node;
use backoff::AcceptBackoff;
use reserved::{RESERVED_CONNECTIONS, Reserved, is_operator_path};
use slots::{Held, Slots};

/// The header timeout of a reserved connection (at most this, or the configured one).
const RESERVED_HEADERS_TIMEOUT: Duration = Duration::from_secs(5);

/// The state of the node's routes: each handler takes the part it uses.
#[derive(Clone, axum::extract::FromRef)]
struct AppState {
    node: Arc<Node>,
    api: Arc<crate::api::ApiState>,
    dashboard: Arc<crate::dashboard::Feed>,
}

/// Every route the node serves (client transports, the REST and admin APIs, the web pages, health,
/// readiness and metrics), with CORS and the access log.
pub fn app(node: Arc<Node>) -> Router {
    let clients = crate::transport::routes(Arc::new(node.transport_state()))
        .layer(crate::cors::layer(node.tenants.clone()))
        .layer(axum::middleware::from_fn_with_state(
            node.tenants.clone(),
            crate::cors::guard,
        ));
    Router::new()
        .merge(clients)
        .merge(crate::api::routes())
        .merge(crate::api::admin::routes())
        .merge(crate::web::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(crate::telemetry::access::log))
        .with_state(AppState {
            node: node.clone(),
            api: Arc::new(api_state(&node)),
            dashboard: Arc::default(),
        })
        // Outside the access log, so that its line carries the resolved address.
        .layer(axum::middleware::from_fn_with_state(
            node,
            client_addr::layer,
        ))
}

/// What the REST API reads of the node.
fn api_state(node: &Node) -> crate::api::ApiState {
    crate::api::ApiState {
        tenants: node.tenants.clone(),
        registry: node.registry.clone(),
        engine: node.engine.clone(),
        router: node.router.clone(),
        usage: node.usage.clone(),
        cluster: node.cluster.clone(),
        live: node.live_handle(),
        draining: node.draining.clone(),
    }
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

/// The edge's settings and state, shared by every connection task.
struct Edge {
    app: Router,
    slots: Arc<Slots>,
    reserved: Arc<Reserved>,
    http1: http1::Builder,
    reserved_http1: http1::Builder,
    /// TLS at the node (`[tls]`), or plain HTTP.
    tls: Option<Arc<tls::Tls>>,
    /// How long a TLS handshake may take (the header timeout).
    handshake_timeout: Duration,
}

impl Edge {
    fn new(node: Arc<Node>, tls: Option<Arc<tls::Tls>>) -> Edge {
        let config = &node.config;
        let max = max_connections(config);
        let headers_timeout = Duration::from_secs(config.request_headers_timeout_secs);
        let http1 = builder(config, headers_timeout, true);
        let reserved_http1 = builder(config, headers_timeout.min(RESERVED_HEADERS_TIMEOUT), false);
        Edge {
            app: app(node),
            slots: Slots::new(max),
            reserved: Reserved::new(RESERVED_CONNECTIONS),
            http1,
            reserved_http1,
            tls,
            handshake_timeout: headers_timeout,
        }
    }
}

fn builder(config: &Config, headers_timeout: Duration, keep_alive: bool) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(headers_timeout)
        .max_header_size(config.max_request_head_bytes)
        .keep_alive(keep_alive);
    builder
}

/// `max_connections`, or what the open-file limit leaves (see [`files`]).
fn max_connections(config: &Config) -> usize {
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|l| l.0);
    let open = files::open_files().unwrap_or(0);
    let max = match (config.max_connections, limit) {
        (Some(max), _) => max,
        (None, Some(limit)) => files::default_max_connections(limit, open, RESERVED_CONNECTIONS),
        (None, None) => 10_000,
    };
    if let Some(limit) = limit
        && !files::fits(limit, open, RESERVED_CONNECTIONS, max)
    {
        warn!(
            max_connections = max,
            open_file_limit = limit,
            open_files = open,
            reserve = files::FILE_RESERVE + RESERVED_CONNECTIONS,
            "max_connections is more than the open-file limit leaves: raise the limit (ulimit -n) or lower max_connections"
        );
    }
    max
}

/// Serves until `shutdown` resolves, then stops accepting, lets every HTTP
/// connection finish its request, and returns.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = match &node.config.tls {
        Some(files) => Some(
            tls::Tls::load(&files.cert_file, &files.key_file)
                .map_err(|e| std::io::Error::other(format!("TLS: {e}")))?,
        ),
        None => None,
    };
    let watcher = tls.clone().map(tls::Tls::watch);
    let edge = Arc::new(Edge::new(node.clone(), tls));
    info!(
        addr = %listener.local_addr()?,
        tls = edge.tls.is_some(),
        max_connections = edge.slots.max(),
        request_headers_timeout_secs = node.config.request_headers_timeout_secs,
        "listening"
    );
    drop(node);
    // Connection tasks watch `signal` for the shutdown and hold `close_rx`
    // until they end, so `close_tx.closed()` tells when all have.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    let (close_tx, close_rx) = watch::channel(());
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = signal_tx.closed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.succeeded();
                accepted
            }
            Err(e) => {
                metrics::counter!(crate::metrics::ACCEPT_ERRORS).increment(1);
                let verdict = backoff.failed(&e, Instant::now());
                if let Some(errors) = verdict.log {
                    warn!(error = %e, errors, wait_ms = verdict.wait.as_millis() as u64,
                        "accept failed; waiting before accepting again");
                }
                if !verdict.wait.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(verdict.wait) => {}
                        () = signal_tx.closed() => break,
                    }
                }
                continue;
            }
        };
        // Small frames (pings, single invocations) go out at once instead of waiting on Nagle.
        let _ = stream.set_nodelay(true);
        let task = (edge.clone(), signal_tx.clone(), close_rx.clone());
        match edge.slots.try_take() {
            Some(slot) => {
                tokio::spawn(with_tls(Held::new(stream, slot), task, move |io, task| {
                    serve_connection(io, task, peer)
                }));
            }
            None => {
                tokio::spawn(with_tls(stream, task, move |io, task| {
                    serve_reserved(io, task, peer)
                }));
            }
        }
    }
    drop(close_rx);
    drop(listener);
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    close_tx.closed().await;
    Ok(())
}

type Task = (Arc<Edge>, watch::Sender<()>, watch::Receiver<()>);

/// Runs `serve` on `stream`, through a TLS handshake first when the node
/// terminates TLS (bounded by the header timeout; a failed handshake is only
/// logged at debug: scanners and plain-HTTP clients cause them).
async fn with_tls<S, F, Fut>(stream: S, task: Task, serve: F)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(Io<S>, Task) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(tls) = task.0.tls.clone() else {
        return serve(Io::Left(stream), task).await;
    };
    let handshake = tls.acceptor().accept(stream);
    match tokio::time::timeout(task.0.handshake_timeout, handshake).await {
        Ok(Ok(stream)) => serve(Io::Right(Box::new(stream)), task).await,
        Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
        Err(_) => {
            metrics::counter!(crate::metrics::HTTP_HEADER_TIMEOUTS).increment(1);
            debug!("TLS handshake timed out");
        }
    }
}

/// A connection's byte stream: plain (left), or TLS over it (right).
type Io<S> = tokio_util::either::Either<S, Box<tokio_rustls::server::TlsStream<S>>>;

/// A connection with a slot: every route, WebSocket upgrades included. The
/// slot stays with the socket (through an upgrade) until it is dropped.
/// Every request carries the socket's peer (axum's `ConnectInfo`).
async fn serve_connection(
    stream: Io<Held<TcpStream, slots::Slot>>,
    task: Task,
    peer: std::net::SocketAddr,
) {
    let (edge, signal, _close) = task;
    let app = edge
        .app
        .clone()
        .map_request(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            request
        });
    let service = TowerToHyperService::new(app);
    let conn = edge
        .http1
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = pin!(conn);
    let mut stopping = pin!(signal.closed());
    let mut shut_down = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                note_end(result);
                return;
            }
            () = &mut stopping, if !shut_down => {
                shut_down = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A connection accepted above the cap: one request, answered only for the
/// operator's routes; closed early when a newer one needs its place.
async fn serve_reserved(stream: Io<TcpStream>, task: Task, peer: std::net::SocketAddr) {
    let (edge, signal, _close) = task;
    let (place, evicted_another) = edge.reserved.enter();
    if evicted_another {
        metrics::counter!(crate::metrics::HTTP_RESERVED_EVICTED).increment(1);
    }
    let app = edge.app.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let app = app.clone();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        async move {
            if is_operator_path(request.uri().path()) {
                app.oneshot(request).await
            } else {
                metrics::counter!(crate::metrics::HTTP_REFUSED).increment(1);
                Ok(at_capacity())
            }
        }
    });
    let conn = edge
        .reserved_http1
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = pin!(conn);
    tokio::select! {
        result = conn.as_mut() => note_end(result),
        () = place.evicted.cancelled() => debug!("reserved connection closed for a newer one"),
        () = signal.closed() => {}
    }
}

/// The answer to a request that found every connection slot taken.
fn at_capacity() -> axum::response::Response {
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        "The server is at its connection limit (max_connections); try again later.",
    )
        .into_response()
}

fn note_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        if e.is_timeout() {
            metrics::counter!(crate::metrics::HTTP_HEADER_TIMEOUTS).increment(1);
        }
        debug!(error = %e, "connection ended with an error");
    }
}
