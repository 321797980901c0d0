//! One log line per HTTP request, under the `switchboard::access` target
//! (`RUST_LOG=switchboard::access=off` silences it), and the request's span.
//!
//! The line has the method, the path, the query with its secrets redacted
//! (`access_token`, and `id`, the connection token of negotiate version 1),
//! the status, the time to the response head, the body size when known, the
//! client's address, and the trace id when spans are exported. A WebSocket
//! upgrade is one line (status 101) when it is accepted, SSE and long polls
//! one line when their response starts.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The target access lines are logged under.
pub const TARGET: &str = "switchboard::access";

/// Query parameters whose values are never logged.
const SECRET_PARAMS: &[&str] = &["access_token", "id"];

/// The middleware: opens `http.request` (a child of the caller's trace when
/// the request carries `traceparent`), runs the request in it, and logs the
/// access line.
pub async fn log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(redact_query);
    // The client's address as trusted proxies report it, else the socket's peer.
    let remote = crate::address::client::of(request.extensions()).or_else(|| {
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
    });
    let span = tracing::info_span!(
        "http.request",
        http.request.method = %method,
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
        otel.kind = "server",
    );
    super::context::join_caller(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    // The declared length, else the body's own when it is all there (not a stream).
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| response.body().size_hint().exact());
    let trace_id = super::context::trace_id(&span);
    tracing::info!(
        target: TARGET,
        method = %method,
        path = %path,
        query = query.as_deref(),
        status,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        bytes,
        remote = remote.map(tracing::field::display),
        trace_id = trace_id.as_deref(),
        "request"
    );
    response
}

/// The query with the values of [`SECRET_PARAMS`] replaced by `[redacted]`
/// (names compared case-insensitively, as SignalR reads them).
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            if SECRET_PARAMS
                .iter()
                .any(|secret| decoded.eq_ignore_ascii_case(secret))
            {
                format!("{name}=[redacted]")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::redact_query;

    #[test]
    fn secrets_in_the_query_are_redacted() {
        assert_eq!(
            redact_query("id=abc&access_token=eyJ.x.y&_=123"),
            "id=[redacted]&access_token=[redacted]&_=123"
        );
        assert_eq!(
            redact_query("Access_Token=t&%61ccess_token=u"),
            "Access_Token=[redacted]&%61ccess_token=[redacted]"
        );
        assert_eq!(redact_query("application=app1"), "application=app1");
        assert_eq!(redact_query("access_token"), "access_token=[redacted]");
    }
}
