//! `.../connections/{connection}`: send to one connection, presence, close.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;

use super::error::ApiError;
use super::payload::parse_payload;
use super::{Call, done};
use crate::router::Target;

/// Longest close reason passed on to the client.
const MAX_REASON: usize = 1024;

/// `POST .../connections/{connection}/:send`, wherever the connection is.
pub(super) fn send(call: &Call) -> Result<Response, ApiError> {
    let message = parse_payload(&call.body)?.into_invocation()?;
    let target = Target::Connections(vec![call.param("connection").to_owned()]);
    call.node.router.send(&call.hub, &target, Arc::new(message));
    done(StatusCode::ACCEPTED)
}

/// `HEAD .../connections/{connection}`: 200 when this node holds it or, in
/// a cluster, the registry lists it (on a node that is still refreshing it).
pub(super) async fn exists(call: &Call) -> Result<Response, ApiError> {
    let id = call.param("connection");
    if call
        .node
        .router
        .local_connection(&call.hub, id)
        .is_some_and(|c| !c.is_closed())
    {
        return done(StatusCode::OK);
    }
    if let Some(cluster) = &call.node.cluster {
        let node = cluster
            .registry()
            .connection_node(&call.hub, id)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        if node.is_some_and(|n| n != cluster.node_id()) {
            return done(StatusCode::OK);
        }
    }
    Err(ApiError::NoConnection(id.to_owned()))
}

/// `DELETE .../connections/{connection}?reason=...`: closes it; the client
/// gets a Close message with `reason` as its error (none without a reason).
pub(super) fn close(call: &Call) -> Result<Response, ApiError> {
    let id = call.param("connection");
    let Some(connection) = call.node.router.local_connection(&call.hub, id) else {
        return Err(ApiError::NoConnection(id.to_owned()));
    };
    match call.query_one("reason").filter(|r| !r.is_empty()) {
        Some(reason) => connection.abort(crate::plugin::truncate(reason, MAX_REASON)),
        None => connection.close(),
    }
    done(StatusCode::OK)
}
