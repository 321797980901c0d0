//! Client authentication: bearer tokens signed with one of the tenant's
//! HS256 keys, or with an identity provider's key (RS256, ES256, ... verified
//! against the tenant's `public_keys` PEM files, its `jwks_file`, or the keys
//! its `jwks_url` serves, see [`super::jwks`]), or anonymous access where the
//! tenant allows it.
//!
//! A token for one tenant never opens a connection to another: tenants may
//! not share HS256 secrets, and tenants that trust the same public key must
//! each require a different `audience` ([`check_tenants_apart`] enforces both).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use super::jwks::JwksSource;
use crate::config::jwks_url::check_url;
use crate::config::{KeyFiles, TenantConfig};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The user id (the configured claim, `sub` by default); none when anonymous.
    pub user_id: Option<String>,
    /// All claims of the token, as a JSON object; empty when anonymous.
    pub claims: Map<String, Value>,
}

impl Identity {
    /// The identity of a request without a token, where the tenant allows anonymous access.
    pub fn anonymous() -> Identity {
        Identity {
            user_id: None,
            claims: Map::new(),
        }
    }
}

/// Why a client's token was not accepted; answered with 401.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    /// No token, and the tenant does not allow anonymous access.
    #[error("a token is required")]
    Missing,
    /// A token that cannot be decoded, or does not verify against the tenant's keys and settings.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// No key of the tenant has the token's `kid` (or, for a token without
    /// one, the tenant's JWKS URL has not been fetched yet): fetching the
    /// JWKS again may find it.
    #[error("invalid token: the signature key was not found{}", kid_text(.kid.as_deref()))]
    UnknownKey {
        /// The token's `kid` header, if it has one.
        kid: Option<String>,
    },
}

fn kid_text(kid: Option<&str>) -> String {
    kid.map(|k| format!(" (kid '{k}')")).unwrap_or_default()
}

impl AuthError {
    /// The `WWW-Authenticate` value of a 401 for this error (RFC 6750 3, as
    /// ASP.NET Core's JwtBearer handler answers).
    pub fn www_authenticate(&self) -> String {
        match self {
            AuthError::Missing => "Bearer".to_owned(),
            other => {
                let text = other.to_string();
                let description: String = text
                    .trim_start_matches("invalid token: ")
                    .chars()
                    .map(|c| match c {
                        '"' | '\\' => '\'',
                        c if c.is_ascii_graphic() || c == ' ' => c,
                        _ => '?',
                    })
                    .collect();
                format!("Bearer error=\"invalid_token\", error_description=\"{description}\"")
            }
        }
    }
}

/// Algorithms accepted for tokens verified with a public key.
const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// One public key that verifies client tokens.
#[derive(Clone)]
pub struct PublicKey {
    key: DecodingKey,
    /// The JWKS `kid`, matched against the token header's `kid`.
    pub(crate) kid: Option<String>,
    /// The JWKS `alg`, when the key set pins one.
    alg: Option<Algorithm>,
    /// Where it came from, for errors.
    source: String,
    /// The key's bytes as loaded, to tell when two tenants trust the same key.
    material: String,
}

// The key itself stays out of logs; where it came from is what a reader needs.
debug_fields!(PublicKey { kid, alg, source });

/// The public keys of a tenant: loaded once from its config files, and
/// those its `jwks_url` serves (fetched and refreshed while it runs).
#[derive(Clone, Default)]
pub struct VerifyKeys {
    keys: Arc<Vec<PublicKey>>,
    remote: Option<Arc<JwksSource>>,
}

impl std::fmt::Debug for VerifyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sources: Vec<&str> = self.keys.iter().map(|k| k.source.as_str()).collect();
        f.debug_struct("VerifyKeys")
            .field("sources", &sources)
            .field("remote", &self.remote)
            .finish()
    }
}

