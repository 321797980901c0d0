//! The exports of the `hub` world, for a [`Hub`] type: what the
//! [`crate::export_hub!`] glue delegates to. Converts between WIT types and
//! the SDK's, and installs the panic hook before any plugin code runs.

use crate::bindings::types::{self, HubInfo, MethodInfo, MethodKind};
use crate::methods::Kind;
use crate::{Context, Hub, Methods, panic_hook};

/// `describe`: the registered methods, with kind and upload-stream count.
pub fn describe<H: Hub>() -> HubInfo {
    panic_hook::install();
    let methods = Methods::of::<H>();
    HubInfo {
        sdk_version: env!("CARGO_PKG_VERSION").to_owned(),
        methods: methods
            .iter()
            .map(|m| MethodInfo {
                name: m.name.to_string(),
                kind: match m.kind {
                    Kind::Unary => MethodKind::Unary,
                    Kind::ServerStream => MethodKind::ServerStream,
                },
                upload_streams: m.uploads,
            })
            .collect(),
    }
}

/// `on-connected`: the hub's [`Hub::on_connected`].
pub fn on_connected<H: Hub>(ctx: types::Context) -> Result<(), String> {
    panic_hook::install();
    H::on_connected(&Context::from(ctx)).map_err(|e| e.into_message())
}

/// `on-disconnected`: the hub's [`Hub::on_disconnected`].
pub fn on_disconnected<H: Hub>(ctx: types::Context, error: Option<String>) {
    panic_hook::install();
    H::on_disconnected(&Context::from(ctx), error.as_deref());
}

/// `invoke`: dispatch to the registered method (see [`Methods::invoke`]).
pub fn invoke<H: Hub>(
    ctx: types::Context,
    method: String,
    args_json: String,
) -> Result<Option<String>, String> {
    panic_hook::install();
    Methods::of::<H>()
        .invoke(&Context::from(ctx), &method, &args_json)
        .map_err(|e| e.into_message())
}
