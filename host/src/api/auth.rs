//! Who may call the REST API of a tenant: a holder of one of its `api_keys`,
//! shown either as the key itself (`X-Api-Key`, for simple setups) or as a
//! short-lived HS256 JWT signed with it (`Authorization: Bearer`), as the
//! Azure SignalR data-plane API does.
//!
//! Token rules:
//! - signed HS256 with one of the tenant's `api_keys` (two or more at once
//!   allow rotation); other algorithms are refused;
//! - `exp` is required and at most [`MAX_TOKEN_LIFETIME`] ahead;
//! - `aud` names the request URL without query: `http(s)://host/path`, or
//!   just `/path`. Only the path is compared, because the scheme and host a
//!   backend used (a load balancer's name, TLS ended in front of the node)
//!   are not what the node sees. With `public_url` configured, the scheme
//!   and host must equal it too. An `aud` of the tenant
//!   (`.../api/v1/tenants/{t}`) or hub (`.../hubs/{h}`) URL covers every
//!   route below it, so one token can serve many calls. In Azure's path
//!   style the hub URL (`.../api/hubs/{h}`) is such a scope too.
//!
//! Refusals: no credentials, a malformed, forged or expired token, or an
//! unknown key -> 401; a valid token for another URL (another tenant or hub),
//! or a tenant without API keys -> 403. Tokens never appear in logs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// The header that carries a plain API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The longest an API token may be valid from now.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = crate::tenant::auth::LEEWAY_SECS;

/// Checks a request's credentials against `api_keys` of tenant `tenant`.
pub fn authorize(
    tenant: &str,
    api_keys: &[String],
    headers: &HeaderMap,
    path: &str,
    public_url: Option<&str>,
) -> Result<(), ApiError> {
    if api_keys.is_empty() {
        return Err(ApiError::Forbidden(format!(
            "tenant '{tenant}' has no api_keys: its REST API is disabled"
        )));
    }
    if let Some(key) = headers.get(API_KEY_HEADER) {
        let key = key.as_bytes();
        return if api_keys.iter().any(|k| same_secret(k.as_bytes(), key)) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized(format!(
                "the X-Api-Key is not an API key of tenant '{tenant}'"
            )))
        };
    }
    let Some(token) = bearer(headers) else {
        return Err(ApiError::Unauthorized(
            "an Authorization: Bearer token or an X-Api-Key header is required".into(),
        ));
    };
    let claims = verify_token(tenant, api_keys, token)?;
    check_audience(&claims, path, public_url)
}

/// Whether the request's credentials are one of `api_keys`: the key itself
/// or a token it signed (nothing else is checked here). This finds the
/// tenant of a request in Azure's path style, which names none; tenants
/// never share API keys, so at most one tenant matches. [`authorize`] then
/// checks the request as for any other.
pub fn signed_with_one_of(api_keys: &[String], headers: &HeaderMap) -> bool {
    if let Some(key) = headers.get(API_KEY_HEADER) {
        let key = key.as_bytes();
        return api_keys.iter().any(|k| same_secret(k.as_bytes(), key));
    }
    let Some(token) = bearer(headers) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.set_required_spec_claims::<&str>(&[]);
    api_keys.iter().any(|key| {
        DecodingKey::from_secret(key.as_bytes()).is_ok_and(|key| {
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).is_ok()
        })
    })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares secrets in constant time, as digests so that lengths leak
/// nothing either; for API keys here and admin keys in [`super::admin`].
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The claims of `token` if one of `keys` signed it and it has not expired.
fn verify_token(
    tenant: &str,
    keys: &[String],
    token: &str,
) -> Result<Map<String, Value>, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    validation.leeway = LEEWAY_SECS;
    // A token with `nbf` is not valid before it (RFC 7519 4.1.5).
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp"]);
    let mut refusal = String::new();
    for key in keys {
        // An empty key verifies nothing (jsonwebtoken refuses it as an HMAC key).
        let Ok(key) = DecodingKey::from_secret(key.as_bytes()) else {
            continue;
        };
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
            Ok(data) => {
                let exp = data.claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
                if exp > now_secs() + MAX_TOKEN_LIFETIME.as_secs() + LEEWAY_SECS {
                    return Err(ApiError::Unauthorized(format!(
                        "the token expires more than {} s from now; API tokens must be short-lived",
                        MAX_TOKEN_LIFETIME.as_secs()
                    )));
                }
                return Ok(data.claims);
            }
            Err(e) => {
                refusal = match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired".into(),
                    ErrorKind::ImmatureSignature => {
                        "the token is not valid yet (its nbf is in the future)".into()
                    }
                    ErrorKind::InvalidSignature => {
                        format!("the token is not signed with an API key of tenant '{tenant}'")
                    }
                    ErrorKind::MissingRequiredClaim(c) => format!("the token has no '{c}' claim"),
                    ErrorKind::InvalidAlgorithm => "the token must be signed with HS256".into(),
                    _ => format!("malformed token: {e}"),
                };
                // Expiry and claims do not depend on the key: no use trying others.
                if !matches!(e.kind(), ErrorKind::InvalidSignature) {
                    break;
                }
            }
        }
    }
    Err(ApiError::Unauthorized(refusal))
}