/// The keys of a JWKS document. `strict` (a file the operator wrote): every
/// key must be a usable public key. Otherwise (an identity provider's URL)
/// keys this server cannot use (encryption keys, shared secrets, unknown
/// types) are left out, as the provider may publish them for other parties.
pub(crate) fn parse_jwks(source: &str, text: &str, strict: bool) -> Result<Vec<PublicKey>, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<Value>,
    }
    let document: Document =
        serde_json::from_str(text).map_err(|e| format!("{source}: not a JWKS document ({e})"))?;
    let mut keys = Vec::new();
    for (i, value) in document.keys.into_iter().enumerate() {
        match jwk_key(source, i, value) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(e) if strict => return Err(e),
            Err(e) => tracing::debug!(error = %e, "JWKS key left out"),
        }
    }
    Ok(keys)
}

/// Key `i` of a JWKS; None for a key meant for encryption (`"use": "enc"`).
fn jwk_key(source: &str, i: usize, value: Value) -> Result<Option<PublicKey>, String> {
    if value.get("use").and_then(Value::as_str) == Some("enc") {
        return Ok(None);
    }
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(value)
        .map_err(|e| format!("{source}: key {i} is not a JWK ({e})"))?;
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|e| format!("{source}: key {i} is not usable ({e})"))?;
    if key.family() == AlgorithmFamily::Hmac {
        return Err(format!(
            "{source}: key {i} is a shared secret; put secrets in signing_keys"
        ));
    }
    let alg = match jwk.common.key_algorithm {
        Some(a) => Some(
            a.to_string()
                .parse::<Algorithm>()
                .map_err(|_| format!("{source}: key {i} has an unsupported alg {a}"))?,
        ),
        None => None,
    };
    Ok(Some(PublicKey {
        key,
        kid: jwk.common.key_id.clone(),
        alg,
        source: format!("{source}#{i}"),
        material: serde_json::to_string(&jwk.algorithm).unwrap_or_default(),
    }))
}

impl VerifyKeys {
    /// A tenant's keys: those of its key files, and its `jwks_url`'s (fetched
    /// when first needed). An error names the file or URL at fault.
    pub fn of(config: &TenantConfig) -> Result<VerifyKeys, String> {
        let keys = VerifyKeys::from_files(&config.key_files)?;
        let Some(url) = &config.jwks_url else {
            return Ok(keys);
        };
        let url = check_url(url, config.jwks_allow_http).map_err(|e| format!("jwks_url: {e}"))?;
        let min_refresh = Duration::from_secs(config.jwks_min_refresh_secs);
        Ok(keys.with_remote(Arc::new(JwksSource::new(url, min_refresh))))
    }

    /// Keys from PEM texts (each RSA, EC or Ed25519, SPKI or PKCS#1) and a
    /// JWKS text; each text's source names it in errors.
    pub fn from_files(files: &KeyFiles) -> Result<VerifyKeys, String> {
        let mut keys = Vec::new();
        for (source, pem) in &files.pems {
            let bytes = pem.as_bytes();
            let key = DecodingKey::from_rsa_pem(bytes)
                .or_else(|_| DecodingKey::from_ec_pem(bytes))
                .or_else(|_| DecodingKey::from_ed_pem(bytes))
                .map_err(|e| {
                    format!("{source}: not an RSA, EC or Ed25519 public key in PEM format ({e})")
                })?;
            keys.push(PublicKey {
                key,
                kid: None,
                alg: None,
                source: source.clone(),
                material: pem.trim().to_owned(),
            });
        }
        if let Some((source, text)) = &files.jwks {
            keys.extend(parse_jwks(source, text, true)?);
        }
        Ok(VerifyKeys {
            keys: Arc::new(keys),
            remote: None,
        })
    }

    /// These keys and those `source` serves.
    pub fn with_remote(mut self, source: Arc<JwksSource>) -> VerifyKeys {
        self.remote = Some(source);
        self
    }

    /// The tenant's JWKS URL, if it has one.
    pub fn remote(&self) -> Option<&Arc<JwksSource>> {
        self.remote.as_ref()
    }

