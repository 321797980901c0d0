//! The host's imports, as the host-call modules ([`crate::clients`],
//! [`crate::kv`], ...) reach them.
//!
//! In the component (`wasm32`) they are the generated WIT imports. In a
//! native build, where plugin authors run `cargo test`, they are stand-ins
//! that serve the [`crate::testing::TestHost`] running the call, and
//! otherwise fail with [`native::NO_HOST`] instead of aborting the test
//! process.

#[cfg(target_arch = "wasm32")]
pub(crate) use crate::bindings::switchboard::hub::{
    clients, connection, groups, invocation, kv, log, streaming,
};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::{clients, connection, groups, invocation, kv, log, streaming};

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
