//! Tenants: list, show, create, delete.

use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::config::{Limits, TenantConfig};
use crate::node::Node;
use crate::tenant::cluster::{self};
use crate::tenant::{Tenant, TenantError};

use super::{Admin, AdminError, cluster_store, key_id, ok, read_json, scope, tenant_of};

/// A tenant as answers show it: settings, key ids (never the keys), hubs.
pub(super) async fn describe_tenant(node: &Node, tenant: &Tenant) -> Value {
    let keys = tenant.keys();
    let ids = |list: &[String]| {
        list.iter()
            .map(|k| json!({ "id": key_id(k) }))
            .collect::<Vec<_>>()
    };
    let hubs: Vec<String> = node
        .registry
        .listing(&tenant.name)
        .await
        .into_iter()
        .map(|h| h.hub)
        .collect();
    let connections = node
        .router
        .local_connections()
        .iter()
        .filter(|c| c.hub.tenant == tenant.name)
        .count();
    json!({
        "name": &*tenant.name,
        "allow_anonymous": tenant.config.allow_anonymous,
        "user_claim": tenant.config.user_claim,
        "allowed_origins": tenant.config.allowed_origins,
        "durable_resume_except": tenant.config.durable_resume_except,
        "signing_keys": ids(&keys.signing_keys),
        "api_keys": ids(&keys.api_keys),
        "public_keys": !tenant.public_keys().is_empty(),
        "hubs": hubs,
        "connections": connections,
        "limits": tenant.limits(),
        "scope": scope(node, tenant),
    })
}

pub(super) async fn list_tenants(Admin(node): Admin) -> Response {
    let mut tenants = Vec::new();
    for name in node.tenants.names() {
        if let Some(tenant) = node.tenants.get(&name) {
            tenants.push(describe_tenant(&node, &tenant).await);
        }
    }
    ok(StatusCode::OK, json!({ "tenants": tenants }))
}

pub(super) async fn show_tenant(
    Admin(node): Admin,
    Path(name): Path<String>,
) -> Result<Response, AdminError> {
    let tenant = tenant_of(&node, &name)?;
    Ok(ok(StatusCode::OK, describe_tenant(&node, &tenant).await))
}

/// `POST /admin/v1/tenants` with `{"name": ..., <the config file's tenant settings>}`.
pub(super) async fn create_tenant(
    Admin(node): Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AdminError> {
    let mut body: Value = read_json(&headers, body).await?;
    let Some(fields) = body.as_object_mut() else {
        return Err(AdminError::bad_request("the body must be a JSON object"));
    };
    let name = match fields.remove("name") {
        Some(Value::String(name)) => name,
        _ => return Err(AdminError::bad_request("\"name\" (a string) is required")),
    };
    if fields.contains_key("public_keys") || fields.contains_key("jwks_file") {
        return Err(AdminError::bad_request(
            "public_keys and jwks_file name files on the node: set them in the config file",
        ));
    }
    if fields.contains_key("jwks_url") {
        return Err(AdminError::bad_request(
            "jwks_url is set in the config file (each node fetches it)",
        ));
    }
    // Limits it leaves out are the node's `[limits]`, as in the config file.
    let limits =
        Limits::from_json_over(&node.live_config().limits, fields.remove("limits").as_ref())
            .map_err(|e| AdminError::bad_request(format!("invalid tenant limits: {e}")))?;
    let mut config: TenantConfig = serde_json::from_value(body)
        .map_err(|e| AdminError::bad_request(format!("invalid tenant settings: {e}")))?;
    config.limits = limits;
    let tenant = node.tenants.create(&name, config)?;
    if let Some(store) = cluster_store(&node, &tenant) {
        match store.create(&name, &tenant.current_config()).await {
            Ok(revision) => tenant.seen_revision(revision),
            Err(e) => {
                node.tenants.remove_if_same(&name, &tenant);
                return Err(e.into());
            }
        }
    }
    info!(tenant = %name, scope = scope(&node, &tenant), "tenant created");
    if node.registry.store().is_some() {
        // Hubs deployed to this tenant in the cluster before it existed here.
        if let Err(e) = crate::plugin::store::sync_all(node.plugins(), Some(&name)).await {
            warn!(tenant = %name, error = %e, "cannot load the tenant's cluster plugin versions");
        }
    }
    Ok(ok(
        StatusCode::CREATED,
        describe_tenant(&node, &tenant).await,
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct DeleteQuery {
    reason: Option<String>,
}

/// `DELETE /admin/v1/tenants/{t}[?reason=...]`: removes the tenant and its
/// hubs, and closes its connections with the reason (on every node, in a
/// cluster; `closed_connections` counts this node's).
pub(super) async fn delete_tenant(
    Admin(node): Admin,
    Path(name): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<Response, AdminError> {
    let tenant = tenant_of(&node, &name)?;
    let reason = query
        .reason
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| cluster::deleted_reason(&name));
    let reason = crate::error_text::truncate(&reason, 512).to_owned();
    let scope = scope(&node, &tenant);
    if let Some(store) = cluster_store(&node, &tenant) {
        // This node removes it itself below: its watch must leave it alone.
        let before = tenant.revision();
        tenant.reset_revision(u64::MAX);
        if let Err(e) = store.delete(&name, &reason).await {
            tenant.reset_revision(before);
            return Err(e.into());
        }
    }
    if !node.tenants.remove_if_same(&name, &tenant) {
        return Err(TenantError::Unknown(name).into());
    }
    let closed = crate::node::cluster_tenants::close_local(&node, &name, &reason);
    info!(tenant = %name, closed, scope, "tenant deleted");
    Ok(ok(
        StatusCode::OK,
        json!({ "deleted": name, "closed_connections": closed, "scope": scope }),
    ))
}
