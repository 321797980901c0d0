//! `status`: the outcome `notifyClient` reports.

use serde_json::Value;

use switchboard_guest::HubError;

/// What happened to the thing the client is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// `"Confirmed"` or `0`.
    Confirmed,
    /// `"Failed"` or `1`.
    Failed,
}

impl Status {
    /// Reads a status as a .NET client would send the enum: by name (any
    /// case, as System.Text.Json's enum converter reads it) or by number.
    pub(crate) fn parse(value: &Value) -> Result<Self, HubError> {
        let status = match value {
            Value::String(name) if name.eq_ignore_ascii_case("Confirmed") => Some(Self::Confirmed),
            Value::String(name) if name.eq_ignore_ascii_case("Failed") => Some(Self::Failed),
            Value::Number(n) if n.as_f64() == Some(0.0) => Some(Self::Confirmed),
            Value::Number(n) if n.as_f64() == Some(1.0) => Some(Self::Failed),
            _ => None,
        };
        status.ok_or_else(|| {
            HubError::new(format!(
                "Unknown status {value}: expected \"Confirmed\" (0) or \"Failed\" (1)"
            ))
        })
    }

    /// The text the client receives in `addMessage`.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Confirmed => "Here's the message for confirmation",
            Self::Failed => "Here's the message for failure",
        }
    }
}
