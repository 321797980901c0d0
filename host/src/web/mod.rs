//! The node's own web pages: the demo chat at `/` and the dashboard at
//! `/dashboard`, with their scripts, styles and the official
//! `@microsoft/signalr` browser bundle, all compiled into the binary so the
//! pages work with no internet and no build step.
//!
//! Every answer carries a strict Content-Security-Policy (scripts, styles and
//! connections from this origin only), `nosniff` and no referrer. Pages and
//! scripts are revalidated on every load (`no-cache` with an `ETag`), the
//! vendored bundle, whose name carries its version, is cached for a year.

pub mod assets;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::config::DEMO_TENANT;
use crate::node::Node;
use assets::Asset;

/// What the pages may load and reach: this origin only, nothing inline.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// The hub the demo page chats on.
pub const DEMO_HUB: &str = "chat";

/// The pages, on any state that holds the node and the dashboard's feed.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Node>: axum::extract::FromRef<S>,
    Arc<crate::dashboard::Feed>: axum::extract::FromRef<S>,
{
    Router::new()
        .route("/", get(demo))
        .route("/dashboard", get(dashboard))
        .route("/assets/{*file}", get(asset))
        .merge(crate::dashboard::routes())
}

/// The demo chat, where the node serves the `demo` tenant's `chat` hub.
async fn demo(State(node): State<Arc<Node>>, headers: HeaderMap) -> Response {
    if crate::transport::resolve_hub(&node.tenants, &node.registry, DEMO_TENANT, DEMO_HUB).is_none()
    {
        return not_found();
    }
    serve(assets::page("index.html"), &headers)
}

async fn dashboard(headers: HeaderMap) -> Response {
    serve(assets::page("dashboard.html"), &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(assets::find(&file), &headers)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// `asset` with its headers, or 304 when the client's copy is current.
fn serve(asset: Option<&'static Asset>, request: &HeaderMap) -> Response {
    let Some(asset) = asset else {
        return not_found();
    };
    let etag = asset.etag();
    let fresh = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = asset.body.into_response();
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        r
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        headers.insert(ETAG, v);
    }
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(if asset.immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
