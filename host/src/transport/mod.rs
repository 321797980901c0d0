//! HTTP in, frames out: negotiate, and the transports that carry a
//! connection (WebSockets; Server-Sent Events and long polling come next).
//!
//! Every request after negotiate goes to the hub URL itself, told apart by
//! method and headers as ASP.NET does.

mod auth;
mod negotiate;
mod websocket;

use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::connection::{Accepted, Negotiated, RequestInfo, new_id};
use crate::node::Node;
use crate::protocol::TransferFormat;
use crate::router::HubKey;
use crate::tenant::Tenant;

pub use auth::bearer_token;

/// Transfer formats WebSockets carry: text frames for JSON, binary for MessagePack.
pub const WEBSOCKET_FORMATS: &[TransferFormat] = &[TransferFormat::Text, TransferFormat::Binary];

pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/hubs/{tenant}/{hub}/negotiate", post(negotiate::negotiate))
        .route(
            "/hubs/{tenant}/{hub}",
            get(connect).post(no_connection).delete(no_connection),
        )
}

/// Query parameters as a list; SignalR reads its own keys case-insensitively.
pub type QueryList = Query<Vec<(String, String)>>;

pub fn query_param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The tenant and hub a URL names, if both exist. Names are matched
/// case-insensitively, as SignalR matches hub paths.
pub fn resolve_hub(node: &Node, tenant: &str, hub: &str) -> Option<(Arc<Tenant>, HubKey)> {
    let tenant = node.tenants.get(&tenant.to_ascii_lowercase())?.clone();
    let key = HubKey::new(&tenant.name, &hub.to_ascii_lowercase());
    node.registry.get(&key)?;
    Some((tenant, key))
}

fn not_found_hub() -> Response {
    (StatusCode::NOT_FOUND, "No such tenant or hub").into_response()
}

fn no_such_connection() -> Response {
    (StatusCode::NOT_FOUND, "No Connection with that ID").into_response()
}

async fn no_connection() -> Response {
    no_such_connection()
}

/// `GET /hubs/{tenant}/{hub}?id=...`: the WebSocket that carries a negotiated
/// connection, or a new one when the client skipped negotiation.
async fn connect(
    State(node): State<Arc<Node>>,
    Path((tenant, hub)): Path<(String, String)>,
    Query(query): QueryList,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some((tenant, key)) = resolve_hub(&node, &tenant, &hub) else {
        return not_found_hub();
    };
    let Ok(upgrade) = upgrade else {
        return (
            StatusCode::NOT_FOUND,
            "This hub accepts WebSockets; other transports are not enabled",
        )
            .into_response();
    };
    let identity = match tenant.authenticate(bearer_token(&headers, &query).as_deref()) {
        Ok(identity) => identity,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let negotiated = match query_param(&query, "id") {
        Some(id) => match node.pending.take(id) {
            Some(n) if n.hub == key => n,
            _ => return no_such_connection(),
        },
        // skipNegotiation: the upgrade itself creates the connection.
        None => Negotiated {
            connection_id: Arc::from(new_id()),
            hub: key,
            identity: identity.clone(),
            negotiate_version: 1,
            stateful_reconnect: false,
            request: RequestInfo::capture(&query, &headers),
        },
    };
    // The transport request must come from whoever negotiated.
    if identity.user_id.is_some() && identity.user_id != negotiated.identity.user_id
        || identity.user_id.is_none() && negotiated.identity.user_id.is_some()
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let accepted = Accepted {
        negotiated,
        tenant,
        formats: WEBSOCKET_FORMATS,
        keep_alive: true,
    };
    let frame_limit = node.config.max_message_size.saturating_mul(4).max(1 << 20);
    upgrade
        .max_message_size(frame_limit)
        .max_frame_size(frame_limit)
        .on_upgrade(move |socket| websocket::serve(node, accepted, socket))
}
