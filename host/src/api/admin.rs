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

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::config::{Limits, TenantConfig};
use crate::node::Node;
use crate::plugin::LoadError;
use crate::plugin::registry::{self, DeployError};
use crate::plugin::versions::{RollbackError, Source, VersionInfo};
use crate::router::HubKey;
use crate::tenant::cluster::{self, TenantStore, TenantStoreError};
use crate::tenant::{Origin, Tenant, TenantError, TenantKeys};

/// The header that may carry an admin key (else `Authorization: Bearer`).
pub const ADMIN_KEY_HEADER: &str = "x-admin-key";

/// Largest plugin a deploy accepts, in bytes.
pub const MAX_PLUGIN_BYTES: usize = 32 << 20;
/// Largest JSON body of the other admin requests, in bytes.
const MAX_JSON_BODY: usize = 64 << 10;

/// A failed admin request: its status, a stable code and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AdminError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AdminError {
        AdminError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> AdminError {
        AdminError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.code, "message": self.message }).to_string();
        let mut response = (
            self.status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<TenantError> for AdminError {
    fn from(e: TenantError) -> AdminError {
        let (status, code) = match &e {
            TenantError::Unknown(_) => (StatusCode::NOT_FOUND, "UnknownTenant"),
            TenantError::Exists(_) => (StatusCode::CONFLICT, "TenantExists"),
            TenantError::Invalid(_) => (StatusCode::BAD_REQUEST, "InvalidTenant"),
        };
        AdminError::new(status, code, e.to_string())
    }
}

impl From<TenantStoreError> for AdminError {
    fn from(e: TenantStoreError) -> AdminError {
        let (status, code) = match &e {
            TenantStoreError::Exists(_) => (StatusCode::CONFLICT, "TenantExists"),
            TenantStoreError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            TenantStoreError::Unavailable(_) | TenantStoreError::BadEntry { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "ClusterUnavailable")
            }
        };
        AdminError::new(status, code, e.to_string())
    }
}

impl From<DeployError> for AdminError {
    fn from(e: DeployError) -> AdminError {
        let (status, code) = match &e {
            DeployError::UnknownTenant(_) => (StatusCode::NOT_FOUND, "UnknownTenant"),
            DeployError::UnknownHub { .. } => (StatusCode::NOT_FOUND, "UnknownHub"),
            DeployError::BadHubName(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            DeployError::Invalid(load) => match load {
                LoadError::NotComponent(_) => (StatusCode::BAD_REQUEST, "NotAComponent"),
                LoadError::Compile(_) => (StatusCode::BAD_REQUEST, "InvalidComponent"),
                LoadError::UnsupportedImport(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "UnsupportedImport")
                }
                LoadError::WrongWorld(_) => (StatusCode::UNPROCESSABLE_ENTITY, "WrongWorld"),
                LoadError::Describe(_) => (StatusCode::UNPROCESSABLE_ENTITY, "DescribeFailed"),
                #[allow(unreachable_patterns)]
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "LoadFailed"),
            },
            DeployError::Rollback(RollbackError::UnknownVersion(_)) => {
                (StatusCode::NOT_FOUND, "UnknownVersion")
            }
            DeployError::Rollback(RollbackError::NoEarlier(_)) => {
                (StatusCode::CONFLICT, "NoEarlierVersion")
            }
            DeployError::Rollback(RollbackError::AlreadyCurrent(_)) => {
                (StatusCode::CONFLICT, "AlreadyCurrent")
            }
            DeployError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "ClusterUnavailable"),
        };
        AdminError::new(status, code, e.to_string())
    }
}

/// Proof that a request carries an admin key; handlers take it first.
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<Arc<Node>> for Admin {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Admin, AdminError> {
        authorize(node, &parts.headers).map(|()| Admin)
    }
}

