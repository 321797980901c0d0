//! HTTP in, frames out: negotiate, and the three transports that carry a
//! connection.
//!
//! Every request after negotiate goes to the hub URL itself, told apart by
//! method and headers as ASP.NET does (TransportProtocols.md):
//!
//! | request | what |
//! |---|---|
//! | `GET` with a WebSocket upgrade | WebSockets ([`websocket`]) |
//! | `GET` with `Accept: text/event-stream` | Server-Sent Events ([`sse`]) |
//! | any other `GET` | a long poll ([`long_polling`]) |
//! | `POST` | a send, for SSE and long polling |
//! | `DELETE` | the end of a long-polling connection |
//!
//! Requests after the first find their connection in [`HttpConnections`]
//! (module `http_connections`), by the `id` the client sends. Refusals and
//! their status codes are in [`RequestError`]. In a cluster, a request for
//! a connection another node holds is forwarded there ([`forward`]).

mod auth;
mod error;
pub mod forward;
mod http_connections;
mod long_polling;
mod negotiate;
mod sse;
mod state;
mod websocket;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::{debug, info};

use crate::address::HubKey;
use crate::connection::{Accepted, Negotiated, new_id};
use crate::outbound::{RequestInfo, Visible};
use crate::protocol::TransferFormat;
use crate::tenant::{Identity, Tenant};

pub use auth::bearer_token;
pub use error::RequestError;
use http_connections::{HttpConnection, Registration};
pub use http_connections::{HttpConnections, TransportKind};
pub use long_polling::LONG_POLLING_FORMATS;
pub use sse::SSE_FORMATS;
pub use state::{Connections, TransportSettings, TransportState, resolve_hub};

/// Transfer formats WebSockets carry: text frames for JSON, binary for MessagePack.
pub const WEBSOCKET_FORMATS: &[TransferFormat] = &[TransferFormat::Text, TransferFormat::Binary];

/// The routes of negotiate and the transports, on `state`.
pub fn routes<S>(state: Arc<TransportState>) -> Router<S> {
    Router::new()
        .route("/hubs/{tenant}/{hub}/negotiate", post(negotiate::negotiate))
        .route(
            "/hubs/{tenant}/{hub}",
            get(connect).post(send).delete(close),
        )
        .with_state(state)
}

/// Query parameters as a list; SignalR reads its own keys case-insensitively.
pub type QueryList = Query<Vec<(String, String)>>;

/// The value of the query parameter `name`, matched ASCII case-insensitively; the first if
/// repeated.
pub fn query_param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn not_found_hub() -> Response {
    (StatusCode::NOT_FOUND, "No such tenant or hub").into_response()
}

fn no_such_connection() -> Response {
    (StatusCode::NOT_FOUND, "No Connection with that ID").into_response()
}

/// `GET /hubs/{tenant}/{hub}?id=...`: a WebSocket, an SSE stream or a long poll.
async fn connect(
    State(node): State<Arc<TransportState>>,
    HubRequest(tenant, key, query, request): HubRequest,
) -> Response {
    // A resume of a durable connection this node does not hold: its owner
    // may be gone, and this node takes it over.
    if let Some(token) = query_param(&query, "id")
        && request.headers().contains_key(header::UPGRADE)
        && (crate::connection::takeover::may_take_over(&node.connections, token)
            || crate::connection::takeover::claimed_elsewhere(&node.connections, token).await)
    {
        let token = token.to_owned();
        return take_over_websocket(node, tenant, key, token, query, request).await;
    }
    let (mut parts, _body) = request.into_parts();
    let upgrade = websocket::Upgrade::from_parts(&mut parts);
    let client = crate::address::client::of(&parts.extensions);
    let headers = parts.headers;
    if let Some(upgrade) = upgrade {
        return connect_websocket(node, tenant, key, query, headers, upgrade, client).await;
    }
    let result = async {
        let caller = Caller::of(tenant, key, &headers, &query).await?;
        if accepts_event_stream(&headers) {
            sse::connect(node, caller).await
        } else {
            long_polling::poll(node, caller).await
        }
    };
    result.await.unwrap_or_else(|e| {
        debug!(error = %e, "transport request refused");
        e.into_response()
    })
}

