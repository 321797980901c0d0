//! `POST /hubs/{tenant}/{hub}/negotiate`: authenticates the client, creates a
//! connection id and token, and lists the transports.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::{QueryList, TransportState, bearer_token, not_found_hub, query_param};
use crate::address::client::ClientAddr;
use crate::connection::Negotiated;
use crate::outbound::{RequestInfo, Visible};
use crate::protocol::negotiate::{
    TransportInfo, negotiate_error, negotiate_response, parse_negotiate_version,
};

/// In ASP.NET's order, which clients try in turn (negotiating again before
/// each fallback).
const TRANSPORTS: &[TransportInfo] = &[
    TransportInfo::WEB_SOCKETS,
    TransportInfo::SERVER_SENT_EVENTS,
    TransportInfo::LONG_POLLING,
];

pub(super) async fn negotiate(
    State(node): State<Arc<TransportState>>,
    Path((tenant, hub)): Path<(String, String)>,
    Query(query): QueryList,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    let span = tracing::info_span!(
        "negotiate",
        tenant = %tenant,
        hub = %hub,
        connection.id = tracing::field::Empty,
    );
    let client = client.map(|Extension(c)| c.0);
    answer(&node, &tenant, &hub, &query, &headers, client)
        .instrument(span)
        .await
}

/// The negotiate answer, in the `negotiate` span.
async fn answer(
    node: &TransportState,
    tenant: &str,
    hub: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    client: Option<std::net::IpAddr>,
) -> Response {
    let Some((tenant, key)) = node.resolve_hub(tenant, hub) else {
        return not_found_hub();
    };
    if node.is_draining() {
        // Clients retry negotiate after their reconnect delay, by then on another node.
        return (StatusCode::SERVICE_UNAVAILABLE, "Server is shutting down.").into_response();
    }
    let version = match parse_negotiate_version(query_param(query, "negotiateVersion")) {
        Ok(version) => version,
        // SignalR reports negotiate errors as 200 with an error body.
        Err(error) => return json(StatusCode::OK, negotiate_error(&error)),
    };
    let identity = match tenant
        .authenticate(bearer_token(headers, query).as_deref())
        .await
    {
        Ok(identity) => identity,
        Err(e) => return super::unauthorized(&tenant, &e),
    };
    // The tenant's connection limit, as a negotiate error the client reports verbatim.
    if let Err(error) = crate::tenant::limits::check_connection_room(
        &node.connections.usage,
        &tenant.limits(),
        &key,
    ) {
        return json(StatusCode::OK, negotiate_error(&error));
    }
    // In a cluster both name this node, so later requests can be forwarded here.
    let connection_id = node.new_id();
    let token = node.new_id();
    let key_for_client = if version >= 1 {
        token.clone()
    } else {
        connection_id.clone()
    };
    let stateful_reconnect = wants_stateful_reconnect(node, version, query);
    tracing::Span::current().record("connection.id", connection_id.as_str());
    let negotiated = Negotiated {
        connection_id: Arc::from(connection_id.as_str()),
        hub: key,
        identity,
        negotiate_version: version,
        stateful_reconnect,
        request: RequestInfo::capture(query, headers, Visible::of(&tenant.config))
            .with_client_addr(client),
        early: Vec::new(),
    };
    if !node.connections.pending.insert(key_for_client, negotiated) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many pending connections",
        )
            .into_response();
    }
    json(
        StatusCode::OK,
        negotiate_response(
            version,
            &connection_id,
            &token,
            TRANSPORTS,
            stateful_reconnect,
        ),
    )
}

/// Whether to agree to stateful reconnect: the client asked
/// (`useStatefulReconnect=true`), the node allows it, and the client speaks
/// negotiate v1, whose `id` is the secret token. A v0 client's `id` is its
/// public connection id, which others may know: resuming by it would let
/// them take the connection over. The client uses it only over WebSockets.
fn wants_stateful_reconnect(
    node: &TransportState,
    version: u32,
    query: &[(String, String)],
) -> bool {
    node.settings.stateful_reconnect
        && version >= 1
        && query_param(query, "useStatefulReconnect")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
