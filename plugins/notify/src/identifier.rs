//! `specificIdentifier`: a JSON number naming a registration.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, Error};

/// An integral identifier, in canonical decimal form.
///
/// Clients send a JavaScript `number`; a MessagePack client may send the same
/// value as a float (`42.0`), so any number with an integral value up to
/// 2^53 is accepted and stored in one canonical form, and `42`, `42.0` and
/// `4.2e1` name the same registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecificIdentifier(String);

impl SpecificIdentifier {
    /// The key-value entry holding the registered connection id.
    pub(crate) fn key(&self) -> String {
        format!("notify:client:{}", self.0)
    }
}

/// The largest integer a JavaScript `number` (an f64) holds exactly.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

impl<'de> Deserialize<'de> for SpecificIdentifier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        if let Some(n) = number.as_i64() {
            return Ok(Self(n.to_string()));
        }
        if let Some(n) = number.as_u64() {
            return Ok(Self(n.to_string()));
        }
        match number.as_f64() {
            // In range and integral, so the cast is exact.
            Some(f) if f.fract() == 0.0 && f.abs() <= MAX_EXACT => Ok(Self((f as i64).to_string())),
            _ => Err(D::Error::custom(format_args!(
                "specificIdentifier must be an integer, got {number}"
            ))),
        }
    }
}

impl fmt::Display for SpecificIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
