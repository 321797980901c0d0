//! Write Switchboard hub plugins in plain Rust.
//!
//! A plugin is a type implementing [`Hub`], exported with [`export_hub!`] and
//! built as a WebAssembly component (`cargo build --target wasm32-wasip2
//! --release`). It never sees WIT: methods are ordinary functions taking a
//! [`Context`] and serde-decoded arguments, and the host's capabilities are
//! the small modules below.
//!
//! ```
//! use switchboard_guest::{Context, Hub, HubError, Methods, clients, kv};
//!
//! struct Notify;
//!
//! impl Hub for Notify {
//!     fn methods(m: &mut Methods) {
//!         m.method("registerClient", register_client);
//!         m.method("notifyClient", notify_client);
//!     }
//! }
//!
//! fn register_client(ctx: &Context, (id,): (i64,)) -> Result<(), HubError> {
//!     kv::set(&format!("client:{id}"), ctx.connection_id())?;
//!     Ok(())
//! }
//!
//! fn notify_client(_: &Context, (id, text): (i64, String)) -> Result<(), HubError> {
//!     let connection = kv::get(&format!("client:{id}"))?.ok_or("Unable to find connection")?;
//!     clients::connection(&connection).send("addMessage", (text,))?;
//!     Ok(())
//! }
//!
//! switchboard_guest::export_hub!(Notify);
//! ```
//!
//! # Layout
//!
//! - [`Hub`] (`hub.rs`): the trait a plugin implements.
//! - [`Methods`] (`methods.rs`): registering methods; `dispatch.rs` calls them
//!   by name; `codec.rs` maps arguments and results to and from JSON.
//! - [`Context`] (`context.rs`): the connection a call runs for.
//! - [`HubError`], [`HostError`] (`error.rs`).
//! - [`args`]: argument types for what clients send ([`args::Integer`],
//!   [`hub_enum!`] for enums by name or number).
//! - Host calls: [`clients`], [`groups`], [`kv`], [`streaming`],
//!   [`invocation`], [`connection`], [`log`], through `host.rs` (the WIT imports, or in a
//!   native build stand-ins that serve a test host or fail cleanly).
//! - [`testing`] (native builds only): a test host, so `cargo test` runs a
//!   hub's methods with an in-memory store and captured sends.
//! - Behind [`export_hub!`]: `bindings.rs` (the generated WIT bindings),
//!   `entry.rs` (the world's exports) and `panic_hook.rs` (panic messages to
//!   the tenant log).

// Lets the generated bindings name this crate's wit-bindgen re-export by the
// same path from inside the SDK and from plugin crates.
extern crate self as switchboard_guest;

#[allow(
    unsafe_code,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all
)]
mod bindings;
mod codec;
mod context;
mod dispatch;
mod entry;
mod error;
mod host;
mod hub;
mod methods;
mod panic_hook;

pub mod args;
pub mod clients;
pub mod connection;
pub mod groups;
pub mod invocation;
pub mod kv;
pub mod log;
pub mod marked;
pub mod streaming;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use context::Context;
pub use error::{HostError, HubError};
pub use hub::Hub;
pub use marked::{Binary, Timestamp};
pub use methods::{MethodOptions, Methods};
pub use serde_json;
pub use streaming::Stream;

/// Exports a [`Hub`] type as the plugin's implementation of the `hub` world.
///
/// Use it once, in the plugin crate's `lib.rs` (crate type `cdylib`), as
/// `switchboard_guest::export_hub!(MyHub);` (see the crate example). It
/// implements the world's exports by delegating to the SDK, which builds the
/// hub's [`Methods`] and dispatches to them.
#[macro_export]
macro_rules! export_hub {
    ($hub:ty) => {
        const _: () = {
            struct __SwitchboardHub;

            impl $crate::__private::bindings::Guest for __SwitchboardHub {
                fn describe() -> $crate::__private::bindings::HubInfo {
                    $crate::__private::entry::describe::<$hub>()
                }

                fn on_connected(
                    ctx: $crate::__private::bindings::Context,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::entry::on_connected::<$hub>(ctx)
                }

                fn on_disconnected(
                    ctx: $crate::__private::bindings::Context,
                    error: ::core::option::Option<::std::string::String>,
                ) {
                    $crate::__private::entry::on_disconnected::<$hub>(ctx, error)
                }

                fn invoke(
                    ctx: $crate::__private::bindings::Context,
                    method: ::std::string::String,
                    args_json: ::std::string::String,
                ) -> ::core::result::Result<
                    ::core::option::Option<::std::string::String>,
                    ::std::string::String,
                > {
                    $crate::__private::entry::invoke::<$hub>(ctx, method, args_json)
                }
            }

            $crate::__private::bindings::__export_hub_world!(
                __SwitchboardHub with_types_in $crate::__private::bindings
            );
        };
    };
}

/// What [`export_hub!`] expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use wit_bindgen;

    /// The generated bindings' root, as the export glue expects it.
    pub mod bindings {
        pub use crate::bindings::*;
    }

    /// The world's exports for a `Hub` type.
    pub mod entry {
        pub use crate::entry::{describe, invoke, on_connected, on_disconnected};
    }
}
