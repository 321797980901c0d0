//! Routes a guest panic's message to the tenant log.
//!
//! Plugins build with `panic = "abort"`, so a panic ends in an `unreachable`
//! trap and the host only sees "wasm trap". Rust's default hook would print
//! the message to stderr, which the host may discard; this hook writes it at
//! error level through the `log` import instead, just before the abort, so
//! the host can report what the plugin said.

use std::any::Any;
use std::panic::{self, Location, PanicHookInfo};
use std::sync::Once;

/// Installs the hook, once per instance. Every entry point calls it, since
/// the host may call any export first.
pub(crate) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| panic::set_hook(Box::new(report)));
}

fn report(info: &PanicHookInfo<'_>) {
    crate::log::error(describe(info.payload(), info.location()));
}

/// The log line for a panic, worded like Rust's own:
/// `panicked at src/lib.rs:10:5: <message>`.
fn describe(payload: &(dyn Any + Send), location: Option<&Location<'_>>) -> String {
    let message = if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.as_str()
    } else {
        "Box<dyn Any>"
    };
    match location {
        Some(at) => format!("panicked at {at}: {message}"),
        None => format!("panicked: {message}"),
    }
}

#[cfg(test)]
mod tests;
