//! Decoding one JSON record (without its 0x1E) into a [`HubMessage`].
//!
//! The record is read once with serde_json into borrowed [`RawValue`]s per known property, so
//! `arguments`, `item` and `result` are kept as their exact input text; unknown properties are
//! skipped (but still validated), in any order. Property names are case-sensitive (HubProtocol.md).
//! Error texts follow ASP.NET's `JsonHubProtocol` ("Missing required property 'target'.").

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::super::escape::lone_surrogate;
use super::super::messagepack::MAX_DEPTH;
use super::super::{CompletionOutcome, Headers, HubMessage, ProtocolError, message_type};

/// Decodes one record. `Ok(None)` means a well-formed record of an unknown `type`, which is
/// skipped for forward compatibility (HubProtocol.md).
pub fn parse_record(record: &[u8]) -> Result<Option<HubMessage>, ProtocolError> {
    let raw: RawRecord<'_> =
        serde_json::from_slice(record).map_err(|e| ProtocolError::InvalidJson(e.to_string()))?;
    raw.into_message()
}

/// The known properties of a record, each still as JSON text.
#[derive(Default)]
struct RawRecord<'a> {
    kind: Option<&'a RawValue>,
    invocation_id: Option<&'a RawValue>,
    target: Option<&'a RawValue>,
    arguments: Option<&'a RawValue>,
    stream_ids: Option<&'a RawValue>,
    headers: Option<&'a RawValue>,
    item: Option<&'a RawValue>,
    result: Option<&'a RawValue>,
    error: Option<&'a RawValue>,
    sequence_id: Option<&'a RawValue>,
    allow_reconnect: Option<&'a RawValue>,
}

impl<'a> RawRecord<'a> {
    fn into_message(self) -> Result<Option<HubMessage>, ProtocolError> {
        let kind = self.kind.ok_or_else(|| ProtocolError::missing("type"))?;
        let kind: i64 = typed(kind, "type", "Number")?;
        let Ok(kind) = u8::try_from(kind) else {
            return Ok(None);
        };
        let message = match kind {
            message_type::INVOCATION => HubMessage::Invocation {
                invocation_id: self.optional_invocation_id()?,
                target: self.target()?,
                arguments: self.arguments()?,
                stream_ids: self.stream_ids()?,
                headers: self.headers()?,
            },
            message_type::STREAM_INVOCATION => HubMessage::StreamInvocation {
                invocation_id: self.invocation_id()?,
                target: self.target()?,
                arguments: self.arguments()?,
                stream_ids: self.stream_ids()?,
                headers: self.headers()?,
            },
            message_type::STREAM_ITEM => HubMessage::StreamItem {
                invocation_id: self.invocation_id()?,
                item: text_value(self.item.ok_or_else(|| ProtocolError::missing("item"))?)?,
                headers: self.headers()?,
            },
            message_type::COMPLETION => HubMessage::Completion {
                invocation_id: self.invocation_id()?,
                outcome: self.outcome()?,
                headers: self.headers()?,
            },
            message_type::CANCEL_INVOCATION => HubMessage::CancelInvocation {
                invocation_id: self.invocation_id()?,
                headers: self.headers()?,
            },
            message_type::PING => HubMessage::Ping,
            message_type::CLOSE => HubMessage::Close {
                error: nullable_string(self.error, "error")?,
                allow_reconnect: match self.allow_reconnect {
                    Some(raw) if !is_null(raw) => typed(raw, "allowReconnect", "Boolean")?,
                    _ => false,
                },
            },
            message_type::ACK => HubMessage::Ack {
                sequence_id: self.sequence_id()?,
            },
            message_type::SEQUENCE => HubMessage::Sequence {
                sequence_id: self.sequence_id()?,
            },
            _ => return Ok(None),
        };
        Ok(Some(message))
    }

