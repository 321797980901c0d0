//! Host bindings generated from `wit/hub.wit`, in one place so the rest of
//! the host never sees generated names directly.

// The generated items carry the WIT's doc comments, and not every WIT item has
// one (the world's `use` of `context` becomes an undocumented type alias, which
// the plugin module re-exports): `wit/hub.wit` is their documentation.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "hub",
    imports: { default: async },
    exports: { default: async },
});

// The generated types are public inside the generated module; re-exporting them
// crate-wide is what keeps generated names out of the rest of the host.
#[allow(unreachable_pub)]
pub use self::switchboard::hub::types::{GroupTarget, LogLevel, MethodKind, Target};