    /// Whether there is no key to verify with: none from PEM or JWKS files, and no JWKS URL.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.remote.is_none()
    }
}

/// The keys of `keys` that may have signed a token with `alg` and `kid`.
fn candidates<'a>(
    keys: &'a [PublicKey],
    alg: Algorithm,
    kid: Option<&'a str>,
) -> impl Iterator<Item = &'a PublicKey> + 'a {
    keys.iter().filter(move |k| {
        k.key.family() == alg.family()
            && k.alg.is_none_or(|a| a == alg)
            && match (kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    })
}

/// No secret and no public key may let one token in to two tenants. Every
/// tenant's key files must parse (an error names the tenant and the file).
pub fn check_tenants_apart(tenants: &BTreeMap<String, TenantConfig>) -> Result<(), String> {
    let parsed = tenants
        .iter()
        .map(|(name, tenant)| {
            VerifyKeys::from_files(&tenant.key_files)
                .map(|keys| (name.as_str(), keys))
                .map_err(|e| format!("tenant '{name}': {e}"))
        })
        .collect::<Result<BTreeMap<&str, VerifyKeys>, String>>()?;
    let names: Vec<&String> = tenants.keys().collect();
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            let (ta, tb) = (&tenants[*a], &tenants[*b]);
            let shared = |x: &[String], y: &[String]| x.iter().any(|k| y.contains(k));
            if shared(&ta.signing_keys, &tb.signing_keys) {
                return Err(format!("tenants '{a}' and '{b}' share a signing key"));
            }
            if shared(&ta.api_keys, &tb.api_keys) {
                return Err(format!("tenants '{a}' and '{b}' share an API key"));
            }
            let (ka, kb) = (&parsed[a.as_str()].keys, &parsed[b.as_str()].keys);
            let same_key = ka
                .iter()
                .any(|k| kb.iter().any(|o| o.material == k.material));
            let same_url = ta.jwks_url.is_some() && ta.jwks_url == tb.jwks_url;
            let same_key = same_key || same_url;
            let apart = matches!((&ta.audience, &tb.audience), (Some(x), Some(y)) if x != y);
            if same_key && !apart {
                return Err(format!(
                    "tenants '{a}' and '{b}' trust the same public key: each must set a different `audience`"
                ));
            }
        }
    }
    for (name, t) in tenants {
        if t.api_keys.iter().any(|k| t.signing_keys.contains(k)) {
            return Err(format!(
                "tenant '{name}': an API key must not also be a client signing key"
            ));
        }
        if let Some(k) = t.api_keys.iter().find(|k| k.len() < 16) {
            return Err(format!(
                "tenant '{name}': API keys must be at least 16 characters (one has {})",
                k.len()
            ));
        }
    }
    Ok(())
}

/// Checks `token` against the tenant's keys: the HS256 `signing_keys` (apart
/// from the rest of the settings: they rotate while the tenant serves) and
/// its public keys. No token is fine only for a tenant that allows anonymous
/// connections.
pub fn authenticate_with_keys(
    tenant: &TenantConfig,
    public: &VerifyKeys,
    signing_keys: &[String],
    token: Option<&str>,
) -> Result<Identity, AuthError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return if tenant.allow_anonymous {
            Ok(Identity::anonymous())
        } else {
            Err(AuthError::Missing)
        };
    };
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
    let claims = match header.alg {
        Algorithm::HS256 => verify_hs256(signing_keys, token)?,
        alg if ASYMMETRIC.contains(&alg) => {
            verify_public(tenant, public, token, alg, header.kid.as_deref())?
        }
        alg => {
            return Err(AuthError::Invalid(format!(
                "algorithm {alg:?} is not accepted"
            )));
        }
    };
    let user_id = user_id_from(&claims, &tenant.user_claim);
    Ok(Identity { user_id, claims })
}

