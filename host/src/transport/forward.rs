//! Requests for a connection that another node holds. Behind a load balancer
//! without sticky sessions, negotiate lands on one node and each later request
//! of the same connection (the WebSocket upgrade, the SSE stream, every long
//! poll, POST and DELETE) on any node. The node that gets such a request
//! forwards it, unchanged, to the node that negotiated the connection, and
//! streams the answer back (a WebSocket or an SSE stream for as long as it
//! lasts).
//!
//! Why forward rather than redirect: a negotiate redirect (`url` in the
//! negotiate answer) only works when clients can reach each node directly;
//! behind a plain load balancer every request comes back through it. Any node
//! reaches any other inside the cluster, so forwarding works with any
//! balancer, round robin included.
//!
//! How a node finds the owner: in a cluster, connection ids and tokens end in
//! `.{node id}` of the node that negotiated them ([`tag`]), and the cluster
//! registry maps node ids to the URL each node advertises
//! (`nats.advertise_url`). Only registered nodes are targets, so a client
//! cannot make a node call an address of its choosing. A forwarded request
//! carries [`FORWARDED_HEADER`] and is never forwarded again, so a stale
//! registry cannot make requests loop.

use std::sync::LazyLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tracing::{debug, warn};

use super::TransportState;
use super::query_param;

/// Marks a request one node forwarded to another (its value: the sender's node id).
pub const FORWARDED_HEADER: &str = "sb-forwarded";

/// How long a node waits to connect to another before the connection counts as gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a node waits for another's answer to a forwarded WebSocket upgrade.
const UPGRADE_ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// Headers that belong to one hop, not to the request (RFC 9110 7.6.1).
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::HOST,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Forwards that could not reach their node, for rate-limited logging.
static FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One pool of keep-alive connections to the other nodes, for the whole process.
static CLIENT: LazyLock<Client<HttpConnector, Body>> = LazyLock::new(|| {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new()).build(connector)
});

/// `id` tagged with the node that made it.
pub fn tag(id: &str, node: &str) -> String {
    format!("{id}.{node}")
}

/// The node an id was tagged with, if it carries a well-formed tag (node ids
/// are 16 lowercase hex digits).
pub fn owner(id: &str) -> Option<&str> {
    let (_, node) = id.rsplit_once('.')?;
    (node.len() == 16 && node.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some(node)
}

/// The URL of the node a transport request belongs to, when that is another
/// node: in a cluster, for an `id` this node does not hold and that another
/// registered node made. None means: handle it here.
pub async fn destination(
    node: &TransportState,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Option<String> {
    let cluster = node.connections.cluster.as_ref()?;
    if headers.contains_key(FORWARDED_HEADER) {
        return None;
    }
    let id = query_param(query, "id")?;
    let owner = owner(id)?;
    if owner == cluster.node_id() || node.http_connections.get(id).is_some() {
        return None;
    }
    let url = cluster.node_url(owner).await;
    if url.is_none() {
        debug!(node = owner, "request for a connection of an unknown node");
    }
    url
}

/// Whether a request asks to switch protocols (a WebSocket upgrade).
fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// The end-to-end headers of `from`, plus, for an upgrade, the headers that ask for it.
fn forwardable(from: &HeaderMap, upgrade: bool) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(from.len() + 1);
    for (name, value) in from {
        if !HOP_BY_HOP.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(protocol) = from.get(header::UPGRADE) {
            headers.insert(header::UPGRADE, protocol.clone());
        }
    }
    headers
}

/// Forwards `request` to the node at `base` and answers with what it answers.
/// An upgrade is answered with the owner's 101 and then piped both ways.
///
/// When the owner cannot be reached (it died within the registry TTL), a GET
/// (a WebSocket, an SSE stream or a poll, which may start or resume a
/// connection) is handed back untouched, for this node to handle as its own;
/// a POST or DELETE, whose body is spent, gets the 404 of an unknown
/// connection, so the client starts over.
///
/// A forwarded WebSocket on which the owner sends nothing for `silence` is
/// cut: a live owner pings every keep-alive interval, so the owner hangs (a
/// paused process), and the client, whose socket drops, resumes elsewhere
/// (with durable resume, a node takes the connection over). Its own server
/// timeout would instead make the official client give its connection up.
pub async fn proxy(
    base: &str,
    from_node: &str,
    silence: Duration,
    request: Request,
) -> Result<Response, Request> {
    let kind = kind(&request);
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let Ok(uri) = format!("{}{path}", base.trim_end_matches('/')).parse::<Uri>() else {
        warn!(
            base,
            "a node advertises an invalid URL; request not forwarded"
        );
        return Err(request);
    };
    let upgrade = is_upgrade(request.headers());
    let mut headers = forwardable(request.headers(), upgrade);
    if let Ok(value) = HeaderValue::from_str(from_node) {
        headers.insert(FORWARDED_HEADER, value);
    }
    let (parts, body) = request.into_parts();
    // A GET sends no body: keep it (and the client's upgrade) to hand back.
    let keep = parts.method == Method::GET;
    let client_side = upgrade
        .then(|| parts.extensions.get::<hyper::upgrade::OnUpgrade>().cloned())
        .flatten();
    let (out_body, kept_body) = if keep {
        (Body::empty(), Some(body))
    } else {
        (body, None)
    };
    let mut out = Request::new(out_body);
    *out.method_mut() = parts.method.clone();
    *out.uri_mut() = uri;
    *out.headers_mut() = headers;
    // A WebSocket upgrade is answered at once by a live node: one that
    // accepts the connection but does not answer (a paused process) counts as gone.
    let answered = if upgrade {
        tokio::time::timeout(UPGRADE_ANSWER_TIMEOUT, CLIENT.request(out))
            .await
            .map_err(|_| "no answer to the upgrade in time".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string()))
    } else {
        CLIENT.request(out).await.map_err(|e| e.to_string())
    };
    let mut response = match answered {
        Ok(response) => response,
        Err(e) => {
            metrics::counter!("switchboard_transport_forward_failed_total", "kind" => kind)
                .increment(1);
            // 1, 2, 4, 8, ... failures: a dead node's clients do not flood the log.
            let failures = FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if failures.is_power_of_two() {
                warn!(to = base, kind, failures, error = %e, "cannot reach the node holding the connection");
            }
            return match kept_body {
                Some(body) => Err(Request::from_parts(parts, body)),
                None => Ok(gone()),
            };
        }
    };
    metrics::counter!("switchboard_transport_forwarded_total", "kind" => kind).increment(1);
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let Some(client_side) = client_side
        && switching
    {
        let owner_side = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let (client, owner) = match tokio::join!(client_side, owner_side) {
                (Ok(client), Ok(owner)) => (client, owner),
                (Err(e), _) | (_, Err(e)) => {
                    debug!(error = %e, "forwarded upgrade did not complete");
                    return;
                }
            };
            tunnel(TokioIo::new(client), TokioIo::new(owner), silence).await;
        });
    }
    let (mut answer, body) = response.into_parts();
    if !switching {
        for name in HOP_BY_HOP {
            answer.headers.remove(name);
        }
    }
    Ok(Response::from_parts(answer, Body::new(body)))
}

