//! JSON on the WIT boundary: a method's argument array in, its result out.
//!
//! Kept free of host calls so the rules (zero-argument methods, void versus
//! `null`) are unit-tested natively.

use std::any::TypeId;

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};

/// Decodes the invocation's JSON argument array into a handler's argument type.
///
/// `A` is usually a tuple (`(i64, String)`), but anything serde reads from an
/// array works: `Vec<Value>`, a struct, `[T; N]`. A handler taking `()` takes
/// no arguments: it accepts exactly `[]` (serde alone would want `null`).
///
/// The error is serde's message, for the caller to put in context.
pub(crate) fn decode_args<A>(args_json: &str) -> Result<A, String>
where
    A: DeserializeOwned + 'static,
{
    if TypeId::of::<A>() == TypeId::of::<()>() {
        let args: Vec<IgnoredAny> = serde_json::from_str(args_json).map_err(|e| e.to_string())?;
        if !args.is_empty() {
            return Err(format!("expected no arguments, got {}", args.len()));
        }
        // `()` is the only `A` here, and it deserialises from `null`.
        return serde_json::from_str("null").map_err(|e| e.to_string());
    }
    serde_json::from_str(args_json).map_err(|e| e.to_string())
}

/// Encodes a handler's return value as the WIT result: `None` (a void
/// completion) for `()`, and the JSON text of the value for everything else,
/// so `Option::None` and `Value::Null` reach the client as `null`.
///
/// The error is serde's message (e.g. a map with non-string keys).
pub(crate) fn encode_reply<R>(value: &R) -> Result<Option<String>, String>
where
    R: Serialize + 'static,
{
    if TypeId::of::<R>() == TypeId::of::<()>() {
        return Ok(None);
    }
    serde_json::to_string(value)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Encodes the arguments of a client-bound message, which must be a JSON
/// array because SignalR spreads it over the client handler's parameters.
/// Tuples (`("text",)`), arrays, `Vec`s and `json!([..])` all qualify, and
/// `()` (anything that encodes as `null`) means no arguments.
pub(crate) fn encode_args<A>(args: &A) -> Result<String, String>
where
    A: Serialize + ?Sized,
{
    let json = serde_json::to_string(args).map_err(|e| e.to_string())?;
    if json.starts_with('[') {
        Ok(json)
    } else if json == "null" {
        Ok("[]".to_owned())
    } else {
        Err(format!(
            "arguments must serialize to a JSON array (use a tuple such as (value,)), got {json}"
        ))
    }
}

#[cfg(test)]
mod tests;