    /// Invocation only: absent, `null` or `""` all mean fire-and-forget, as in ASP.NET's
    /// dispatcher (`string.IsNullOrEmpty`).
    fn optional_invocation_id(&self) -> Result<Option<String>, ProtocolError> {
        Ok(nullable_string(self.invocation_id, "invocationId")?.filter(|id| !id.is_empty()))
    }

    fn invocation_id(&self) -> Result<String, ProtocolError> {
        match self.optional_invocation_id()? {
            Some(id) => Ok(id),
            None => Err(ProtocolError::missing("invocationId")),
        }
    }

    fn target(&self) -> Result<String, ProtocolError> {
        let target: String = match self.target {
            Some(raw) => typed(raw, "target", "String")?,
            None => String::new(),
        };
        if target.is_empty() {
            return Err(ProtocolError::missing("target"));
        }
        Ok(target)
    }

    fn arguments(&self) -> Result<Box<RawValue>, ProtocolError> {
        let raw = self
            .arguments
            .ok_or_else(|| ProtocolError::missing("arguments"))?;
        if !raw.get().starts_with('[') {
            return Err(expected("arguments", "Array"));
        }
        text_value(raw)
    }

    fn stream_ids(&self) -> Result<Vec<String>, ProtocolError> {
        match self.stream_ids {
            Some(raw) if !is_null(raw) => typed(raw, "streamIds", "Array of String"),
            _ => Ok(Vec::new()),
        }
    }

    fn headers(&self) -> Result<Headers, ProtocolError> {
        match self.headers {
            Some(raw) if !is_null(raw) => parse_headers(raw),
            _ => Ok(Vec::new()),
        }
    }

    /// `result` present (even `null`) is a value, `error` present is an error, neither is void.
    /// `"error":null` counts as absent, as in the JS client's truthiness check.
    fn outcome(&self) -> Result<CompletionOutcome, ProtocolError> {
        let error = nullable_string(self.error, "error")?;
        match (error, self.result) {
            (Some(_), Some(_)) => Err(ProtocolError::invalid(
                "The 'error' and 'result' properties are mutually exclusive.",
            )),
            (Some(error), None) => Ok(CompletionOutcome::Error(error)),
            (None, Some(result)) => Ok(CompletionOutcome::Result(text_value(result)?)),
            (None, None) => Ok(CompletionOutcome::Void),
        }
    }

    fn sequence_id(&self) -> Result<u64, ProtocolError> {
        let raw = self
            .sequence_id
            .ok_or_else(|| ProtocolError::missing("sequenceId"))?;
        typed(raw, "sequenceId", "Number")
    }
}

/// A value kept as JSON text (`arguments`, `item`, `result`), refused when one of its strings is
/// not Unicode text: it could not be read by a plugin or sent to a MessagePack client.
/// The text is System.Text.Json's.
///
/// Nesting is limited as in the MessagePack reader (the value itself at depth 1, at most
/// `MAX_DEPTH - 1` levels), so what a JSON client may send a MessagePack client may send too.
fn text_value(raw: &RawValue) -> Result<Box<RawValue>, ProtocolError> {
    if let Some(unit) = lone_surrogate(raw.get()) {
        return Err(ProtocolError::InvalidJson(format!(
            "Cannot read invalid UTF-16 JSON text as string. Invalid surrogate value: '0x{unit:04X}'."
        )));
    }
    if nested_too_deeply(raw.get()) {
        return Err(ProtocolError::InvalidJson(
            "Values are nested too deeply.".into(),
        ));
    }
    Ok(raw.to_owned())
}