/// Copies a forwarded WebSocket both ways until either side ends, or the
/// owner says nothing for `silence`.
async fn tunnel<C, O>(client: C, owner: O, silence: Duration)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    O: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut owner_read, mut owner_write) = tokio::io::split(owner);
    let up = std::pin::pin!(async {
        let _ = tokio::io::copy(&mut client_read, &mut owner_write).await;
        let _ = owner_write.shutdown().await;
    });
    let mut down = std::pin::pin!(async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match tokio::time::timeout(silence, owner_read.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => {
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                Err(_) => {
                    metrics::counter!("switchboard_transport_forward_silent_total").increment(1);
                    debug!(
                        ?silence,
                        "the node holding a forwarded WebSocket went silent; cutting it"
                    );
                    break;
                }
            }
        }
        let _ = client_write.shutdown().await;
    });
    tokio::select! {
        () = up => down.await,
        () = &mut down => {}
    }
}

/// What a transport request is, for metrics (a bounded label).
fn kind(request: &Request) -> &'static str {
    let headers = request.headers();
    match *request.method() {
        Method::POST => "send",
        Method::DELETE => "delete",
        Method::GET if is_upgrade(headers) => "websocket",
        Method::GET if super::accepts_event_stream(headers) => "sse",
        Method::GET => "poll",
        _ => "other",
    }
}

fn gone() -> Response {
    (StatusCode::NOT_FOUND, "No Connection with that ID").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_their_node_and_nothing_else_parses() {
        let id = tag("AbC-_x9", "0123456789abcdef");
        assert_eq!(id, "AbC-_x9.0123456789abcdef");
        assert_eq!(owner(&id), Some("0123456789abcdef"));
        for untagged in [
            "AbC-_x9",
            "a.0123456789ABCDEF",
            "a.0123456789abcde",
            "a.0123456789abcdef0",
            "a.0123456789abcdeg",
            "a.",
            "",
            "0123456789abcdef",
            "a.http://evil:1/",
        ] {
            assert_eq!(owner(untagged), None, "{untagged}");
        }
    }

    #[test]
    fn upgrade_requests_keep_their_upgrade_headers_only() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("lb:80"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("sec-websocket-key", HeaderValue::from_static("k"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        assert!(is_upgrade(&h));
        let out = forwardable(&h, true);
        assert_eq!(
            out.get(header::CONNECTION).map(|v| v.as_bytes()),
            Some(&b"upgrade"[..])
        );
        assert_eq!(
            out.get(header::UPGRADE).map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        assert!(out.get(header::HOST).is_none());
        assert!(out.get("sec-websocket-key").is_some() && out.get(header::AUTHORIZATION).is_some());

        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert!(!is_upgrade(&h));
        let out = forwardable(&h, false);
        for name in [
            header::CONNECTION,
            header::UPGRADE,
            header::TRANSFER_ENCODING,
        ] {
            assert!(out.get(&name).is_none(), "{name}");
        }
    }
}