/// Like [`authenticate_with_keys`], and when the token names a key the
/// tenant does not have, fetches its JWKS URL again (if it has one; at most
/// once per `jwks_min_refresh_secs`) and tries once more: how a key the
/// identity provider rotated in is picked up.
pub async fn authenticate_fetching(
    tenant: &TenantConfig,
    public: &VerifyKeys,
    signing_keys: &[String],
    token: Option<&str>,
) -> Result<Identity, AuthError> {
    match authenticate_with_keys(tenant, public, signing_keys, token) {
        Err(AuthError::UnknownKey { kid }) => match public.remote() {
            Some(remote) if remote.refresh(kid.as_deref()).await => {
                authenticate_with_keys(tenant, public, signing_keys, token)
            }
            _ => Err(AuthError::UnknownKey { kid }),
        },
        other => other,
    }
}

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

/// The checks every client token gets: signature with `alg`, `exp` and, when
/// present, `nbf` (RFC 7519 4.1.5: not accepted before that time), each with
/// [`LEEWAY_SECS`] of clock skew.
fn validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS;
    validation
}

fn verify_hs256(signing_keys: &[String], token: &str) -> Result<Map<String, Value>, AuthError> {
    let mut validation = validation(Algorithm::HS256);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    let mut last_error = AuthError::Invalid("the tenant has no signing keys".into());
    for key in signing_keys {
        // An empty key verifies nothing (jsonwebtoken refuses it as an HMAC key).
        let Ok(key) = DecodingKey::from_secret(key.as_bytes()) else {
            continue;
        };
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => last_error = AuthError::Invalid(e.to_string()),
        }
    }
    Err(last_error)
}

