//! Every way an API request can fail, and the one place failures become
//! HTTP responses: a status and a JSON body `{"code": ..., "message": ...}`
//! (the `code` a program branches on, the `message` a person reads).

use axum::http::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::MAX_BODY;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApiError {
    #[error("no API route {0}")]
    NoRoute(String),
    #[error("{method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed { method: String, allow: String },
    #[error("no tenant '{0}'")]
    UnknownTenant(String),
    #[error("tenant '{tenant}' has no hub '{hub}'")]
    UnknownHub { tenant: String, hub: String },
    #[error("the hub has no method '{0}'")]
    UnknownMethod(String),
    #[error("no connection '{0}' on this hub")]
    NoConnection(String),
    #[error("no user '{0}' connected to this hub")]
    NoUser(String),
    #[error("no group '{0}' with connections on this hub")]
    NoGroup(String),
    #[error("user '{user}' has no connection in group '{group}' on this hub")]
    NoUserInGroup { user: String, group: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the body must be JSON (Content-Type: application/json), not {0}")]
    UnsupportedMediaType(String),
    #[error("the body is larger than {MAX_BODY} bytes")]
    PayloadTooLarge,
    #[error("{0}")]
    InvocationFailed(String),
    #[error("{0}")]
    PluginFailed(String),
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
            ApiError::UnknownTenant(_) => "UnknownTenant",
            ApiError::UnknownHub { .. } => "UnknownHub",
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

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NoRoute(_)
            | ApiError::UnknownTenant(_)
            | ApiError::UnknownHub { .. }
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
        let e = ApiError::UnknownTenant("acme".into());
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        let body: serde_json::Value = serde_json::from_str(&e.body()).expect("json");
        assert_eq!(body["code"], "UnknownTenant");
        assert_eq!(body["message"], "no tenant 'acme'");
    }
}
