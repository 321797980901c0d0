//! Client authentication: HS256 bearer tokens signed with one of the tenant's
//! keys, or anonymous access where the tenant allows it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use crate::config::TenantConfig;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The user id (the configured claim, `sub` by default); none when anonymous.
    pub user_id: Option<String>,
    /// All claims of the token, as a JSON object; empty when anonymous.
    pub claims: Map<String, Value>,
}

impl Identity {
    pub fn anonymous() -> Identity {
        Identity {
            user_id: None,
            claims: Map::new(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("a token is required")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Checks `token` against the tenant's keys. No token is fine only for a
/// tenant that allows anonymous connections.
pub fn authenticate(tenant: &TenantConfig, token: Option<&str>) -> Result<Identity, AuthError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return if tenant.allow_anonymous {
            Ok(Identity::anonymous())
        } else {
            Err(AuthError::Missing)
        };
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    let mut last_error = AuthError::Invalid("the tenant has no signing keys".into());
    for key in &tenant.signing_keys {
        match jsonwebtoken::decode::<Map<String, Value>>(
            token,
            &DecodingKey::from_secret(key.as_bytes()),
            &validation,
        ) {
            Ok(data) => {
                let user_id = user_id_from(&data.claims, &tenant.user_claim);
                return Ok(Identity {
                    user_id,
                    claims: data.claims,
                });
            }
            Err(e) => last_error = AuthError::Invalid(e.to_string()),
        }
    }
    Err(last_error)
}

/// The user id claim; a number is accepted as its decimal text.
fn user_id_from(claims: &Map<String, Value>, claim: &str) -> Option<String> {
    match claims.get(claim) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Mints a client token for `user` signed with `key`, valid for `ttl`.
pub fn mint_token(
    key: &str,
    user: &str,
    ttl: Duration,
    extra: Map<String, Value>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut claims = extra;
    claims.insert("sub".into(), Value::String(user.to_owned()));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now + ttl.as_secs()));
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;

    fn tenant(anonymous: bool, keys: &[&str]) -> TenantConfig {
        TenantConfig {
            allow_anonymous: anonymous,
            signing_keys: keys.iter().map(|k| k.to_string()).collect(),
            user_claim: "sub".into(),
            limits: Limits::default(),
        }
    }

    fn token(key: &str, user: &str) -> String {
        mint_token(key, user, Duration::from_secs(60), Map::new()).expect("mint")
    }

    #[test]
    fn anonymous_only_where_allowed() {
        assert_eq!(
            authenticate(&tenant(true, &[]), None),
            Ok(Identity::anonymous())
        );
        assert_eq!(
            authenticate(&tenant(false, &["k"]), None),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn accepts_any_configured_key_for_rotation() {
        let t = tenant(false, &["old", "new"]);
        for key in ["old", "new"] {
            let id = authenticate(&t, Some(&token(key, "alice"))).expect("valid");
            assert_eq!(id.user_id.as_deref(), Some("alice"));
            assert_eq!(id.claims["sub"], "alice");
        }
    }

    #[test]
    fn rejects_forged_and_expired() {
        let t = tenant(true, &["right"]);
        assert!(matches!(
            authenticate(&t, Some(&token("wrong", "alice"))),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            authenticate(&t, Some("not-a-jwt")),
            Err(AuthError::Invalid(_))
        ));
        let mut claims = Map::new();
        claims.insert("sub".into(), "bob".into());
        claims.insert("exp".into(), Value::from(1_000_u64));
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"right"),
        )
        .expect("encode");
        assert!(authenticate(&t, Some(&expired)).is_err());
    }

    #[test]
    fn configurable_user_claim() {
        let mut t = tenant(false, &["k"]);
        t.user_claim = "nameid".into();
        let mut extra = Map::new();
        extra.insert("nameid".into(), "carol".into());
        let tok = mint_token("k", "ignored-sub", Duration::from_secs(60), extra).expect("mint");
        let id = authenticate(&t, Some(&tok)).expect("valid");
        assert_eq!(id.user_id.as_deref(), Some("carol"));
    }
}
