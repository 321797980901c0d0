//! Browsers on other origins: CORS on the client routes (`/hubs/...`:
//! negotiate, long polling, SSE) and the `Origin` check of every request
//! there, WebSocket upgrades included (browsers apply no CORS to those, so
//! the server must refuse them itself).
//!
//! Each tenant lists its `allowed_origins` ([`origins`](mod@crate::config::origins)). A request whose
//! `Origin` the tenant does not allow is answered 403, preflights included;
//! an allowed one gets `Access-Control-Allow-Origin` (its own origin, never
//! `*`), and `Access-Control-Allow-Credentials: true` unless only the
//! tenant's `*` allowed it. The headers themselves are `tower-http`'s CORS
//! layer, asked per request through a predicate that finds the tenant in
//! the path.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};
use tracing::info;

use crate::config::origins::{self, Verdict};
use crate::tenant::Tenants;

/// Request headers a browser client may send: the official clients'
/// `X-Requested-With` and `X-SignalR-User-Agent`, tokens, and the body type.
const ALLOWED_HEADERS: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    HeaderName::from_static("x-requested-with"),
    HeaderName::from_static("x-signalr-user-agent"),
];

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The tenant a client route names: `/hubs/{tenant}/...`.
fn tenant_of(path: &str) -> Option<&str> {
    path.strip_prefix("/hubs/")?.split('/').next()
}

/// The verdict on a request's `Origin` for the tenant its path names; None
/// when the tenant does not exist (the route answers 404 itself).
fn judge(
    tenants: &Tenants,
    origin: &HeaderValue,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
) -> Option<Verdict> {
    let tenant = tenants.get(&tenant_of(uri.path())?.to_ascii_lowercase())?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().unwrap_or("null");
    Some(origins::verdict(
        &tenant.config.allowed_origins,
        origin,
        host,
    ))
}

fn judge_parts(tenants: &Tenants, origin: &HeaderValue, parts: &Parts) -> Verdict {
    judge(tenants, origin, &parts.uri, &parts.headers).unwrap_or(Verdict::Denied)
}

/// The CORS headers of the client routes.
pub fn layer(tenants: Arc<Tenants>) -> CorsLayer {
    let for_origin = tenants.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, parts| {
            judge_parts(&for_origin, origin, parts).allowed()
        }))
        .allow_credentials(AllowCredentials::predicate(move |origin, parts| {
            judge_parts(&tenants, origin, parts) == Verdict::Credentialed
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers(ALLOWED_HEADERS)
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Refuses (403) a client-route request whose `Origin` its tenant does not
/// allow, before anything else sees it: preflights, negotiates, transport
/// requests and WebSocket upgrades alike. Requests without `Origin` (servers,
/// native clients) pass.
pub async fn guard(State(tenants): State<Arc<Tenants>>, request: Request, next: Next) -> Response {
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && judge(&tenants, origin, request.uri(), request.headers()) == Some(Verdict::Denied)
    {
        info!(
            origin = %String::from_utf8_lossy(origin.as_bytes()),
            path = request.uri().path(),
            method = %request.method(),
            "refused a request from an origin its tenant does not allow (allowed_origins)"
        );
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain")],
            "Origin not allowed: add it to the tenant's allowed_origins",
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_is_the_first_segment_after_hubs() {
        assert_eq!(tenant_of("/hubs/acme/chat/negotiate"), Some("acme"));
        assert_eq!(tenant_of("/hubs/acme/chat"), Some("acme"));
        assert_eq!(tenant_of("/api/v1/tenants/acme"), None);
    }
}
