//! The admin API's failures, as `{"code": ..., "message": ...}` with a status.

use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::plugin::LoadError;
use crate::plugin::registry::DeployError;
use crate::plugin::versions::RollbackError;
use crate::tenant::TenantError;
use crate::tenant::cluster::TenantStoreError;

/// A failed admin request: its status, a stable code and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminError {
    /// The HTTP status it answers with (401 also gets `WWW-Authenticate: Bearer`).
    pub status: StatusCode,
    /// The body's `code`, e.g. `UnknownTenant`: what a program branches on.
    pub code: &'static str,
    /// The body's `message`, for a person.
    pub message: String,
}

impl AdminError {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> AdminError {
        AdminError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> AdminError {
        AdminError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.code, "message": self.message }).to_string();
        let mut response = (
            self.status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<TenantError> for AdminError {
    fn from(e: TenantError) -> AdminError {
        let (status, code) = match &e {
            TenantError::Unknown(_) => (StatusCode::NOT_FOUND, "UnknownTenant"),
            TenantError::Exists(_) => (StatusCode::CONFLICT, "TenantExists"),
            TenantError::Invalid(_) => (StatusCode::BAD_REQUEST, "InvalidTenant"),
        };
        AdminError::new(status, code, e.to_string())
    }
}

impl From<TenantStoreError> for AdminError {
    fn from(e: TenantStoreError) -> AdminError {
        let (status, code) = match &e {
            TenantStoreError::Exists(_) => (StatusCode::CONFLICT, "TenantExists"),
            TenantStoreError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            TenantStoreError::Unavailable(_) | TenantStoreError::BadEntry { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "ClusterUnavailable")
            }
        };
        AdminError::new(status, code, e.to_string())
    }
}

impl From<DeployError> for AdminError {
    fn from(e: DeployError) -> AdminError {
        let (status, code) = match &e {
            DeployError::Unknown(unknown) => (StatusCode::NOT_FOUND, unknown.code()),
            DeployError::BadHubName(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            DeployError::Invalid(load) => match load {
                LoadError::NotComponent(_) => (StatusCode::BAD_REQUEST, "NotAComponent"),
                LoadError::Compile(_) => (StatusCode::BAD_REQUEST, "InvalidComponent"),
                LoadError::UnsupportedImport(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "UnsupportedImport")
                }
                LoadError::WrongWorld(_) => (StatusCode::UNPROCESSABLE_ENTITY, "WrongWorld"),
                LoadError::Describe(_) => (StatusCode::UNPROCESSABLE_ENTITY, "DescribeFailed"),
                #[allow(unreachable_patterns)]
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "LoadFailed"),
            },
            DeployError::Rollback(RollbackError::UnknownVersion(_)) => {
                (StatusCode::NOT_FOUND, "UnknownVersion")
            }
            DeployError::Rollback(RollbackError::NoEarlier(_)) => {
                (StatusCode::CONFLICT, "NoEarlierVersion")
            }
            DeployError::Rollback(RollbackError::AlreadyCurrent(_)) => {
                (StatusCode::CONFLICT, "AlreadyCurrent")
            }
            DeployError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "ClusterUnavailable"),
        };
        AdminError::new(status, code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_errors_have_status_and_code() {
        let e: AdminError = DeployError::Invalid(LoadError::WrongWorld("x".into())).into();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::UNPROCESSABLE_ENTITY, "WrongWorld")
        );
        let e: AdminError = DeployError::Rollback(RollbackError::NoEarlier(1)).into();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::CONFLICT, "NoEarlierVersion")
        );
        let e: AdminError = TenantError::Exists("a".into()).into();
        assert_eq!(e.status, StatusCode::CONFLICT);
    }
}