/// The token's `aud` must name this request's URL, or the tenant or hub above it.
fn check_audience(
    claims: &Map<String, Value>,
    path: &str,
    public_url: Option<&str>,
) -> Result<(), ApiError> {
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => {
            return Err(ApiError::Unauthorized(
                "the token has no 'aud' claim".into(),
            ));
        }
    };
    if audiences
        .iter()
        .any(|aud| audience_covers(aud, path, public_url))
    {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "the token's audience (aud) is not this URL, nor its tenant or hub".into(),
        ))
    }
}

/// Whether `aud` covers a request to `path` (see the module docs).
pub fn audience_covers(aud: &str, path: &str, public_url: Option<&str>) -> bool {
    let aud_path = match public_url {
        Some(base) => match aud.strip_prefix(base.trim_end_matches('/')) {
            Some(rest) if rest.starts_with('/') => rest,
            _ => return false,
        },
        None => match aud.split_once("://") {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
            {
                match rest.find('/') {
                    Some(at) => &rest[at..],
                    None => return false,
                }
            }
            Some(_) => return false,
            None => aud,
        },
    };
    let aud_path = aud_path.split(['?', '#']).next().unwrap_or_default();
    let aud_path = aud_path.trim_end_matches('/');
    let path = path.trim_end_matches('/');
    if aud_path == path {
        return true;
    }
    // A scope: the tenant or one of its hubs, never less.
    if let Some(hub) = aud_path.strip_prefix(super::routes::AZURE_PREFIX) {
        return !hub.is_empty()
            && !hub.contains('/')
            && path
                .strip_prefix(aud_path)
                .is_some_and(|r| r.starts_with('/'));
    }
    let Some(scope) = aud_path.strip_prefix(super::routes::PREFIX) else {
        return false;
    };
    let depth = scope.split('/').count();
    let is_scope = match depth {
        1 => !scope.is_empty(),
        3 => scope.split('/').nth(1) == Some("hubs"),
        _ => false,
    };
    is_scope
        && path
            .strip_prefix(aud_path)
            .is_some_and(|r| r.starts_with('/'))
}