/// `POST /hubs/{tenant}/{hub}?id=...`: what an SSE or long-polling client
/// sends, one or more records (possibly partial); 200 once handed on.
async fn send(
    State(node): State<Arc<TransportState>>,
    HubRequest(tenant, key, query, request): HubRequest,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let sent = async {
        let Caller {
            key, identity, id, ..
        } = Caller::of(tenant, key, &headers, &query).await?;
        let Some(connection) = node.http_connections.get(id).filter(|c| c.hub == key) else {
            return send_early(&node, &key, id, &identity, body).await;
        };
        if connection.kind == TransportKind::WebSockets {
            return Err(RequestError::PostToWebSocket);
        }
        connection.check_user(&identity)?;
        connection.post(body).await
    };
    match sent.await {
        Ok(()) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "").into_response(),
        // Not an error worth more: a long-polling client's Close message
        // routinely arrives after its DELETE and meets this 404.
        Err(e) => {
            debug!(error = %e, "send refused");
            e.into_response()
        }
    }
}

/// A POST to a negotiated connection whose transport has not started: kept
/// for it (ASP.NET accepts it, as the connection exists from negotiate; a
/// long-polling client may send its handshake before its first poll).
async fn send_early(
    node: &TransportState,
    key: &HubKey,
    id: &str,
    identity: &Identity,
    body: axum::body::Body,
) -> Result<(), RequestError> {
    use crate::connection::{EARLY_BYTES, EarlyRefused};
    use http_body_util::BodyExt;
    if !node.connections.pending.contains(id) {
        return Err(RequestError::UnknownConnection);
    }
    let data = http_body_util::Limited::new(body, EARLY_BYTES)
        .collect()
        .await
        .map_err(|_| RequestError::EarlyTooLarge)?
        .to_bytes();
    node.connections
        .pending
        .append_early(id, data, |n| {
            n.hub == *key && n.identity.user_id == identity.user_id
        })
        .map_err(|e| match e {
            EarlyRefused::Unknown => RequestError::UnknownConnection,
            EarlyRefused::Full => RequestError::EarlyTooLarge,
        })
}

/// `DELETE /hubs/{tenant}/{hub}?id=...`: ends a long-polling connection.
async fn close(
    State(node): State<Arc<TransportState>>,
    HubRequest(tenant, key, query, request): HubRequest,
) -> Response {
    let headers = request.headers().clone();
    let deleted = async {
        let caller = Caller::of(tenant, key, &headers, &query).await?;
        long_polling::delete(node, caller).await
    };
    deleted.await.unwrap_or_else(|e| {
        debug!(error = %e, "delete refused");
        e.into_response()
    })
}

/// A request for a connection route (connect, send, close) that this node
/// answers itself: the tenant and hub its path names, its query, and itself.
struct HubRequest(Arc<Tenant>, HubKey, Vec<(String, String)>, Request);

impl FromRequest<Arc<TransportState>> for HubRequest {
    /// The answer of the node that holds the connection, or a 404 when the
    /// path names no tenant and hub here.
    type Rejection = Response;

    async fn from_request(
        request: Request,
        node: &Arc<TransportState>,
    ) -> Result<HubRequest, Response> {
        let (mut parts, body) = request.into_parts();
        let Path((tenant, hub)) = Path::<(String, String)>::from_request_parts(&mut parts, node)
            .await
            .map_err(IntoResponse::into_response)?;
        let Query(query) = QueryList::from_request_parts(&mut parts, node)
            .await
            .map_err(IntoResponse::into_response)?;
        let request = match forward_to_owner(node, &query, Request::from_parts(parts, body)).await {
            Ok(answer) => return Err(answer),
            Err(request) => request,
        };
        let (tenant, key) = node.resolve_hub(&tenant, &hub).ok_or_else(not_found_hub)?;
        Ok(HubRequest(tenant, key, query, request))
    }
}

/// Who a transport request after negotiate comes from (checked on every
/// request, so a revoked or expired token ends the connection at its next
/// one), and the connection its `id` names.
struct Caller<'a> {
    tenant: Arc<Tenant>,
    key: HubKey,
    identity: Identity,
    id: &'a str,
}

impl<'a> Caller<'a> {
    async fn of(
        tenant: Arc<Tenant>,
        key: HubKey,
        headers: &HeaderMap,
        query: &'a [(String, String)],
    ) -> Result<Caller<'a>, RequestError> {
        let identity = authenticate(&tenant, headers, query).await?;
        let id = connection_id(query)?;
        Ok(Caller {
            tenant,
            key,
            identity,
            id,
        })
    }
}

/// In a cluster, forwards a request for a connection another node holds to
/// that node and returns its answer; Err gives the request back to handle here.
async fn forward_to_owner(
    node: &TransportState,
    query: &[(String, String)],
    request: Request,
) -> Result<Response, Request> {
    let Some(owner) = forward::destination(node, query, request.headers()).await else {
        return Err(request);
    };
    forward::proxy(&owner, node.own_id(), node.silence(), request).await
}