/// Checks the admin key of a request against the config's `[admin] keys`.
/// No keys configured: 403 (the API is off). No key or a wrong one: 401. A
/// tenant's API key: 403 (a real credential, of the wrong kind).
pub fn authorize(node: &Node, headers: &HeaderMap) -> Result<(), AdminError> {
    let live = node.live_config();
    let keys = &live.admin.keys;
    if keys.is_empty() {
        return Err(AdminError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the admin API is disabled: the config has no [admin] keys",
        ));
    }
    let presented = headers
        .get(ADMIN_KEY_HEADER)
        .map(HeaderValue::as_bytes)
        .or_else(|| {
            headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|v| v.trim().as_bytes())
        });
    let Some(presented) = presented else {
        return Err(AdminError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "an admin key is required (Authorization: Bearer KEY, or X-Admin-Key: KEY)",
        ));
    };
    if keys.iter().any(|k| same_secret(k.as_bytes(), presented)) {
        return Ok(());
    }
    let is_tenant_key = node.tenants.names().iter().any(|name| {
        node.tenants.get(name).is_some_and(|t| {
            t.keys()
                .api_keys
                .iter()
                .any(|k| same_secret(k.as_bytes(), presented))
        })
    });
    if is_tenant_key {
        return Err(AdminError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "a tenant's API key is not an admin key",
        ));
    }
    Err(AdminError::new(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "the key is not an admin key",
    ))
}

/// Compares secrets in constant time (as digests, so lengths leak nothing).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// How a key is named in answers and in `DELETE .../keys/{id}`: the first
/// 16 hex digits of its SHA-256 (the key itself is never shown).
pub fn key_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub fn routes() -> Router<Arc<Node>> {
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

/// A tenant as answers show it: settings, key ids (never the keys), hubs.
async fn describe_tenant(node: &Node, tenant: &Tenant) -> Value {
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
        "public_keys": !tenant.config.verify_keys.is_empty(),
        "hubs": hubs,
        "connections": connections,
        "limits": tenant.limits(),
        "scope": scope(node, tenant),
    })
}

async fn list_tenants(_: Admin, State(node): State<Arc<Node>>) -> Response {
    let mut tenants = Vec::new();
    for name in node.tenants.names() {
        if let Some(tenant) = node.tenants.get(&name) {
            tenants.push(describe_tenant(&node, &tenant).await);
        }
    }
    ok(StatusCode::OK, json!({ "tenants": tenants }))
}

async fn show_tenant(
    _: Admin,
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> Result<Response, AdminError> {
    let tenant = tenant_of(&node, &name)?;
    Ok(ok(StatusCode::OK, describe_tenant(&node, &tenant).await))
}

/// `POST /admin/v1/tenants` with `{"name": ..., <the config file's tenant settings>}`.
async fn create_tenant(
    _: Admin,
    State(node): State<Arc<Node>>,
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
        if let Err(e) = crate::plugin::store::sync_all(&node, Some(&name)).await {
            warn!(tenant = %name, error = %e, "cannot load the tenant's cluster plugin versions");
        }
    }
    Ok(ok(
        StatusCode::CREATED,
        describe_tenant(&node, &tenant).await,
    ))
}

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    reason: Option<String>,
}

/// `DELETE /admin/v1/tenants/{t}[?reason=...]`: removes the tenant and its
/// hubs, and closes its connections with the reason (on every node, in a
/// cluster; `closed_connections` counts this node's).
async fn delete_tenant(
    _: Admin,
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<Response, AdminError> {
    let tenant = tenant_of(&node, &name)?;
    let reason = query
        .reason
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| cluster::deleted_reason(&name));
    let reason = crate::plugin::truncate(&reason, 512).to_owned();
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
    let closed = cluster::close_local(&node, &name, &reason);
    info!(tenant = %name, closed, scope, "tenant deleted");
    Ok(ok(
        StatusCode::OK,
        json!({ "deleted": name, "closed_connections": closed, "scope": scope }),
    ))
}

