//! Every way an API request can fail, and the one place failures become
//! HTTP responses: a status and a JSON body `{"code": ..., "message": ...}`
//! (the `code` a program branches on, the `message` a person reads).

use axum::http::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::MAX_BODY;
use crate::address::Unknown;

/// A failed REST request; [`ApiError::code`] and [`ApiError::status`] say how it is answered.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApiError {
    /// The path is no route of the API (404).
    #[error("no API route {0}")]
    NoRoute(String),
    /// The path is a route, but not for this method; the response's `Allow` lists those it takes
    /// (405).
    #[error("{method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed {
        /// The request's method.
        method: String,
        /// The methods the path takes, comma-separated (the `Allow` header).
        allow: String,
    },
    /// The tenant named in the path or the `application` query does not exist, or has no plugin
    /// deployed for this hub (404).
    #[error(transparent)]
    Unknown(#[from] Unknown),
    /// `:invoke` names a method the hub's plugin does not export (404).
    #[error("the hub has no method '{0}'")]
    UnknownMethod(String),
    /// No node holds an open connection with this id (404).
    #[error("no connection '{0}' on this hub")]
    NoConnection(String),
    /// The user has no connection on any node (404).
    #[error("no user '{0}' connected to this hub")]
    NoUser(String),
    /// No node has a connection in this group (404).
    #[error("no group '{0}' with connections on this hub")]
    NoGroup(String),
    /// The user has no connection in the group on any node (404).
    #[error("user '{user}' has no connection in group '{group}' on this hub")]
    NoUserInGroup {
        /// The user id from the path.
        user: String,
        /// The group name from the path.
        group: String,
    },
    /// No credentials, or an API key or token the tenant does not accept (401, with
    /// `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials that do not reach this URL (a token's `aud`), or a tenant without
    /// `api_keys` (403).
    #[error("{0}")]
    Forbidden(String),
    /// A malformed query, path segment or body, or `:invoke` of a streaming method (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body's `Content-Type` is not JSON (415).
    #[error("the body must be JSON (Content-Type: application/json), not {0}")]
    UnsupportedMediaType(String),
    /// The body is larger than [`MAX_BODY`] (413).
    #[error("the body is larger than {MAX_BODY} bytes")]
    PayloadTooLarge,
    /// The hub method ran and returned an error of its own; the message is that error (422).
    #[error("{0}")]
    InvocationFailed(String),
    /// The plugin trapped, failed to run, or returned a result that is not JSON (500).
    #[error("{0}")]
    PluginFailed(String),
    /// The hub method did not finish within the invoke limit, in seconds (504).
    #[error("the hub method did not finish within {0} s")]
    Timeout(u64),
    /// The cluster (NATS) cannot answer now.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// The stable name of the error, for programs.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NoRoute(_) => "NoRoute",
            ApiError::MethodNotAllowed { .. } => "MethodNotAllowed",
            ApiError::Unknown(unknown) => unknown.code(),
            ApiError::UnknownMethod(_) => "UnknownMethod",
            ApiError::NoConnection(_) => "NoConnection",
            ApiError::NoUser(_) => "NoUser",
            ApiError::NoGroup(_) => "NoGroup",
            ApiError::NoUserInGroup { .. } => "NoUserInGroup",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::PayloadTooLarge => "PayloadTooLarge",
            ApiError::InvocationFailed(_) => "InvocationFailed",
            ApiError::PluginFailed(_) => "PluginFailed",
            ApiError::Timeout(_) => "Timeout",
            ApiError::Unavailable(_) => "Unavailable",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NoRoute(_)
            | ApiError::Unknown(_)
            | ApiError::UnknownMethod(_)
            | ApiError::NoConnection(_)
            | ApiError::NoUser(_)
            | ApiError::NoGroup(_)
            | ApiError::NoUserInGroup { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvocationFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PluginFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({ "code": self.code(), "message": self.to_string() }).to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            self.body(),
        )
            .into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized(_) => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                if let Ok(value) = HeaderValue::from_str(allow) {
                    headers.insert(ALLOW, value);
                }
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_names_code_and_message() {
        let e = ApiError::from(Unknown::Tenant("acme".into()));
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        let body: serde_json::Value = serde_json::from_str(&e.body()).expect("json");
        assert_eq!(body["code"], "UnknownTenant");
        assert_eq!(body["message"], "no tenant 'acme'");
    }
}
