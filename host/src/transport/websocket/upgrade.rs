//! The HTTP/1.1 upgrade to a WebSocket (RFC 6455 section 4.2), done here
//! rather than by axum's `WebSocketUpgrade` because that one hands over only
//! whole messages, never the socket.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Version};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::debug;

use super::socket::Socket;

/// A request to upgrade to a WebSocket, not answered yet.
pub(crate) struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    read_size: usize,
}

impl Upgrade {
    /// The upgrade `parts` ask for, taking the connection from them; None if
    /// the request is no WebSocket upgrade.
    pub(crate) fn from_parts(parts: &mut Parts) -> Option<Self> {
        let headers = &parts.headers;
        let upgrade = parts.version == Version::HTTP_11
            && parts.method == Method::GET
            && header_has_token(headers, header::CONNECTION, "upgrade")
            && header_is(headers, header::UPGRADE, "websocket")
            && header_is(headers, header::SEC_WEBSOCKET_VERSION, "13");
        if !upgrade {
            return None;
        }
        let key = headers.get(header::SEC_WEBSOCKET_KEY)?.clone();
        let on_upgrade = parts.extensions.remove::<OnUpgrade>()?;
        Some(Upgrade {
            key,
            on_upgrade,
            read_size: 1024,
        })
    }

    /// Bytes read from the socket at a time (at least 256).
    pub(crate) fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_size = bytes.max(256);
        self
    }

    /// Answers 101 and runs `callback` on the socket once the client has it.
    /// `connection` names the socket in logs.
    pub(crate) fn on_upgrade<C, F>(self, connection: Arc<str>, callback: C) -> Response
    where
        C: FnOnce(Socket) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let Upgrade {
            key,
            on_upgrade,
            read_size,
        } = self;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(error) => {
                    debug!(%connection, %error, "WebSocket upgrade failed");
                    return;
                }
            };
            // Writes only: the socket reads for itself, so tungstenite's read
            // buffer stays empty.
            let config = WebSocketConfig::default().read_buffer_size(0);
            let ws = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            callback(Socket::new(ws, read_size, connection)).await;
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

/// Whether the header's value is `value`, in any case.
fn header_is(headers: &HeaderMap, name: header::HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// Whether the comma-separated header lists `token`, in any case.
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}