/// Which key list a path names.
fn key_list<'a>(keys: &'a mut TenantKeys, kind: &str) -> Result<&'a mut Vec<String>, AdminError> {
    match kind {
        "signing-keys" => Ok(&mut keys.signing_keys),
        "api-keys" => Ok(&mut keys.api_keys),
        other => Err(AdminError::new(
            StatusCode::NOT_FOUND,
            "NoRoute",
            format!("no admin route .../{other}: use signing-keys or api-keys"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    key: String,
}

/// `POST /admin/v1/tenants/{t}/{signing-keys|api-keys}` with `{"key": ...}`:
/// adds a key; the existing ones stay valid until removed.
async fn add_key(
    _: Admin,
    State(node): State<Arc<Node>>,
    Path((name, kind)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AdminError> {
    key_list(&mut TenantKeys::default(), &kind)?;
    let new: NewKey = serde_json::from_value(read_json(&headers, body).await?)
        .map_err(|e| AdminError::bad_request(format!("expected {{\"key\": \"...\"}}: {e}")))?;
    if new.key.is_empty() {
        return Err(AdminError::bad_request("the key is empty"));
    }
    let id = key_id(&new.key);
    let added = change_keys(&node, &name, &kind, |list| {
        if list.contains(&new.key) {
            false
        } else {
            list.push(new.key.clone());
            true
        }
    })
    .await?;
    info!(tenant = %name, kind = %kind, key_id = %id, "tenant key added");
    let tenant = tenant_of(&node, &name)?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(ok(
        status,
        json!({ "id": id, "tenant": describe_tenant(&node, &tenant).await }),
    ))
}

/// `DELETE /admin/v1/tenants/{t}/{signing-keys|api-keys}/{id}`: removes a key.
async fn remove_key(
    _: Admin,
    State(node): State<Arc<Node>>,
    Path((name, kind, id)): Path<(String, String, String)>,
) -> Result<Response, AdminError> {
    key_list(&mut TenantKeys::default(), &kind)?;
    let found = change_keys(&node, &name, &kind, |list| {
        let before = list.len();
        list.retain(|k| key_id(k) != id);
        list.len() != before
    })
    .await?;
    if !found {
        return Err(AdminError::new(
            StatusCode::NOT_FOUND,
            "UnknownKey",
            format!("tenant '{name}' has no {kind} entry with id '{id}'"),
        ));
    }
    info!(tenant = %name, kind = %kind, key_id = %id, "tenant key removed");
    let tenant = tenant_of(&node, &name)?;
    Ok(ok(StatusCode::OK, describe_tenant(&node, &tenant).await))
}

/// How often a key change retries when another node changed the tenant meanwhile.
const KEY_CHANGE_ATTEMPTS: usize = 3;

/// Changes one key list of a tenant with `change`, which says whether it
/// changed anything; returns that. In a cluster, for a tenant of the admin
/// API, the change is made to the tenant store's entry (a compare-and-set,
/// retried when another node changed it meanwhile), then applied here.
async fn change_keys(
    node: &Node,
    name: &str,
    kind: &str,
    change: impl Fn(&mut Vec<String>) -> bool,
) -> Result<bool, AdminError> {
    let tenant = tenant_of(node, name)?;
    let Some(store) = cluster_store(node, &tenant) else {
        let mut changed = false;
        node.tenants.update_keys(name, |keys| {
            let list = key_list(keys, kind).map_err(|e| e.message)?;
            changed = change(list);
            Ok(())
        })?;
        return Ok(changed);
    };
    for _ in 0..KEY_CHANGE_ATTEMPTS {
        // No live entry (the cluster's NATS lost it): this node's settings write it again.
        let (mut config, revision) = store
            .get(name)
            .await?
            .unwrap_or_else(|| (tenant.current_config(), 0));
        let mut keys = TenantKeys {
            signing_keys: std::mem::take(&mut config.signing_keys),
            api_keys: std::mem::take(&mut config.api_keys),
        };
        if !change(key_list(&mut keys, kind)?) {
            return Ok(false);
        }
        node.tenants.check_keys(name, &keys)?;
        config.signing_keys = keys.signing_keys;
        config.api_keys = keys.api_keys;
        match store.update(name, &config, revision).await {
            Ok(revision) => {
                node.tenants.apply_stored(name, config, revision)?;
                return Ok(true);
            }
            Err(TenantStoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(TenantStoreError::Conflict(name.to_owned()).into())
}

/// `GET /admin/v1/tenants/{t}/plugins`: hubs, their versions and hashes.
async fn plugins(
    _: Admin,
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> Result<Response, AdminError> {
    tenant_of(&node, &name)?;
    let hubs = node.registry.listing(&name).await;
    Ok(ok(StatusCode::OK, json!({ "tenant": name, "hubs": hubs })))
}

fn version_json(hub: &HubKey, info: &VersionInfo) -> Value {
    json!({
        "tenant": &*hub.tenant,
        "hub": &*hub.hub,
        "version": info.version,
        "sha256": info.sha256,
        "size": info.size,
        "deployed_at": info.deployed_at(),
        "deployed_at_ms": info.deployed_at_ms,
        "source": info.source,
    })
}

/// `POST /admin/v1/tenants/{t}/hubs/{h}/deploy` with the `.wasm` file as the body.
async fn deploy(
    _: Admin,
    State(node): State<Arc<Node>>,
    Path((tenant, hub)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AdminError> {
    let wasm = read_body(&headers, body, MAX_PLUGIN_BYTES).await?;
    let hub = HubKey::new(&tenant, &hub.to_ascii_lowercase());
    let deployed = registry::deploy(
        &node,
        hub.clone(),
        wasm.to_vec(),
        Source::Api,
        "admin API".into(),
    )
    .await
    .inspect_err(|e| warn!(hub = %hub, error = %e, "deploy rejected"))?;
    let mut body = version_json(&hub, &deployed.info);
    body["changed"] = Value::Bool(deployed.changed);
    if let Some(plugin) = node.registry.get(&hub) {
        let mut methods: Vec<&str> = plugin.methods().map(|m| m.name.as_str()).collect();
        methods.sort_unstable();
        body["methods"] = json!(methods);
    }
    Ok(ok(StatusCode::OK, body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackTo {
    version: Option<u64>,
}

/// `POST /admin/v1/tenants/{t}/hubs/{h}/rollback`, optionally with
/// `{"version": N}`: the previous version (or N) serves again.
async fn rollback(
    _: Admin,
    State(node): State<Arc<Node>>,
    Path((tenant, hub)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AdminError> {
    let bytes = read_body(&headers, body, MAX_JSON_BODY).await?;
    let to: RollbackTo = if bytes.iter().all(u8::is_ascii_whitespace) {
        RollbackTo::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            AdminError::bad_request(format!("expected {{\"version\": N}} or no body: {e}"))
        })?
    };
    let hub = HubKey::new(&tenant, &hub.to_ascii_lowercase());
    let info = registry::rollback(&node, hub.clone(), to.version).await?;
    Ok(ok(StatusCode::OK, version_json(&hub, &info)))
}

async fn read_json(headers: &HeaderMap, body: Body) -> Result<Value, AdminError> {
    let bytes = read_body(headers, body, MAX_JSON_BODY).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| AdminError::bad_request(format!("the body is not JSON: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_stable_and_do_not_show_the_key() {
        let id = key_id("a-secret-key-0123456789");
        assert_eq!(id.len(), 16);
        assert_eq!(id, key_id("a-secret-key-0123456789"));
        assert_ne!(id, key_id("another-key-0123456789"));
        assert!(!id.contains("secret"));
    }

    #[test]
    fn deploy_errors_have_status_and_code() {
        let e: AdminError = DeployError::Invalid(LoadError::WrongWorld("x".into())).into();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::UNPROCESSABLE_ENTITY, "WrongWorld")
        );
        let e: AdminError = DeployError::Rollback(RollbackError::NoEarlier(1)).into();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::CONFLICT, "NoEarlierVersion")
        );
        let e: AdminError = TenantError::Exists("a".into()).into();
        assert_eq!(e.status, StatusCode::CONFLICT);
    }
}
