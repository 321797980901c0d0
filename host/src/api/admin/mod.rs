//! The admin API (`/admin/v1`): tenants (create, list, show, delete, rotate
//! their keys) and their hubs' plugins (deploy, roll back, list versions).
//! For operators, authenticated with a key of the config file's `[admin]
//! keys`; every answer is JSON, failures as `{"code": ..., "message": ...}`.
//!
//! On a single node, tenants created here live until it restarts (the
//! config file is the durable list). In a cluster they, their key changes
//! and their deletion reach every node through the tenant store
//! ([`crate::tenant::cluster`]), and live as long as the cluster's NATS
//! keeps them; changes to a tenant of a node's config file stay on that
//! node (answers say `"scope": "node"`). Deploys and rollbacks reach every
//! node of a cluster through the plugin store.
//!
//! One file a concern: [`error`] (the answers' error shape), [`auth`] (admin
//! keys), [`tenants`], [`keys`] (a tenant's signing and API keys) and
//! [`plugins`](mod@plugins) (deploy, roll back, list).

mod auth;
mod error;
mod keys;
mod plugins;
mod tenants;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::Value;

use crate::node::Node;
use crate::tenant::cluster::TenantStore;
use crate::tenant::{Origin, Tenant, TenantError};

pub use auth::{Admin, authorize, key_id};
pub use error::AdminError;
use keys::{add_key, remove_key};
use plugins::{deploy, plugins, rollback};
use tenants::{create_tenant, delete_tenant, list_tenants, show_tenant};

/// The header that may carry an admin key (else `Authorization: Bearer`).
pub const ADMIN_KEY_HEADER: &str = "x-admin-key";

/// Largest JSON body of an admin request other than a deploy, in bytes.
const MAX_JSON_BODY: usize = 64 << 10;

/// The admin routes, on any state that holds the node.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Node>: axum::extract::FromRef<S>,
{
    Router::new()
        .route("/admin/v1/tenants", get(list_tenants).post(create_tenant))
        .route(
            "/admin/v1/tenants/{tenant}",
            get(show_tenant).delete(delete_tenant),
        )
        .route("/admin/v1/tenants/{tenant}/{kind}", post(add_key))
        .route("/admin/v1/tenants/{tenant}/{kind}/{id}", delete(remove_key))
        .route("/admin/v1/tenants/{tenant}/plugins", get(plugins))
        .route("/admin/v1/tenants/{tenant}/hubs/{hub}/deploy", post(deploy))
        .route(
            "/admin/v1/tenants/{tenant}/hubs/{hub}/rollback",
            post(rollback),
        )
        .route("/admin/v1/{*rest}", axum::routing::any(no_route))
}

async fn no_route(_: Admin, Path(rest): Path<String>) -> AdminError {
    AdminError::new(
        StatusCode::NOT_FOUND,
        "NoRoute",
        format!("no admin route /admin/v1/{rest}"),
    )
}

fn tenant_of(node: &Node, name: &str) -> Result<Arc<Tenant>, AdminError> {
    node.tenants
        .get(name)
        .ok_or_else(|| TenantError::Unknown(name.to_owned()).into())
}

/// The cluster's tenant store, when changes to `tenant` go through it: in a
/// cluster, for tenants of the admin API (a config file's are its node's).
fn cluster_store(node: &Node, tenant: &Tenant) -> Option<Arc<TenantStore>> {
    node.tenant_store
        .clone()
        .filter(|_| tenant.origin == Origin::Admin)
}

/// Where changes to `tenant` through this API take effect.
fn scope(node: &Node, tenant: &Tenant) -> &'static str {
    if cluster_store(node, tenant).is_some() {
        "cluster"
    } else {
        "node"
    }
}

fn ok(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response()
}

async fn read_json(headers: &HeaderMap, body: Body) -> Result<Value, AdminError> {
    let bytes = read_body(headers, body, MAX_JSON_BODY).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| AdminError::bad_request(format!("the body is not JSON: {e}")))
}

/// A request body of at most `MAX` bytes (413 when it is larger).
pub(super) struct Limited<const MAX: usize>(axum::body::Bytes);

impl<S: Send + Sync, const MAX: usize> axum::extract::FromRequest<S> for Limited<MAX> {
    type Rejection = AdminError;

    async fn from_request(
        request: axum::extract::Request,
        _: &S,
    ) -> Result<Limited<MAX>, AdminError> {
        let (parts, body) = request.into_parts();
        read_body(&parts.headers, body, MAX).await.map(Limited)
    }
}

async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, AdminError> {
    let too_large = || {
        AdminError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("the body is larger than {limit} bytes"),
        )
    };
    super::body::read_limited(headers, body, limit)
        .await
        .map_err(|_| too_large())
}
