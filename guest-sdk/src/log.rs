//! Writing to the tenant's log (the host adds tenant, hub and plugin version).
//!
//! Each function takes anything `Display`, so both `log::info("text")` and
//! `log::info(format_args!("registered {id}"))` work.

use std::fmt::Display;

use crate::bindings::types::LogLevel;
use crate::host::log as wit;

/// Very fine detail, usually filtered out.
pub fn trace(message: impl Display) {
    write(LogLevel::Trace, message);
}

/// Detail useful while developing a plugin.
pub fn debug(message: impl Display) {
    write(LogLevel::Debug, message);
}

/// Normal events worth keeping.
pub fn info(message: impl Display) {
    write(LogLevel::Info, message);
}

/// Something unexpected that the plugin handled.
pub fn warn(message: impl Display) {
    write(LogLevel::Warn, message);
}

/// Something failed.
pub fn error(message: impl Display) {
    write(LogLevel::Error, message);
}

fn write(level: LogLevel, message: impl Display) {
    wit::log(level, &message.to_string());
}