/// A token an identity provider signed: verified against the tenant's public
/// keys, with `exp` required and `aud`/`iss` checked where configured.
fn verify_public(
    tenant: &TenantConfig,
    public: &VerifyKeys,
    token: &str,
    alg: Algorithm,
    kid: Option<&str>,
) -> Result<Map<String, Value>, AuthError> {
    let mut validation = validation(alg);
    let mut required = vec!["exp"];
    match &tenant.audience {
        Some(aud) => {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    if let Some(iss) = &tenant.issuer {
        validation.set_issuer(&[iss]);
        required.push("iss");
    }
    validation.set_required_spec_claims(&required);
    let mut last_error = AuthError::Invalid(format!(
        "no public key of the tenant verifies {alg:?} tokens{}",
        kid.map(|k| format!(" with kid '{k}'")).unwrap_or_default()
    ));
    let keys = public;
    let remote = keys.remote.as_ref().map(|r| r.keys());
    let remote_keys: &[PublicKey] = remote.as_deref().map_or(&[], Vec::as_slice);
    let all = candidates(&keys.keys, alg, kid).chain(candidates(remote_keys, alg, kid));
    for candidate in all {
        match jsonwebtoken::decode::<Map<String, Value>>(token, &candidate.key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => last_error = AuthError::Invalid(e.to_string()),
        }
    }
    if keys.remote.is_some() {
        let has_kid = |k: &PublicKey| kid.is_some() && k.kid.as_deref() == kid;
        let known = match kid {
            Some(_) => keys.keys.iter().chain(remote_keys).any(has_kid),
            None => !remote_keys.is_empty(),
        };
        if !known {
            return Err(AuthError::UnknownKey {
                kid: kid.map(str::to_owned),
            });
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
    let mut claims = extra;
    claims.insert("sub".into(), Value::String(user.to_owned()));
    mint_hs256(key, claims, ttl)
}

/// Signs `claims` with `key` (HS256), issued now and valid for `ttl`: the
/// one way the server mints a token, for clients and for the REST API.
pub fn mint_hs256(
    key: &str,
    mut claims: Map<String, Value>,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now + ttl.as_secs()));
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.as_bytes())?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;

    /// Checks `token` as the tenant would, its keys parsed from its settings.
    fn authenticate(tenant: &TenantConfig, token: Option<&str>) -> Result<Identity, AuthError> {
        let public = VerifyKeys::of(tenant).expect("keys parse");
        authenticate_with_keys(tenant, &public, &tenant.signing_keys, token)
    }

    fn tenant(anonymous: bool, keys: &[&str]) -> TenantConfig {
        TenantConfig {
            allow_anonymous: anonymous,
            signing_keys: keys.iter().map(|k| k.to_string()).collect(),
            user_claim: "sub".into(),
            api_keys: Vec::new(),
            public_keys: Vec::new(),
            jwks_file: None,
            jwks_url: None,
            jwks_allow_http: false,
            jwks_min_refresh_secs: 30,
            audience: None,
            issuer: None,
            allowed_origins: Vec::new(),
            durable_resume_except: Vec::new(),
            detailed_errors: false,
            plugin_headers: None,
            plugin_cookies: Vec::new(),
            key_files: KeyFiles::default(),
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
            &EncodingKey::from_secret(b"right").expect("key"),
        )
        .expect("encode");
        assert!(authenticate(&t, Some(&expired)).is_err());
    }

    #[test]
    fn not_before_is_checked_with_a_small_leeway() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let with_nbf = |key: &str, alg: Algorithm, pem: Option<&str>, nbf: u64| {
            let mut c = Map::new();
            c.insert("sub".into(), "ann".into());
            c.insert("exp".into(), Value::from(now + 7200));
            c.insert("nbf".into(), Value::from(nbf));
            match pem {
                Some(pem) => sign(alg, pem, None, &c),
                None => jsonwebtoken::encode(
                    &Header::new(alg),
                    &c,
                    &EncodingKey::from_secret(key.as_bytes()).expect("key"),
                )
                .expect("encode"),
            }
        };
        let hs = tenant(false, &["k"]);
        let err = authenticate(
            &hs,
            Some(&with_nbf("k", Algorithm::HS256, None, now + 3600)),
        )
        .expect_err("a token valid from an hour from now");
        assert!(
            matches!(&err, AuthError::Invalid(m) if m.contains("ImmatureSignature")),
            "{err:?}"
        );
        assert!(
            authenticate(&hs, Some(&with_nbf("k", Algorithm::HS256, None, now + 20))).is_ok(),
            "clock skew within the leeway"
        );
        assert!(authenticate(&hs, Some(&with_nbf("k", Algorithm::HS256, None, now - 60))).is_ok());
        let rs = with_public(&[RSA_PUB], None);
        assert!(
            authenticate(
                &rs,
                Some(&with_nbf("", Algorithm::RS256, Some(RSA_KEY), now + 3600))
            )
            .is_err()
        );
        assert!(
            authenticate(
                &rs,
                Some(&with_nbf("", Algorithm::RS256, Some(RSA_KEY), now))
            )
            .is_ok()
        );
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

    // === tokens from an identity provider (RS256, ES256, JWKS) ===

    const RSA_KEY: &str = include_str!("../../tests/fixtures/auth/rsa.key");
    const RSA_PUB: &str = include_str!("../../tests/fixtures/auth/rsa.pub.pem");
    const RSA_OTHER_KEY: &str = include_str!("../../tests/fixtures/auth/rsa-other.key");
    const EC_KEY: &str = include_str!("../../tests/fixtures/auth/ec.key");
    const EC_PUB: &str = include_str!("../../tests/fixtures/auth/ec.pub.pem");
    const JWKS: &str = include_str!("../../tests/fixtures/auth/jwks.json");

    fn with_public(pems: &[&str], jwks: Option<&str>) -> TenantConfig {
        let mut t = tenant(false, &["hs-secret"]);
        let pems: Vec<(String, String)> = pems
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("pem{i}"), p.to_string()))
            .collect();
        t.key_files = KeyFiles {
            pems,
            jwks: jwks.map(|j| ("jwks".to_owned(), j.to_owned())),
        };
        t
    }

    fn claims(user: &str, exp_in: i64) -> Map<String, Value> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let mut c = Map::new();
        c.insert("sub".into(), user.into());
        c.insert("exp".into(), Value::from(now + exp_in));
        c
    }

    fn sign(alg: Algorithm, pem: &str, kid: Option<&str>, claims: &Map<String, Value>) -> String {
        let key = match alg.family() {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem.as_bytes()),
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem.as_bytes()),
            _ => unreachable!("test keys are RSA or EC"),
        }
        .expect("private key");
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &key).expect("sign")
    }

    #[test]
    fn rs256_and_es256_verified_against_pem_keys() {
        let t = with_public(&[RSA_PUB, EC_PUB], None);
        let rs = sign(Algorithm::RS256, RSA_KEY, None, &claims("ann", 60));
        let es = sign(Algorithm::ES256, EC_KEY, None, &claims("ben", 60));
        assert_eq!(
            authenticate(&t, Some(&rs))
                .expect("rs256")
                .user_id
                .as_deref(),
            Some("ann")
        );
        assert_eq!(
            authenticate(&t, Some(&es))
                .expect("es256")
                .user_id
                .as_deref(),
            Some("ben")
        );
        // HS256 tokens still work beside them.
        assert!(authenticate(&t, Some(&token("hs-secret", "cy"))).is_ok());
    }

    #[test]
    fn rejects_other_keys_expired_and_algorithm_confusion() {
        let t = with_public(&[RSA_PUB], None);
        let forged = sign(Algorithm::RS256, RSA_OTHER_KEY, None, &claims("ann", 60));
        assert!(matches!(
            authenticate(&t, Some(&forged)),
            Err(AuthError::Invalid(_))
        ));
        let expired = sign(Algorithm::RS256, RSA_KEY, None, &claims("ann", -600));
        assert!(authenticate(&t, Some(&expired)).is_err());
        let mut no_exp = claims("ann", 60);
        no_exp.remove("exp");
        assert!(authenticate(&t, Some(&sign(Algorithm::RS256, RSA_KEY, None, &no_exp))).is_err());
        // An EC token where only an RSA key is configured.
        let es = sign(Algorithm::ES256, EC_KEY, None, &claims("ann", 60));
        assert!(authenticate(&t, Some(&es)).is_err());
        // HS256 signed with the public key's PEM text as the secret.
        let confused =
            mint_token(RSA_PUB, "ann", Duration::from_secs(60), Map::new()).expect("mint");
        assert!(authenticate(&t, Some(&confused)).is_err());
        // A tenant without public keys refuses every RS256 token.
        let plain = tenant(true, &["k"]);
        let rs = sign(Algorithm::RS256, RSA_KEY, None, &claims("ann", 60));
        assert!(authenticate(&plain, Some(&rs)).is_err());
    }

    #[test]
    fn jwks_keys_match_by_kid() {
        let t = with_public(&[], Some(JWKS));
        let good = sign(Algorithm::RS256, RSA_KEY, Some("idp-1"), &claims("dee", 60));
        assert_eq!(
            authenticate(&t, Some(&good))
                .expect("jwks")
                .user_id
                .as_deref(),
            Some("dee")
        );
        let no_kid = sign(Algorithm::RS256, RSA_KEY, None, &claims("dee", 60));
        assert!(authenticate(&t, Some(&no_kid)).is_ok());
        let wrong_kid = sign(Algorithm::RS256, RSA_KEY, Some("idp-2"), &claims("dee", 60));
        assert!(authenticate(&t, Some(&wrong_kid)).is_err());
        // The JWKS pins RS256: the same key with PS256 is refused.
        let ps = sign(Algorithm::PS256, RSA_KEY, Some("idp-1"), &claims("dee", 60));
        assert!(authenticate(&t, Some(&ps)).is_err());
    }

    #[test]
    fn audience_issuer_and_user_claim_for_public_keys() {
        let mut t = with_public(&[RSA_PUB], None);
        t.audience = Some("switchboard:acme".into());
        t.issuer = Some("https://idp.example".into());
        t.user_claim = "nameid".into();
        let mut c = claims("ignored", 60);
        c.insert("nameid".into(), "eve".into());
        let bare = sign(Algorithm::RS256, RSA_KEY, None, &c);
        assert!(
            authenticate(&t, Some(&bare)).is_err(),
            "aud and iss are required"
        );
        c.insert("aud".into(), "switchboard:other".into());
        c.insert("iss".into(), "https://idp.example".into());
        assert!(authenticate(&t, Some(&sign(Algorithm::RS256, RSA_KEY, None, &c))).is_err());
        c.insert("aud".into(), "switchboard:acme".into());
        let id = authenticate(&t, Some(&sign(Algorithm::RS256, RSA_KEY, None, &c))).expect("valid");
        assert_eq!(id.user_id.as_deref(), Some("eve"));
    }

    #[test]
    fn bad_key_files_are_refused() {
        let files = |pems: Vec<(String, String)>, jwks: Option<&str>| KeyFiles {
            pems,
            jwks: jwks.map(|j| ("j".to_owned(), j.to_owned())),
        };
        let pems = vec![("k.pem".to_owned(), "not a key".to_owned())];
        assert!(VerifyKeys::from_files(&files(pems, None)).is_err());
        let secret = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;
        assert!(VerifyKeys::from_files(&files(Vec::new(), Some(secret))).is_err());
        assert!(VerifyKeys::from_files(&files(Vec::new(), Some("{"))).is_err());
    }

    #[test]
    fn tenants_never_share_a_way_in() {
        let mut tenants = BTreeMap::new();
        tenants.insert("a".to_owned(), with_public(&[RSA_PUB], None));
        let mut b = with_public(&[RSA_PUB], None);
        b.signing_keys = vec!["other".into()];
        tenants.insert("b".to_owned(), b);
        // Same public key, no audiences: a token for a would open b.
        assert!(check_tenants_apart(&tenants).is_err());
        tenants.get_mut("a").expect("a").audience = Some("aud-a".into());
        tenants.get_mut("b").expect("b").audience = Some("aud-b".into());
        check_tenants_apart(&tenants).expect("distinct audiences keep them apart");
        // A token for a (aud-a) does not open b.
        let mut c = claims("ann", 60);
        c.insert("aud".into(), "aud-a".into());
        let tok = sign(Algorithm::RS256, RSA_KEY, None, &c);
        assert!(authenticate(&tenants["a"], Some(&tok)).is_ok());
        assert!(authenticate(&tenants["b"], Some(&tok)).is_err());
        // Shared HS256 secrets and API keys are refused.
        tenants.get_mut("b").expect("b").signing_keys = vec!["hs-secret".into()];
        assert!(check_tenants_apart(&tenants).is_err());
        tenants.get_mut("b").expect("b").signing_keys = vec!["other".into()];
        tenants.get_mut("a").expect("a").api_keys = vec!["a-long-enough-api-key".into()];
        tenants.get_mut("b").expect("b").api_keys = vec!["a-long-enough-api-key".into()];
        assert!(check_tenants_apart(&tenants).is_err());
        tenants.get_mut("b").expect("b").api_keys = vec!["short".into()];
        assert!(check_tenants_apart(&tenants).is_err());
    }

    #[test]
    fn a_key_file_that_does_not_parse_is_refused_with_its_tenant_and_file() {
        let mut t = tenant(false, &[]);
        t.key_files.pems = vec![("keys/idp.pem".into(), "not a key".into())];
        let tenants = BTreeMap::from([("acme".to_owned(), t)]);
        let err = check_tenants_apart(&tenants).expect_err("bad PEM");
        assert!(
            err.contains("acme") && err.contains("keys/idp.pem"),
            "{err}"
        );
    }
}
