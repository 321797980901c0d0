//! A tenant's hub plugins: list versions, deploy, roll back.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use crate::address::HubKey;
use crate::plugin::registry::{self};
use crate::plugin::versions::{Source, VersionInfo};

use super::{Admin, AdminError, Limited, MAX_JSON_BODY, ok, tenant_of};
use crate::plugin::MAX_PLUGIN_BYTES;

/// `GET /admin/v1/tenants/{t}/plugins`: hubs, their versions and hashes.
pub(super) async fn plugins(
    Admin(node): Admin,
    Path(name): Path<String>,
) -> Result<Response, AdminError> {
    tenant_of(&node, &name)?;
    let hubs = node.registry.listing(&name).await;
    Ok(ok(StatusCode::OK, json!({ "tenant": name, "hubs": hubs })))
}

pub(super) fn version_json(hub: &HubKey, info: &VersionInfo) -> Value {
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
pub(super) async fn deploy(
    Admin(node): Admin,
    Path((tenant, hub)): Path<(String, String)>,
    Limited(wasm): Limited<MAX_PLUGIN_BYTES>,
) -> Result<Response, AdminError> {
    let hub = HubKey::new(&tenant, &hub.to_ascii_lowercase());
    let deployed = registry::deploy(
        node.plugins(),
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
pub(super) struct RollbackTo {
    version: Option<u64>,
}

/// `POST /admin/v1/tenants/{t}/hubs/{h}/rollback`, optionally with
/// `{"version": N}`: the previous version (or N) serves again.
pub(super) async fn rollback(
    Admin(node): Admin,
    Path((tenant, hub)): Path<(String, String)>,
    Limited(bytes): Limited<MAX_JSON_BODY>,
) -> Result<Response, AdminError> {
    let to: RollbackTo = if bytes.iter().all(u8::is_ascii_whitespace) {
        RollbackTo::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            AdminError::bad_request(format!("expected {{\"version\": N}} or no body: {e}"))
        })?
    };
    let hub = HubKey::new(&tenant, &hub.to_ascii_lowercase());
    let info = registry::rollback(node.plugins(), hub.clone(), to.version).await?;
    Ok(ok(StatusCode::OK, version_json(&hub, &info)))
}
