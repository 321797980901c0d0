//! A tenant's signing and API keys: add, remove, in a cluster by compare-and-set.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tracing::info;

use crate::node::Node;
use crate::tenant::TenantKeys;
use crate::tenant::cluster::TenantStoreError;

use super::tenants::describe_tenant;
use super::{Admin, AdminError, cluster_store, key_id, ok, read_json, tenant_of};

/// Which key list a path names.
pub(super) fn key_list<'a>(
    keys: &'a mut TenantKeys,
    kind: &str,
) -> Result<&'a mut Vec<String>, AdminError> {
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
pub(super) struct NewKey {
    key: String,
}

/// `POST /admin/v1/tenants/{t}/{signing-keys|api-keys}` with `{"key": ...}`:
/// adds a key; the existing ones stay valid until removed.
pub(super) async fn add_key(
    Admin(node): Admin,
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
pub(super) async fn remove_key(
    Admin(node): Admin,
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
pub(super) async fn change_keys(
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
