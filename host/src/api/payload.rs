//! Request bodies: the content type check and Azure's `PayloadMessage`
//! (`{"target": "method", "arguments": [...]}`). Pure functions.

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::error::ApiError;
use crate::address::OutboundInvocation;

/// `application/json`, with parameters (`; charset=utf-8`) or a `+json` suffix.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType(
            "a body without Content-Type".into(),
        ));
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "'{}'",
            crate::error_text::truncate(text, 100)
        )))
    }
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(alias = "Target")]
    target: Option<String>,
    #[serde(alias = "Arguments", borrow)]
    arguments: Option<&'a RawValue>,
}

/// A method and its arguments for clients (or for the hub, with `:invoke`).
#[derive(Debug)]
pub struct Payload {
    /// The method clients (or, with `:invoke`, the hub) are asked to run.
    pub target: String,
    /// The arguments as JSON array text.
    pub arguments: String,
}

impl Payload {
    /// The invocation sent to clients; `BadRequest` if the arguments are not a JSON array.
    pub fn into_invocation(self) -> Result<OutboundInvocation, ApiError> {
        OutboundInvocation::from_json(&self.target, &self.arguments).map_err(ApiError::BadRequest)
    }
}

/// Parses a `PayloadMessage`. `arguments` may be left out (no arguments).
pub fn parse_payload(body: &[u8]) -> Result<Payload, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the body is empty; expected {\"target\": ..., \"arguments\": [...]}".into(),
        ));
    }
    let wire: Wire = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body is not valid JSON for a PayloadMessage: {e}"
        ))
    })?;
    let target = wire
        .target
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest("'target' (the method name) is required".into()))?;
    if target.len() > 1024 {
        return Err(ApiError::BadRequest(
            "'target' is longer than 1024 bytes".into(),
        ));
    }
    let arguments = match wire.arguments {
        None => "[]".to_owned(),
        Some(raw) if raw.get().trim_start().starts_with('[') => {
            serde_json::from_str::<Unicode>(raw.get()).map_err(|e| {
                ApiError::BadRequest(format!(
                    "'arguments' holds a string that is not Unicode text: {e}; \
                     a lone surrogate escape such as \\ud800 cannot be delivered"
                ))
            })?;
            raw.get().to_owned()
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "'arguments' must be a JSON array".into(),
            ));
        }
    };
    Ok(Payload { target, arguments })
}

/// A JSON value whose strings (keys too) are all Unicode text: a `\uD800`
/// escape without its pair parses as JSON text but is no string any client
/// can receive (a MessagePack str must be UTF-8), so it is refused here, once,
/// rather than delivered to some clients and dropped for others. Reading it
/// this way checks every escape without building the value.
struct Unicode;

impl<'de> Deserialize<'de> for Unicode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UnicodeVisitor)
    }
}

struct UnicodeVisitor;

impl<'de> Visitor<'de> for UnicodeVisitor {
    type Value = Unicode;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Unicode, E> {
        Ok(Unicode)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Unicode, E> {
        Ok(Unicode)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Unicode, E> {
        Ok(Unicode)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Unicode, E> {
        Ok(Unicode)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Unicode, E> {
        Ok(Unicode)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Unicode, E> {
        Ok(Unicode)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unicode, A::Error> {
        while seq.next_element::<Unicode>()?.is_some() {}
        Ok(Unicode)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unicode, A::Error> {
        while map.next_entry::<Unicode, Unicode>()?.is_some() {}
        Ok(Unicode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn payload_forms() {
        let p = parse_payload(br#"{"target":"newMessage","arguments":["a",{"b":1}]}"#).expect("ok");
        assert_eq!(p.target, "newMessage");
        assert_eq!(p.arguments, r#"["a",{"b":1}]"#);
        let p = parse_payload(br#"{"Target":"m","Arguments":[1]}"#).expect("v1 casing");
        assert_eq!((p.target.as_str(), p.arguments.as_str()), ("m", "[1]"));
        let p = parse_payload(br#"{"target":"m"}"#).expect("no arguments");
        assert_eq!(p.arguments, "[]");
        let inv = p.into_invocation().expect("invocation");
        assert_eq!(inv.method, "m");
    }

    #[test]
    fn payload_errors_say_what_is_wrong() {
        let msg = |body: &[u8]| match parse_payload(body) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        };
        assert!(msg(b"").contains("empty"));
        assert!(msg(b"{not json").contains("not valid JSON"));
        assert!(msg(br#"{"arguments":[]}"#).contains("'target'"));
        assert!(msg(br#"{"target":""}"#).contains("'target'"));
        assert!(msg(br#"{"target":"m","arguments":{"a":1}}"#).contains("array"));
        assert!(msg(br#"[1,2]"#).contains("not valid JSON"));
        // Lone surrogates, anywhere in the arguments; a pair is a character.
        for body in [
            r#"{"target":"m","arguments":["\ud800"]}"#,
            r#"{"target":"m","arguments":[{"a":["x\udfff"]}]}"#,
            r#"{"target":"m","arguments":[{"\ud800":1}]}"#,
            r#"{"target":"m","arguments":["\ud800\u0041"]}"#,
        ] {
            assert!(msg(body.as_bytes()).contains("surrogate"), "{body}");
        }
        assert!(msg(br#"{"target":"\ud800"}"#).contains("not valid JSON"));
        let pair = parse_payload(br#"{"target":"m","arguments":["\ud834\udd1e",1.5,null,true]}"#)
            .expect("a surrogate pair is one character");
        assert_eq!(pair.arguments, r#"["\ud834\udd1e",1.5,null,true]"#);
    }

    #[test]
    fn content_types() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(v));
            require_json(&h)
        };
        assert_eq!(with("application/json"), Ok(()));
        assert_eq!(with("Application/JSON; charset=utf-8"), Ok(()));
        assert_eq!(with("application/vnd.api+json"), Ok(()));
        assert!(matches!(
            with("text/plain"),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            require_json(&HeaderMap::new()),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }
}
