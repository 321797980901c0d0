//! Admin keys: who may use the admin API.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use crate::api::auth::same_secret;
use crate::node::Node;

use super::{ADMIN_KEY_HEADER, AdminError};

/// Proof that a request carries an admin key; handlers take it first.
/// A request that presented an admin key, and the node it is for.
#[derive(Debug)]
pub struct Admin(pub Arc<Node>);

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    Arc<Node>: FromRef<S>,
{
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Admin, AdminError> {
        let node = Arc::<Node>::from_ref(state);
        authorize(&node, &parts.headers).map(|()| Admin(node))
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

/// How a key is named in answers and in `DELETE .../keys/{id}`: the first
/// 16 hex digits of its SHA-256 (the key itself is never shown).
pub fn key_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
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
}