/// The WebSocket that carries a negotiated connection, or a new one when the
/// client skipped negotiation.
async fn connect_websocket(
    node: Arc<TransportState>,
    tenant: Arc<Tenant>,
    key: HubKey,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    upgrade: websocket::Upgrade,
    client: Option<std::net::IpAddr>,
) -> Response {
    if let Some(id) = query_param(&query, "id")
        && node
            .http_connections
            .get(id)
            .is_some_and(|c| c.hub == key && c.kind != TransportKind::WebSockets)
    {
        return RequestError::TransportMismatch.into_response();
    }
    let identity = match tenant
        .authenticate(bearer_token(&headers, &query).as_deref())
        .await
    {
        Ok(identity) => identity,
        Err(e) => return unauthorized(&tenant, &e),
    };
    let mut negotiated = match query_param(&query, "id") {
        Some(id) => match node.connections.pending.take(id) {
            Some(n) if n.hub == key => n,
            Some(_) => return no_such_connection(),
            // Not pending: a stateful-reconnect client resuming, or unknown.
            None => return resume_websocket(&node, &key, id, &identity, upgrade),
        },
        // skipNegotiation: the upgrade itself creates the connection.
        None => Negotiated {
            connection_id: Arc::from(new_id()),
            hub: key,
            identity: identity.clone(),
            negotiate_version: 1,
            stateful_reconnect: false,
            request: RequestInfo::capture(&query, &headers, Visible::of(&tenant.config))
                .with_client_addr(client),
            early: Vec::new(),
        },
    };
    // The transport request must come from whoever negotiated.
    if identity.user_id.is_some() && identity.user_id != negotiated.identity.user_id
        || identity.user_id.is_none() && negotiated.identity.user_id.is_some()
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // Listed while it lives, so that a POST, DELETE, SSE stream or poll for
    // it gets the right refusal. A connection without `id` cannot be named.
    let registration = query_param(&query, "id").and_then(|id| {
        let connection = HttpConnection::websocket(
            negotiated.hub.clone(),
            negotiated.connection_id.clone(),
            negotiated.identity.user_id.clone(),
        );
        Registration::new(&node.http_connections, id.to_owned(), Arc::new(connection))
    });
    negotiated.request.set_transport(TransportKind::WebSockets);
    let accepted = Accepted {
        span: crate::connection::span("webSockets", &negotiated),
        negotiated,
        tenant,
        formats: WEBSOCKET_FORMATS,
        keep_alive: true,
    };
    // The token a stateful-reconnect client resumes with (none without negotiate).
    let token = query_param(&query, "id").map(str::to_owned);
    let upgrade = websocket_limits(upgrade, &node);
    let connection_id = accepted.negotiated.connection_id.clone();
    // Boxed: axum's upgrade task keeps this closure's room for the connection's
    // whole life, called or not. For the same reason the connection is made
    // here rather than in the async block, which would keep the socket and the
    // rest it captured beside the connection.
    let start = Box::new((node.connections.clone(), accepted, token, registration));
    upgrade.on_upgrade(connection_id, move |socket| {
        let (node, accepted, token, registration) = *start;
        let connection = websocket::serve(node, accepted, socket, token);
        async move {
            connection.await;
            drop(registration);
        }
    })
}

