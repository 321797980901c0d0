//! Host bindings generated from `wit/hub.wit`, in one place so the rest of
//! the host never sees generated names directly.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "hub",
    imports: { default: async },
    exports: { default: async },
});

pub use self::switchboard::hub::types::{GroupTarget, LogLevel, MethodKind, Target};
