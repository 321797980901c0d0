//! `.../groups/{group}`: send to a group, presence, and adding or removing
//! a connection (wherever it is: the router publishes the change).

use axum::http::StatusCode;
use axum::response::Response;

use super::error::ApiError;
use super::{Call, done, group_change, send_to};
use crate::address::Target;

/// `POST .../groups/{group}/:send?excluded=...`: every member but the excluded.
pub(super) async fn send(call: &Call) -> Result<Response, ApiError> {
    let target = Target::Groups {
        groups: vec![call.param("group").to_owned()],
        except: call.query_all("excluded"),
    };
    send_to(call, target).await
}

/// `HEAD .../groups/{group}`: 200 when the group has a member on this node
/// or, in a cluster, on another (which answers within the presence timeout).
pub(super) async fn exists(call: &Call) -> Result<Response, ApiError> {
    let group = call.param("group");
    if call.api.router.has_local_group(&call.hub, group) {
        return done(StatusCode::OK);
    }
    if let Some(cluster) = &call.api.cluster
        && cluster
            .group_elsewhere(&call.hub, group)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?
    {
        return done(StatusCode::OK);
    }
    Err(ApiError::NoGroup(group.to_owned()))
}

/// `POST .../groups/{group}/:closeConnections?excluded=...&reason=...`.
pub(super) async fn close(call: &Call) -> Result<Response, ApiError> {
    let target = Target::Groups {
        groups: vec![call.param("group").to_owned()],
        except: Vec::new(),
    };
    super::hub::close_target(call, target).await
}

/// `PUT .../groups/{group}/connections/{connection}`: 200 once the node
/// holding the connection will apply it, 503 when the cluster refused it.
pub(super) async fn add_connection(call: &Call) -> Result<Response, ApiError> {
    let (connection, group) = (call.param("connection"), call.param("group"));
    group_change(call.api.router.add_to_group(&call.hub, connection, group)).await
}

/// `DELETE .../groups/{group}/connections/{connection}` (answered as an add).
pub(super) async fn remove_connection(call: &Call) -> Result<Response, ApiError> {
    let (connection, group) = (call.param("connection"), call.param("group"));
    group_change(
        call.api
            .router
            .remove_from_group(&call.hub, connection, group),
    )
    .await
}