/// Whether arrays and objects nest `MAX_DEPTH` deep in valid JSON text. serde_json checks
/// nesting only when it builds values, not for text it keeps raw.
fn nested_too_deeply(text: &str) -> bool {
    let bytes = text.as_bytes();
    // Fewer openers than the limit cannot nest that deep: the usual case, and a cheap count.
    if bytes.iter().filter(|&&b| b == b'[' || b == b'{').count() < MAX_DEPTH {
        return false;
    }
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest >= MAX_DEPTH
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

fn expected(property: &str, kind: &str) -> ProtocolError {
    ProtocolError::invalid(format!("Expected '{property}' to be of type {kind}."))
}

/// Parses a property's text as `T`, or reports ASP.NET's "Expected 'x' to be of type Y." text.
fn typed<'a, T: serde::Deserialize<'a>>(
    raw: &'a RawValue,
    property: &str,
    kind: &str,
) -> Result<T, ProtocolError> {
    serde_json::from_str(raw.get()).map_err(|_| expected(property, kind))
}

/// A string property where `null` and absence both mean `None`.
fn nullable_string(
    raw: Option<&RawValue>,
    property: &str,
) -> Result<Option<String>, ProtocolError> {
    match raw {
        Some(raw) if !is_null(raw) => typed(raw, property, "String").map(Some),
        _ => Ok(None),
    }
}

/// `headers`: an object of string values, kept in input order (duplicates included).
fn parse_headers(raw: &RawValue) -> Result<Headers, ProtocolError> {
    struct HeadersVisitor;

    impl<'de> Visitor<'de> for HeadersVisitor {
        type Value = Result<Headers, ProtocolError>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut headers = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                let value: &RawValue = map.next_value()?;
                match serde_json::from_str::<String>(value.get()) {
                    Ok(value) => headers.push((name, value)),
                    Err(_) => {
                        return Ok(Err(ProtocolError::invalid(format!(
                            "Expected header '{name}' to be of type String."
                        ))));
                    }
                }
            }
            Ok(Ok(headers))
        }
    }

    let mut de = serde_json::Deserializer::from_str(raw.get());
    match de.deserialize_map(HeadersVisitor) {
        Ok(headers) => headers,
        Err(_) => Err(expected("headers", "Object")),
    }
}

// === impl Deserialize for RawRecord ===

/// The property names of a record. Matching is exact (case-sensitive).
enum Field {
    Type,
    InvocationId,
    Target,
    Arguments,
    StreamIds,
    Headers,
    Item,
    Result,
    Error,
    SequenceId,
    AllowReconnect,
    Other,
}

impl Field {
    fn from_name(name: &str) -> Field {
        match name {
            "type" => Field::Type,
            "invocationId" => Field::InvocationId,
            "target" => Field::Target,
            "arguments" => Field::Arguments,
            "streamIds" => Field::StreamIds,
            "headers" => Field::Headers,
            "item" => Field::Item,
            "result" => Field::Result,
            "error" => Field::Error,
            "sequenceId" => Field::SequenceId,
            "allowReconnect" => Field::AllowReconnect,
            _ => Field::Other,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        struct FieldVisitor;

        impl Visitor<'_> for FieldVisitor {
            type Value = Field;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a property name")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
                Ok(Field::from_name(name))
            }
        }

        deserializer.deserialize_identifier(FieldVisitor)
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawRecord<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawRecord<'a>, D::Error> {
        struct RecordVisitor;

        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = RawRecord<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRecord<'de>, A::Error> {
                let mut record = RawRecord::default();
                while let Some(field) = map.next_key::<Field>()? {
                    // A repeated property keeps its last value.
                    let slot = match field {
                        Field::Type => &mut record.kind,
                        Field::InvocationId => &mut record.invocation_id,
                        Field::Target => &mut record.target,
                        Field::Arguments => &mut record.arguments,
                        Field::StreamIds => &mut record.stream_ids,
                        Field::Headers => &mut record.headers,
                        Field::Item => &mut record.item,
                        Field::Result => &mut record.result,
                        Field::Error => &mut record.error,
                        Field::SequenceId => &mut record.sequence_id,
                        Field::AllowReconnect => &mut record.allow_reconnect,
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value::<&'de RawValue>()?);
                }
                Ok(record)
            }
        }

        deserializer.deserialize_map(RecordVisitor)
    }
}
