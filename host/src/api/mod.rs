//! The backend REST API: send to clients, manage groups, check presence,
//! close connections and invoke hub methods, in the shape of the Azure
//! SignalR Service data-plane API (2022-06-01), below
//! `/api/v1/tenants/{tenant}/hubs/{hub}` and, for backends written for
//! Azure, below Azure's own `/api/hubs/{hub}` (the tenant then comes from
//! the `application` query or from the key). `openapi.json` documents both
//! and is served at `/api/openapi.json`.
//!
//! - [`routes`](mod@routes): the route table and the pure path matcher.
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
use axum::extract::{FromRef, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tracing::debug;

use crate::address::{HubKey, Target, Unknown};
use crate::backplane::nats::NatsBackplane;
use crate::config::Config;
use crate::plugin::{PluginEngine, Registry};
use crate::router::{RouteError, Router as HubRouter};
use crate::tenant::limits::Usage;
use crate::tenant::{Tenant, Tenants};
use error::ApiError;
use routes::{Action, Matched};

/// Largest request body, in bytes (Azure's limit).
pub const MAX_BODY: usize = 1 << 20;

/// The OpenAPI 3 document of this API.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// What the REST API reads of the node: built by the node, taken by the
/// REST handlers as their state (the admin API takes the node itself).
pub struct ApiState {
    /// The tenants this node serves: a request's tenant and its API keys come from here.
    pub tenants: Arc<Tenants>,
    /// The deployed hubs' plugins: a hub missing here answers `UnknownHub`.
    pub registry: Arc<Registry>,
    /// Runs `:invoke` calls.
    pub engine: Arc<PluginEngine>,
    /// Delivers sends, group changes and closes to connections, on this node or through the
    /// cluster.
    pub router: Arc<HubRouter>,
    /// What each tenant uses, for the limit on invocations at once.
    pub usage: Arc<Usage>,
    /// The NATS backplane in a cluster: its registry answers presence checks.
    pub cluster: Option<Arc<NatsBackplane>>,
    /// The config as last reloaded (its `public_url` is API tokens' audience).
    pub live: Arc<arc_swap::ArcSwap<Config>>,
    /// Cancelled once the node drains: the health check answers 503.
    pub draining: tokio_util::sync::CancellationToken,
}

debug_fields!(ApiState {});

impl ApiState {
    /// Takes traffic: not draining and, in a cluster, connected to NATS.
    pub fn is_ready(&self) -> bool {
        !self.draining.is_cancelled() && self.cluster.as_ref().is_none_or(|c| c.is_ready())
    }
}

/// The REST routes, on any state that holds an [`ApiState`]. The admin
/// API, which holds the node, has its own ([`admin::routes`]).
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<ApiState>: FromRef<S>,
{
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/v1/tenants/{*rest}", any(handle))
        .route("/api/hubs/{*rest}", any(handle))
        .route(routes::HEALTH_PATH, any(health))
}

/// `HEAD /api/health` (Azure's service health): 200 while the node takes
/// traffic, 503 otherwise (as `/readyz`). It needs no credentials.
async fn health(State(api): State<Arc<ApiState>>, request: Request) -> Response {
    if request.method() != axum::http::Method::HEAD {
        return ApiError::MethodNotAllowed {
            method: request.method().to_string(),
            allow: "HEAD".into(),
        }
        .into_response();
    }
    if api.is_ready() {
        StatusCode::OK.into_response()
    } else {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

async fn handle(State(api): State<Arc<ApiState>>, request: Request) -> Response {
    match dispatch(api, request).await {
        Ok(response) => response,
        Err(e) => {
            debug!(code = e.code(), message = %e, "API request refused");
            e.into_response()
        }
    }
}

/// One authorized API request, for its handler.
struct Call {
    api: Arc<ApiState>,
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

async fn dispatch(api: Arc<ApiState>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let matched = routes::parse(&parts.method, path)?;
    let Query(query) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
    let tenant_name = match &matched.tenant {
        Some(name) => name.clone(),
        None => azure_tenant(&api.tenants, &query, &parts.headers)?,
    };
    let tenant = api
        .tenants
        .get(&tenant_name)
        .ok_or_else(|| Unknown::Tenant(tenant_name.clone()))?;
    auth::authorize(
        &tenant.name,
        &tenant.keys().api_keys,
        &parts.headers,
        path,
        api.live.load().public_url.as_deref(),
    )?;
    let hub = HubKey::new(&tenant.name, &matched.hub);
    if api.registry.get(&hub).is_none() {
        return Err(Unknown::hub(&hub).into());
    }
    let body = if takes_body(matched.action) {
        read_body(&parts.headers, body).await?
    } else {
        Bytes::new()
    };
    debug!(tenant = %hub.tenant, hub = %hub.hub, action = ?matched.action, "API request");
    let call = Call {
        api,
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
        Action::ConnectionLeaveAll => connections::leave_all_groups(&call).await,
        Action::CloseAll => hub::close_all(&call).await,
        Action::CloseGroup => groups::close(&call).await,
        Action::CloseUser => users::close(&call).await,
        Action::UserLeaveAll => users::leave_all_groups(&call).await,
        Action::UserInGroup => users::in_group(&call).await,
    }
}

/// The tenant of a request in Azure's path style: the `application` query
/// (Azure's name for a scope inside one service) or else the tenant whose
/// API key the credentials are.
fn azure_tenant(
    tenants: &Tenants,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    if let Some((_, application)) = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("application"))
        .filter(|(_, v)| !v.is_empty())
    {
        return Ok(application.to_ascii_lowercase());
    }
    tenants
        .names()
        .into_iter()
        .find(|name| {
            tenants
                .get(name)
                .is_some_and(|t| auth::signed_with_one_of(&t.keys().api_keys, headers))
        })
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the credentials are not an API key of any tenant (an X-Api-Key or a Bearer \
                 token signed with one is required; ?application=TENANT names the tenant)"
                    .into(),
            )
        })
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

/// Sends the request's payload (an invocation) to `target`, as [`sent`].
async fn send_to(call: &Call, target: Target) -> Result<Response, ApiError> {
    let message = payload::parse_payload(&call.body)?.into_invocation()?;
    sent(call.api.router.send(&call.hub, &target, Arc::new(message))).await
}

/// A group change: 400 when the router refused it (a bad group name), else
/// as [`applied`].
async fn group_change(
    change: Result<crate::backplane::Receipt, RouteError>,
) -> Result<Response, ApiError> {
    let receipt = change.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    applied(receipt, "the group change").await
}

/// The answer to a group change or a close: 200 once every node it concerns
/// will apply it, 503 with the reason when the cluster refused to carry
/// `what`, so that a change is never answered and then dropped.
async fn applied(receipt: crate::backplane::Receipt, what: &str) -> Result<Response, ApiError> {
    applied_as(receipt, what, StatusCode::OK).await
}

/// [`applied`] with another success status (Azure answers some with 204).
async fn applied_as(
    receipt: crate::backplane::Receipt,
    what: &str,
    status: StatusCode,
) -> Result<Response, ApiError> {
    receipt
        .wait()
        .await
        .map_err(|e| ApiError::Unavailable(format!("{what} was not made: {e}")))?;
    done(status)
}
