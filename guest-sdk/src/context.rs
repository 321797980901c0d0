//! [`Context`]: who a call is made for.

use serde_json::{Map, Value};

use crate::bindings::types;

/// The connection a hub method, `on_connected` or `on_disconnected` runs for.
///
/// The host builds it from the connection's handshake and token; a plugin
/// only reads it. [`Context::new`] and the `with_*` methods exist so that
/// handlers can be unit-tested natively, without a host.
#[derive(Debug, Clone)]
pub struct Context {
    /// The WIT record as the host sent it; kept whole so nothing is copied.
    inner: types::Context,
}

impl Context {
    /// A context for `connection_id` of `tenant`'s `hub`: anonymous, no claims.
    pub fn new(
        tenant: impl Into<String>,
        hub: impl Into<String>,
        connection_id: impl Into<String>,
    ) -> Self {
        Self {
            inner: types::Context {
                tenant: tenant.into(),
                hub: hub.into(),
                connection_id: connection_id.into(),
                user_id: None,
                claims_json: "{}".to_owned(),
            },
        }
    }

    /// The same context for an authenticated user.
    pub fn with_user(mut self, user_id: impl Into<String>) -> Self {
        self.inner.user_id = Some(user_id.into());
        self
    }

    /// The same context with these token claims (a JSON object).
    pub fn with_claims(mut self, claims: &Value) -> Self {
        self.inner.claims_json = claims.to_string();
        self
    }

    /// The connection's id: what [`crate::clients::connection`] and
    /// [`crate::groups::add`] take.
    pub fn connection_id(&self) -> &str {
        &self.inner.connection_id
    }

    /// The user id from the connection's token (`sub` by default); `None`
    /// when the connection is anonymous.
    pub fn user_id(&self) -> Option<&str> {
        self.inner.user_id.as_deref()
    }

    /// The tenant the hub belongs to. Every host call is already scoped to
    /// it, so a plugin needs this only for logging or multi-tenant code.
    pub fn tenant(&self) -> &str {
        &self.inner.tenant
    }

    /// The hub's name (the path segment clients connect to).
    pub fn hub(&self) -> &str {
        &self.inner.hub
    }

    /// The token's claims as a JSON object; empty when anonymous.
    ///
    /// Parsed on every call (most methods never look), so keep the value if
    /// you read several claims. Claims that are not a JSON object, which
    /// only a broken host could send, read as an empty object.
    pub fn claims(&self) -> Value {
        match serde_json::from_str(&self.inner.claims_json) {
            Ok(Value::Object(claims)) => Value::Object(claims),
            _ => Value::Object(Map::new()),
        }
    }

    /// The claims exactly as the host sent them (JSON object text).
    pub fn claims_json(&self) -> &str {
        &self.inner.claims_json
    }
}

impl From<types::Context> for Context {
    fn from(inner: types::Context) -> Self {
        Self { inner }
    }
}

#[cfg(test)]
mod tests;
