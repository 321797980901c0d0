//! The backend REST API: send to clients, manage groups, check presence,
//! close connections and invoke hub methods, in the shape of the Azure
//! SignalR Service data-plane API (2022-06-01), below
//! `/api/v1/tenants/{tenant}/hubs/{hub}`. `openapi.json` documents it and is
//! served at `/api/openapi.json`.
//!
//! - [`routes`]: the route table and the pure path matcher.
//! - [`auth`]: API keys and API tokens.
//! - [`payload`]: body parsing.
//! - [`error`]: every failure, and its JSON response, in one place.
//! - `hub`, `users`, `groups`, `connections`: a handler per resource.
//! - [`client`]: the HTTP client the CLI uses.
//!
//! Everything goes through the [`Router`](crate::router::Router), which
//! reaches other nodes over the backplane, so sends and group changes work
//! the same on one node or many. Presence checks (`HEAD`), closing a
//! connection and adding a user's connections to a group act on the
//! connections of the node that serves the request.

pub mod admin;
pub mod admin_client;
pub mod auth;
pub mod body;
pub mod client;
mod connections;
pub mod error;
mod groups;
mod hub;
pub mod payload;
pub mod routes;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tracing::debug;

use crate::node::Node;
use crate::router::HubKey;
use crate::tenant::Tenant;
use error::ApiError;
use routes::{Action, Matched};

/// Largest request body, in bytes (Azure's limit).
pub const MAX_BODY: usize = 1 << 20;

/// The OpenAPI 3 document of this API.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/v1/tenants/{*rest}", any(handle))
        .merge(admin::routes())
}

async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

async fn handle(State(node): State<Arc<Node>>, request: Request) -> Response {
    match dispatch(node, request).await {
        Ok(response) => response,
        Err(e) => {
            debug!(code = e.code(), message = %e, "API request refused");
            e.into_response()
        }
    }
}

/// One authorized API request, for its handler.
struct Call {
    node: Arc<Node>,
    tenant: Arc<Tenant>,
    hub: HubKey,
    matched: Matched,
    query: Vec<(String, String)>,
    body: Bytes,
}

impl Call {
    fn param(&self, name: &str) -> &str {
        self.matched.param(name)
    }

    /// Every value of a query parameter (`excluded` may repeat).
    fn query_all(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn query_one(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn dispatch(node: Arc<Node>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let matched = routes::parse(&parts.method, path)?;
    let tenant = node
        .tenants
        .get(&matched.tenant)
        .ok_or_else(|| ApiError::UnknownTenant(matched.tenant.clone()))?;
    auth::authorize(
        &tenant.name,
        &tenant.keys().api_keys,
        &parts.headers,
        path,
        node.live_config().public_url.as_deref(),
    )?;
    let hub = HubKey::new(&tenant.name, &matched.hub);
    if node.registry.get(&hub).is_none() {
        return Err(ApiError::UnknownHub {
            tenant: matched.tenant.clone(),
            hub: matched.hub.clone(),
        });
    }
    let Query(query) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
    let body = if takes_body(matched.action) {
        read_body(&parts.headers, body).await?
    } else {
        Bytes::new()
    };
    debug!(tenant = %hub.tenant, hub = %hub.hub, action = ?matched.action, "API request");
    let call = Call {
        node,
        tenant,
        hub,
        matched,
        query,
        body,
    };
    match call.matched.action {
        Action::SendAll => hub::send_all(&call).await,
        Action::Invoke => hub::invoke(&call).await,
        Action::SendUser => users::send(&call).await,
        Action::UserExists => users::exists(&call).await,
        Action::AddUserToGroup => users::add_to_group(&call).await,
        Action::RemoveUserFromGroup => users::remove_from_group(&call).await,
        Action::SendGroup => groups::send(&call).await,
        Action::GroupExists => groups::exists(&call).await,
        Action::AddConnectionToGroup => groups::add_connection(&call).await,
        Action::RemoveConnectionFromGroup => groups::remove_connection(&call).await,
        Action::SendConnection => connections::send(&call).await,
        Action::ConnectionExists => connections::exists(&call).await,
        Action::CloseConnection => connections::close(&call).await,
    }
}

fn takes_body(action: Action) -> bool {
    matches!(
        action,
        Action::SendAll
            | Action::Invoke
            | Action::SendUser
            | Action::SendGroup
            | Action::SendConnection
    )
}

/// The body of a JSON request, at most [`MAX_BODY`] bytes.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    if let Err(e) = payload::require_json(headers) {
        body::discard(body).await;
        return Err(e);
    }
    body::read_limited(headers, body, MAX_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)
}

/// A success without a body.
fn done(status: StatusCode) -> Result<Response, ApiError> {
    Ok(status.into_response())
}

/// The answer to a send: 202 once every node that may hold a recipient will
/// get the message (at once for local deliveries; in a cluster once NATS
/// stored it), 503 with the reason when the cluster refused it, so that an
/// accepted send is never silently lost.
async fn sent(receipt: crate::backplane::Receipt) -> Result<Response, ApiError> {
    receipt
        .wait()
        .await
        .map_err(|e| ApiError::Unavailable(format!("the message was not sent: {e}")))?;
    done(StatusCode::ACCEPTED)
}

/// The answer to a group change or a close: 200 once every node it concerns
/// will apply it, 503 with the reason when the cluster refused to carry
/// `what`, so that a change is never answered and then dropped.
async fn applied(receipt: crate::backplane::Receipt, what: &str) -> Result<Response, ApiError> {
    receipt
        .wait()
        .await
        .map_err(|e| ApiError::Unavailable(format!("{what} was not made: {e}")))?;
    done(StatusCode::OK)
}
