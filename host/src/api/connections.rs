//! `.../connections/{connection}`: send to one connection, presence, close.

use axum::http::StatusCode;
use axum::response::Response;

use super::error::ApiError;
use super::{Call, applied, done, send_to};
use crate::address::Target;

/// `POST .../connections/{connection}/:send`, wherever the connection is.
pub(super) async fn send(call: &Call) -> Result<Response, ApiError> {
    let target = Target::Connections(vec![call.param("connection").to_owned()]);
    send_to(call, target).await
}

/// `HEAD .../connections/{connection}`: 200 when this node holds it or, in
/// a cluster, the registry lists it (on a node that is still refreshing it).
pub(super) async fn exists(call: &Call) -> Result<Response, ApiError> {
    let id = call.param("connection");
    if call
        .api
        .router
        .local_connection(&call.hub, id)
        .is_some_and(|c| !c.is_closed())
    {
        return done(StatusCode::OK);
    }
    if held_elsewhere(call, id).await? {
        return done(StatusCode::OK);
    }
    Err(ApiError::NoConnection(id.to_owned()))
}

/// `DELETE .../connections/{connection}?reason=...`: closes it, on whichever
/// node holds it; the client gets a Close message with `reason` as its error
/// (none without a reason). 404 when no node holds it, 503 when the
/// cluster refused to carry the close to the node that does.
pub(super) async fn close(call: &Call) -> Result<Response, ApiError> {
    let id = call.param("connection");
    let reason = call.query_one("reason");
    let router = &call.api.router;
    if router.local_connection(&call.hub, id).is_none() && !held_elsewhere(call, id).await? {
        return Err(ApiError::NoConnection(id.to_owned()));
    }
    applied(router.close_connection(&call.hub, id, reason), "the close").await
}

/// `DELETE .../connections/{connection}/groups`: removes it from every
/// group, wherever it is (200, as Azure).
pub(super) async fn leave_all_groups(call: &Call) -> Result<Response, ApiError> {
    let receipt = call
        .api
        .router
        .connection_leave_all_groups(&call.hub, call.param("connection"));
    applied(receipt, "the group change").await
}

/// Whether, in a cluster, the registry lists `id` on another node.
async fn held_elsewhere(call: &Call, id: &str) -> Result<bool, ApiError> {
    let Some(cluster) = &call.api.cluster else {
        return Ok(false);
    };
    let node = cluster
        .registry()
        .connection_node(&call.hub, id)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(node.is_some_and(|n| n != cluster.node_id()))
}
