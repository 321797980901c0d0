//! Switchboard: a SignalR-compatible push server whose hub methods are
//! WebAssembly components.
//!
//! # Layout
//!
//! Data flows one way: client frame -> `transport` -> `protocol` decode ->
//! `connection` -> `hub` -> `plugin` (Wasm) -> host calls -> `router` ->
//! local queues and `backplane` -> other nodes' `router` -> their connections.
//!
//! - [`protocol`]: SignalR wire formats; pure functions, no I/O.
//! - [`transport`]: negotiate and the transports; HTTP in, frames out.
//! - [`connection`]: one connection's life: handshake, queue, keep-alive.
//! - [`outbound`]: what the node holds of a connection: handle, outbox, request info.
//! - [`hub`]: a connection's hub messages become plugin calls.
//! - [`plugin`]: wasmtime, components per tenant hub, limits.
//! - [`address`]: hub keys, send targets, invocations and name rules: plain data.
//! - [`router`]: where a send goes; the local index of connections.
//! - [`backplane`]: reaching other nodes.
//! - [`tenant`]: tenants, their keys, limits and key-value store.
//! - [`cors`]: which browser origins may reach a tenant's client routes.
//! - [`api`]: the backend REST API (send, groups, presence, invoke).
//! - [`metrics`]: the Prometheus recorder behind `/metrics`.
//! - [`telemetry`]: logs (text or JSON), the access log, spans and their OTLP export.
//! - [`web`]: the demo page and the dashboard, embedded.
//! - [`dashboard`]: the dashboard's live feed, a built-in admin hub.
//! - [`node`], [`server`], [`config`]: putting it together.

/// `Debug` for a struct that shows the fields listed (often none) and `..` for the rest: the
/// handles, services and key material a log line has no use for. Written as
/// `debug_fields!(Store { bucket });`, after the struct.
macro_rules! debug_fields {
    ($name:ident $(<$lt:lifetime>)? { $($field:ident),* $(,)? }) => {
        impl std::fmt::Debug for $name $(<$lt>)? {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
}

pub mod address;
pub mod api;
pub mod authoring;
pub mod backplane;
pub mod config;
pub mod config_source;
pub mod connection;
pub mod cors;
pub mod dashboard;
pub mod durable;
pub mod error_text;
pub mod hub;
pub mod metrics;
pub mod node;
pub mod outbound;
pub mod plugin;
pub mod protocol;
pub mod router;
pub mod server;
pub mod telemetry;
pub mod tenant;
pub mod transport;
pub mod web;
