//! `status`: the outcome `notifyClient` reports.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, Visitor};

/// What happened to the thing the client is waiting for.
///
/// Read as a .NET client sends the enum: by name (any case, as
/// System.Text.Json's enum converter reads it) or by number. Decoding it
/// directly, rather than through `serde_json::Value`, keeps the component
/// small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// `"Confirmed"` or `0`.
    Confirmed,
    /// `"Failed"` or `1`.
    Failed,
}

impl Status {
    /// The text the client receives in `addMessage`.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Confirmed => "Here's the message for confirmation",
            Self::Failed => "Here's the message for failure",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("Confirmed") {
            Some(Self::Confirmed)
        } else if name.eq_ignore_ascii_case("Failed") {
            Some(Self::Failed)
        } else {
            None
        }
    }

    fn from_number(number: f64) -> Option<Self> {
        match number {
            0.0 => Some(Self::Confirmed),
            1.0 => Some(Self::Failed),
            _ => None,
        }
    }
}

/// What the error says is accepted.
const EXPECTED: &str = r#""Confirmed" (0) or "Failed" (1)"#;

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StatusVisitor)
    }
}

struct StatusVisitor;

impl StatusVisitor {
    fn unknown<E: Error>(shown: impl fmt::Display) -> E {
        E::custom(format_args!("Unknown status {shown}: expected {EXPECTED}"))
    }
}

impl Visitor<'_> for StatusVisitor {
    type Value = Status;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: Error>(self, name: &str) -> Result<Status, E> {
        Status::from_name(name).ok_or_else(|| Self::unknown(format_args!("\"{name}\"")))
    }

    fn visit_u64<E: Error>(self, n: u64) -> Result<Status, E> {
        Status::from_number(n as f64).ok_or_else(|| Self::unknown(n))
    }

    fn visit_i64<E: Error>(self, n: i64) -> Result<Status, E> {
        Status::from_number(n as f64).ok_or_else(|| Self::unknown(n))
    }

    fn visit_f64<E: Error>(self, n: f64) -> Result<Status, E> {
        // Shown through serde_json's float printer, which the component has
        // anyway; `f64`'s own `Display` would add ~12 KB.
        Status::from_number(n).ok_or_else(|| match serde_json::Number::from_f64(n) {
            Some(shown) => Self::unknown(shown),
            None => Self::unknown("(not a finite number)"),
        })
    }
}
