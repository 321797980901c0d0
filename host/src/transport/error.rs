//! Why a transport request is refused, and the one place those refusals
//! become HTTP responses, with ASP.NET's status codes and texts
//! (TransportProtocols.md).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A transport request (SSE stream, poll, send, delete) that cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The URL names no tenant or hub this node serves.
    #[error("No such tenant or hub")]
    UnknownHub,
    /// No `id` query parameter (only a WebSocket upgrade may omit it).
    #[error("Connection ID required")]
    MissingId,
    /// The `id` names no connection of this hub: never negotiated, expired,
    /// closed, or negotiated on another node.
    #[error("No Connection with that ID")]
    UnknownConnection,
    /// The connection already uses another transport.
    #[error("Cannot change transports mid-connection")]
    TransportMismatch,
    /// A second SSE stream for a connection that already has one.
    #[error("Connection already has an active transport request")]
    AlreadyActive,
    /// A POST to a connection carried by a WebSocket.
    #[error("POST requests are not allowed for WebSocket connections.")]
    PostToWebSocket,
    /// A DELETE to a connection that is not long polling.
    #[error("Cannot terminate this connection using the DELETE endpoint.")]
    DeleteNotLongPolling,
    /// A bad or missing token, or not the user who negotiated.
    #[error("Unauthorized")]
    Unauthorized,
    /// More POSTed before the transport started than the server keeps.
    #[error("Too much data sent before the transport started.")]
    EarlyTooLarge,
}

impl RequestError {
    /// The HTTP status it is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            RequestError::UnknownHub | RequestError::UnknownConnection => StatusCode::NOT_FOUND,
            RequestError::MissingId
            | RequestError::TransportMismatch
            | RequestError::DeleteNotLongPolling => StatusCode::BAD_REQUEST,
            RequestError::AlreadyActive => StatusCode::CONFLICT,
            RequestError::PostToWebSocket => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::Unauthorized => StatusCode::UNAUTHORIZED,
            RequestError::EarlyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        match self {
            // An empty 401, so clients report exactly "Unauthorized".
            RequestError::Unauthorized => self.status().into_response(),
            _ => (
                self.status(),
                [(header::CONTENT_TYPE, "text/plain")],
                self.to_string(),
            )
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_as_asp_net() {
        assert_eq!(RequestError::MissingId.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            RequestError::UnknownConnection.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            RequestError::UnknownConnection.to_string(),
            "No Connection with that ID"
        );
        assert_eq!(
            RequestError::TransportMismatch.to_string(),
            "Cannot change transports mid-connection"
        );
        assert_eq!(RequestError::AlreadyActive.status(), StatusCode::CONFLICT);
        assert_eq!(
            RequestError::PostToWebSocket.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