/// A stateful-reconnect client resuming its connection on a new WebSocket:
/// same `id`, no negotiate, no handshake (HubProtocol.md). The connection
/// must live (dropped sockets keep it for `disconnect_timeout_secs`), be on
/// this hub, and belong to the same user.
fn resume_websocket(
    node: &TransportState,
    key: &HubKey,
    token: &str,
    identity: &Identity,
    upgrade: websocket::Upgrade,
) -> Response {
    let Some(link) = node
        .connections
        .resumable
        .get(token)
        .filter(|link| link.hub == *key)
    else {
        return no_such_connection();
    };
    if identity.user_id != link.user_id {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let connection_id = link.connection_id.clone();
    websocket_limits(upgrade, node)
        .on_upgrade(connection_id, move |socket| websocket::resume(link, socket))
}

/// A resume no live connection here answers, in a cluster with durable
/// resume: the connection's owner gets it if it answers; else this node claims
/// the connection and serves it, or tells the client honestly that it cannot.
async fn take_over_websocket(
    node: Arc<TransportState>,
    tenant: Arc<Tenant>,
    key: HubKey,
    token: String,
    query: Vec<(String, String)>,
    request: Request,
) -> Response {
    use crate::connection::takeover::{self, Refused};
    let identity = match authenticate(&tenant, request.headers(), &query).await {
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    let mut tried = forward::owner(&token).map(str::to_owned);
    let mut request = request;
    // The owner is asked at most once more (the session may name a later owner).
    for _ in 0..2 {
        let claimed = takeover::claim(
            &node.connections,
            tenant.clone(),
            &key,
            &token,
            &identity,
            tried.as_deref(),
        )
        .await;
        if let Err(Refused::Owner { node: owner, url }) = claimed {
            match forward::proxy(&url, node.own_id(), node.silence(), request).await {
                Ok(answer) => return answer,
                Err(back) => {
                    request = back;
                    tried = Some(owner);
                    continue;
                }
            }
        }
        let (mut parts, _body) = request.into_parts();
        let Some(upgrade) = websocket::Upgrade::from_parts(&mut parts) else {
            return no_such_connection();
        };
        let upgrade = websocket_limits(upgrade, &node);
        return match claimed {
            Ok(taken) => {
                let connection_id = taken.connection_id();
                upgrade.on_upgrade(connection_id, move |socket| {
                    websocket::take_over(node.connections.clone(), taken, socket)
                })
            }
            Err(Refused::Unrecoverable(_, protocol)) => upgrade
                .on_upgrade(Arc::from(token.as_str()), move |socket| {
                    websocket::goodbye(socket, protocol)
                }),
            Err(Refused::NotFound | Refused::Owner { .. }) => no_such_connection(),
        };
    }
    no_such_connection()
}

/// The read buffer of a WebSocket. Messages have no size limit of their own:
/// their payload streams into the connection, which limits each record.
fn websocket_limits(upgrade: websocket::Upgrade, node: &TransportState) -> websocket::Upgrade {
    upgrade.read_buffer_size(node.settings.websocket_read_buffer_bytes)
}

/// Who sent a transport request (the header token, else `access_token`).
async fn authenticate(
    tenant: &Tenant,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<Identity, RequestError> {
    tenant
        .authenticate(bearer_token(headers, query).as_deref())
        .await
        .map_err(|e| {
            debug!(tenant = %tenant.name, error = %e, "token refused");
            RequestError::Unauthorized
        })
}

/// The 401 for a refused token: empty, so clients report exactly
/// "Unauthorized", with why in `WWW-Authenticate` (RFC 6750, as ASP.NET
/// Core's JwtBearer handler answers) and in the log.
pub(crate) fn unauthorized(tenant: &Tenant, error: &crate::tenant::AuthError) -> Response {
    info!(tenant = %tenant.name, error = %error, "client token refused");
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&error.www_authenticate()) {
        response
            .headers_mut()
            .insert(axum::http::header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The `id` query parameter; every transport request but a WebSocket upgrade needs one.
fn connection_id(query: &[(String, String)]) -> Result<&str, RequestError> {
    query_param(query, "id")
        .filter(|id| !id.is_empty())
        .ok_or(RequestError::MissingId)
}

/// The first request of an SSE or long-polling connection: the negotiated
/// connection the caller names (refused unless the same user negotiated it),
/// listed as a `kind` connection, ready to run with what its POSTs bring.
fn start_http(
    node: &TransportState,
    caller: Caller<'_>,
    kind: TransportKind,
    long_poll: Option<Arc<long_polling::LongPoll>>,
) -> Result<
    (
        Accepted,
        Registration,
        impl futures_util::Stream<Item = crate::connection::Inbound> + Send + Unpin + 'static,
    ),
    RequestError,
> {
    let mut negotiated = take_pending(node, &caller.key, caller.id)?;
    if caller.identity.user_id != negotiated.identity.user_id {
        return Err(RequestError::Unauthorized);
    }
    let (connection, inbound) = HttpConnection::with_posts(
        kind,
        caller.key,
        negotiated.connection_id.clone(),
        negotiated.identity.user_id.clone(),
        long_poll,
        std::mem::take(&mut negotiated.early),
    );
    let connection = Arc::new(connection);
    let Some(registration) =
        Registration::new(&node.http_connections, caller.id.to_owned(), connection)
    else {
        return Err(RequestError::AlreadyActive);
    };
    negotiated.request.set_transport(kind);
    let (span, formats, keep_alive) = match kind {
        TransportKind::LongPolling => ("longPolling", LONG_POLLING_FORMATS, false),
        _ => ("serverSentEvents", SSE_FORMATS, true),
    };
    let accepted = Accepted {
        span: crate::connection::span(span, &negotiated),
        negotiated,
        tenant: caller.tenant,
        formats,
        keep_alive,
    };
    Ok((accepted, registration, inbound))
}

/// The negotiated connection `id` names, for the first request of its transport.
fn take_pending(node: &TransportState, key: &HubKey, id: &str) -> Result<Negotiated, RequestError> {
    match node.connections.pending.take(id) {
        Some(negotiated) if negotiated.hub == *key => Ok(negotiated),
        _ => Err(RequestError::UnknownConnection),
    }
}

/// Whether a GET asks for Server-Sent Events.
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("text/event-stream"))
    })
}
