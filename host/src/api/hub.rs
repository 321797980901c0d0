//! The hub as a whole: broadcast, and invoking a hub method server-side.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::error::ApiError;
use super::payload::parse_payload;
use super::{Call, applied_as, sent};
use crate::address::{Target, Unknown};
use crate::plugin::{CallEnv, Context, MethodKind};

/// The longest a server-side hub method call may take, host waits included.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// `POST .../:send?excluded=...`: every connection of the hub but the excluded.
pub(super) async fn send_all(call: &Call) -> Result<Response, ApiError> {
    let message = parse_payload(&call.body)?.into_invocation()?;
    let target = Target::All {
        except: call.query_all("excluded"),
    };
    sent(call.api.router.send(&call.hub, &target, Arc::new(message))).await
}

/// `POST .../:closeConnections?excluded=...&reason=...`: closes every
/// connection of the hub, on every node, but the excluded (204).
pub(super) async fn close_all(call: &Call) -> Result<Response, ApiError> {
    let target = Target::All { except: Vec::new() };
    close_target(call, target).await
}

/// Closes every connection `target` reaches but the `excluded` ones, on
/// every node; each client's Close carries `reason` (204 once the cluster
/// has the close).
pub(super) async fn close_target(call: &Call, target: Target) -> Result<Response, ApiError> {
    let except = call.query_all("excluded");
    let reason = call.query_one("reason");
    let receipt = call
        .api
        .router
        .close_many(&call.hub, target, except, reason);
    applied_as(receipt, "the close", StatusCode::NO_CONTENT).await
}

/// `POST .../:invoke`: calls a hub method as a client would, but with no
/// caller connection (empty `connection-id`, no user, no claims). Answers
/// `{"result": value}`; the method's own error is a 422.
pub(super) async fn invoke(call: &Call) -> Result<Response, ApiError> {
    let payload = parse_payload(&call.body)?;
    let api = &call.api;
    let plugin = api
        .registry
        .get(&call.hub)
        .ok_or_else(|| Unknown::hub(&call.hub))?;
    let method = plugin
        .method(&payload.target)
        .ok_or_else(|| ApiError::UnknownMethod(payload.target.clone()))?;
    if method.kind == MethodKind::ServerStream || method.upload_streams > 0 {
        return Err(ApiError::BadRequest(format!(
            "'{}' streams; only plain methods can be invoked over the API",
            method.name
        )));
    }
    let name = method.name.clone();
    let env = CallEnv {
        tenant: call.tenant.clone(),
        hub: call.hub.clone(),
        router: api.router.clone(),
        caller: None,
        receipts: Default::default(),
    };
    let receipts = env.receipts.clone();
    let ctx = Context {
        tenant: call.hub.tenant.to_string(),
        hub: call.hub.hub.to_string(),
        connection_id: String::new(),
        user_id: None,
        claims_json: "{}".to_owned(),
    };
    // The tenant's limit on invocations at once holds for backends too.
    let limits = call.tenant.limits();
    let usage = api.usage.tenant(&call.hub.tenant);
    let Some(_slot) = usage.invocation_slot(&limits).await else {
        let error = format!(
            "Too many concurrent invocations: the tenant allows at most {} at once on this server.",
            limits.concurrent_invocations
        );
        usage.hit(
            &call.hub,
            crate::tenant::limits::Limit::ConcurrentInvocations,
            &error,
        );
        return Err(ApiError::Unavailable(error));
    };
    let outcome = tokio::time::timeout(
        INVOKE_TIMEOUT,
        api.engine
            .invoke(&plugin, env, &ctx, &name, &payload.arguments, None),
    )
    .await
    .map_err(|_| ApiError::Timeout(INVOKE_TIMEOUT.as_secs()))?;
    // What the method sent to other nodes is stored before the call succeeds.
    if let (Ok(Ok(_)), Err(e)) = (&outcome, receipts.settle().await) {
        return Err(ApiError::Unavailable(format!(
            "'{name}' ran, but what it sent was not: {e}"
        )));
    }
    let result = match outcome {
        Ok(Ok(None)) => "null".to_owned(),
        Ok(Ok(Some(text))) => {
            serde_json::from_str::<&serde_json::value::RawValue>(&text).map_err(|e| {
                ApiError::PluginFailed(format!("'{name}' returned invalid JSON ({e})"))
            })?;
            text
        }
        Ok(Err(error)) => return Err(ApiError::InvocationFailed(error)),
        Err(e) => {
            warn!(tenant = %call.hub.tenant, hub = %call.hub.hub, method = %name, error = %e, "API invocation failed");
            return Err(ApiError::PluginFailed(format!(
                "invocation of '{name}' failed: {e}"
            )));
        }
    };
    Ok((
        StatusCode::OK,
        [(CONTENT_TYPE, "application/json")],
        format!("{{\"result\":{result}}}"),
    )
        .into_response())
}