/// Mints an API token for `aud` (a URL without query), signed with `key`.
pub fn mint_api_token(
    key: &str,
    aud: &str,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut claims = Map::new();
    claims.insert("aud".into(), Value::String(aud.to_owned()));
    crate::tenant::auth::mint_hs256(key, claims, ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use jsonwebtoken::{EncodingKey, Header};

    const PATH: &str = "/api/v1/tenants/acme/hubs/orders/users/u1/:send";
    const KEYS: &[&str] = &["old-key-0123456789", "new-key-0123456789"];

    fn keys() -> Vec<String> {
        KEYS.iter().map(|k| k.to_string()).collect()
    }

    fn with_bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        h
    }

    fn check(headers: &HeaderMap) -> Result<(), ApiError> {
        authorize("acme", &keys(), headers, PATH, None)
    }

    fn sign(claims: Value, key: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(key.as_bytes()).expect("key"),
        )
        .expect("sign")
    }

    #[test]
    fn api_key_header_any_configured_key() {
        for key in KEYS {
            let mut h = HeaderMap::new();
            h.insert(API_KEY_HEADER, HeaderValue::from_static(key));
            assert_eq!(check(&h), Ok(()));
        }
        let mut h = HeaderMap::new();
        h.insert(API_KEY_HEADER, HeaderValue::from_static("nope-0123456789"));
        assert!(matches!(check(&h), Err(ApiError::Unauthorized(_))));
        assert!(matches!(
            check(&HeaderMap::new()),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            authorize("acme", &[], &h, PATH, None),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn tokens_for_this_url_with_either_key() {
        for key in KEYS {
            for aud in [
                format!("http://127.0.0.1:5000{PATH}"),
                format!("https://push.example.com{PATH}/"),
                PATH.to_owned(),
                "http://lb/api/v1/tenants/acme".to_owned(),
                "http://lb/api/v1/tenants/acme/hubs/orders".to_owned(),
            ] {
                let token = mint_api_token(key, &aud, Duration::from_secs(60)).expect("mint");
                assert_eq!(check(&with_bearer(&token)), Ok(()), "{aud}");
            }
        }
    }

    #[test]
    fn azure_style_audiences_and_the_key_tells_the_tenant() {
        let path = "/api/hubs/orders/users/u1/:send";
        for aud in [
            // What Azure's management SDK signs: the request URL, query and all.
            format!("https://x.service.signalr.net{path}?application=acme&api-version=2022-06-01"),
            "http://lb/api/hubs/orders".to_owned(),
            path.to_owned(),
        ] {
            let token = mint_api_token(KEYS[1], &aud, Duration::from_secs(60)).expect("mint");
            let headers = with_bearer(&token);
            assert!(signed_with_one_of(&keys(), &headers));
            assert!(!signed_with_one_of(
                &["other-key-0123456789".into()],
                &headers
            ));
            assert_eq!(
                authorize("acme", &keys(), &headers, path, None),
                Ok(()),
                "{aud}"
            );
        }
        for aud in [
            "http://lb/api/hubs/other",
            "http://lb/api/hubs",
            "/api/hubs/orders/users",
        ] {
            let token = mint_api_token(KEYS[0], aud, Duration::from_secs(60)).expect("mint");
            assert!(
                matches!(
                    authorize("acme", &keys(), &with_bearer(&token), path, None),
                    Err(ApiError::Forbidden(_))
                ),
                "{aud}"
            );
        }
        let mut plain = HeaderMap::new();
        plain.insert(API_KEY_HEADER, HeaderValue::from_static(KEYS[0]));
        assert!(signed_with_one_of(&keys(), &plain));
        assert!(!signed_with_one_of(&keys(), &HeaderMap::new()));
    }

    #[test]
    fn refusals() {
        let aud = format!("http://h{PATH}");
        let forged =
            mint_api_token("other-key-0123456789", &aud, Duration::from_secs(60)).expect("mint");
        assert!(matches!(
            check(&with_bearer(&forged)),
            Err(ApiError::Unauthorized(_))
        ));
        let now = now_secs();
        let expired = sign(serde_json::json!({"aud": aud, "exp": now - 600}), KEYS[0]);
        assert_eq!(
            check(&with_bearer(&expired)),
            Err(ApiError::Unauthorized("the token has expired".into()))
        );
        let early = sign(
            serde_json::json!({"aud": aud, "exp": now + 3000, "nbf": now + 2400}),
            KEYS[0],
        );
        assert_eq!(
            check(&with_bearer(&early)),
            Err(ApiError::Unauthorized(
                "the token is not valid yet (its nbf is in the future)".into()
            ))
        );
        let skewed = sign(
            serde_json::json!({"aud": aud, "exp": now + 300, "nbf": now + 20}),
            KEYS[0],
        );
        assert_eq!(check(&with_bearer(&skewed)), Ok(()), "within the leeway");
        let no_exp = sign(serde_json::json!({ "aud": aud }), KEYS[0]);
        assert!(matches!(
            check(&with_bearer(&no_exp)),
            Err(ApiError::Unauthorized(_))
        ));
        let long = sign(
            serde_json::json!({"aud": aud, "exp": now + 86_400}),
            KEYS[0],
        );
        assert!(matches!(
            check(&with_bearer(&long)),
            Err(ApiError::Unauthorized(_))
        ));
        let no_aud = sign(serde_json::json!({"exp": now + 60}), KEYS[0]);
        assert!(matches!(
            check(&with_bearer(&no_aud)),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            check(&with_bearer("garbage")),
            Err(ApiError::Unauthorized(_))
        ));
        for other in [
            "http://h/api/v1/tenants/other/hubs/orders/users/u1/:send",
            "http://h/api/v1/tenants/acme/hubs/chat",
            "http://h/api/v1/tenants/acme/hubs/orders/users/u2/:send",
            "http://h/api/v1/tenants",
            "http://h/api/v1/tenants/ac",
            "ftp://h/api/v1/tenants/acme",
        ] {
            let t = mint_api_token(KEYS[0], other, Duration::from_secs(60)).expect("mint");
            assert!(
                matches!(check(&with_bearer(&t)), Err(ApiError::Forbidden(_))),
                "{other}"
            );
        }
    }

    #[test]
    fn public_url_pins_scheme_and_host() {
        let base = Some("https://push.example.com/");
        assert!(audience_covers(
            &format!("https://push.example.com{PATH}"),
            PATH,
            base
        ));
        assert!(!audience_covers(
            &format!("http://push.example.com{PATH}"),
            PATH,
            base
        ));
        assert!(!audience_covers(
            &format!("https://evil.example.com{PATH}"),
            PATH,
            base
        ));
        assert!(!audience_covers(PATH, PATH, base));
    }
}
