//! `.../users/{user}`: send to a user, presence, and group membership.

use axum::http::StatusCode;
use axum::response::Response;

use super::error::ApiError;
use super::{Call, applied_as, done, group_change, send_to};
use crate::address::Target;

/// `POST .../users/{user}/:send`: every connection of the user, on every node.
pub(super) async fn send(call: &Call) -> Result<Response, ApiError> {
    send_to(call, Target::Users(vec![call.param("user").to_owned()])).await
}

/// `HEAD .../users/{user}`: 200 when the user has a connection on this node
/// or, in a cluster, on a node the registry lists as holding one.
pub(super) async fn exists(call: &Call) -> Result<Response, ApiError> {
    let user = call.param("user");
    if call.api.router.has_local_user(&call.hub, user) {
        return done(StatusCode::OK);
    }
    if let Some(cluster) = &call.api.cluster {
        let elsewhere = cluster
            .registry()
            .user_connections(&call.hub, user)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        if elsewhere > 0 {
            return done(StatusCode::OK);
        }
    }
    Err(ApiError::NoUser(user.to_owned()))
}

/// `PUT .../users/{user}/groups/{group}`: adds the user's current
/// connections, on every node, to the group (Azure's `ttl=0`); later
/// connections are not added. 200 once every node will apply it, 503 when
/// the cluster refused it.
pub(super) async fn add_to_group(call: &Call) -> Result<Response, ApiError> {
    let (user, group) = (call.param("user"), call.param("group"));
    group_change(call.api.router.add_user_to_group(&call.hub, user, group)).await
}

/// `DELETE .../users/{user}/groups/{group}`: removes the user's connections,
/// on every node, from the group (answered as an add).
pub(super) async fn remove_from_group(call: &Call) -> Result<Response, ApiError> {
    let (user, group) = (call.param("user"), call.param("group"));
    group_change(
        call.api
            .router
            .remove_user_from_group(&call.hub, user, group),
    )
    .await
}

/// `POST .../users/{user}/:closeConnections?excluded=...&reason=...`.
pub(super) async fn close(call: &Call) -> Result<Response, ApiError> {
    let target = Target::Users(vec![call.param("user").to_owned()]);
    super::hub::close_target(call, target).await
}

/// `DELETE .../users/{user}/groups`: removes the user's connections, on
/// every node, from every group they are in (204, as Azure).
pub(super) async fn leave_all_groups(call: &Call) -> Result<Response, ApiError> {
    let receipt = call
        .api
        .router
        .user_leave_all_groups(&call.hub, call.param("user"));
    applied_as(receipt, "the group change", StatusCode::NO_CONTENT).await
}

/// `HEAD .../users/{user}/groups/{group}`: 200 when a connection of the
/// user is in the group, on this node or (asked) on another.
pub(super) async fn in_group(call: &Call) -> Result<Response, ApiError> {
    let (user, group) = (call.param("user"), call.param("group"));
    if call
        .api
        .router
        .has_local_user_in_group(&call.hub, user, group)
    {
        return done(StatusCode::OK);
    }
    if let Some(cluster) = &call.api.cluster
        && cluster
            .user_in_group_elsewhere(&call.hub, user, group)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?
    {
        return done(StatusCode::OK);
    }
    Err(ApiError::NoUserInGroup {
        user: user.to_owned(),
        group: group.to_owned(),
    })
}
