//! Decoding one MessagePack message body (after the VarInt prefix) into a [`HubMessage`]
//! (HubProtocol.md, "MessagePack Encoding").
//!
//! Messages are arrays whose first item is the type. Extra trailing items are skipped (the spec
//! lets later versions append items), a missing optional item takes its default, and the body
//! must hold exactly one value. Arguments, items and results are converted to JSON text
//! (see `to_json`). Error texts follow ASP.NET's `MessagePackHubProtocolWorker` where it has one.

use super::super::{CompletionOutcome, Headers, HubMessage, Json, ProtocolError, message_type};
use super::decode::{Reader, Token, utf8};
use super::to_json::{into_raw, value_to_json};

/// Completion result kinds.
pub(crate) const ERROR_RESULT: u8 = 1;
pub(crate) const VOID_RESULT: u8 = 2;
pub(crate) const NON_VOID_RESULT: u8 = 3;

/// Decodes one body. `Ok(None)` means a well-formed message of an unknown type, skipped.
pub fn parse_body(body: &[u8]) -> Result<Option<HubMessage>, ProtocolError> {
    if body.is_empty() {
        return Err(ProtocolError::invalid("Invalid payload."));
    }
    let mut r = Reader::new(body);
    let Token::Array(len) = r.next()? else {
        return Err(ProtocolError::invalid(
            "Invalid payload: a message must be an array.",
        ));
    };
    if len == 0 {
        return Err(ProtocolError::invalid(
            "Invalid payload: the message array is empty.",
        ));
    }
    // Any integer is a type; unknown ones (negative included) are skipped.
    let kind = match r.next()? {
        Token::UInt(v) => u8::try_from(v).unwrap_or(u8::MAX),
        Token::Int(v) => u8::try_from(v).unwrap_or(u8::MAX),
        other => return Err(wrong_type("messageType", "Integer", &other)),
    };
    let mut fields = Fields { r, left: len - 1 };
    // Items are read in wire order: struct literal fields are evaluated in the order written.
    let message = match kind {
        message_type::INVOCATION => {
            fields.need(4, "Invocation")?;
            let headers = fields.headers()?;
            let invocation_id = fields
                .nullable_string("invocationId")?
                .filter(|id| !id.is_empty());
            HubMessage::Invocation {
                invocation_id,
                headers,
                target: fields.target()?,
                arguments: fields.arguments()?,
                stream_ids: fields.stream_ids()?,
            }
        }
        message_type::STREAM_INVOCATION => {
            fields.need(4, "StreamInvocation")?;
            HubMessage::StreamInvocation {
                headers: fields.headers()?,
                invocation_id: fields.invocation_id()?,
                target: fields.target()?,
                arguments: fields.arguments()?,
                stream_ids: fields.stream_ids()?,
            }
        }
        message_type::STREAM_ITEM => {
            fields.need(3, "StreamItem")?;
            HubMessage::StreamItem {
                headers: fields.headers()?,
                invocation_id: fields.invocation_id()?,
                item: fields.json()?,
            }
        }
        message_type::COMPLETION => {
            fields.need(3, "Completion")?;
            let headers = fields.headers()?;
            let invocation_id = fields.invocation_id()?;
            let kind = fields.u64("resultKind")?;
            let outcome = match u8::try_from(kind).unwrap_or(u8::MAX) {
                ERROR_RESULT => {
                    fields.need(1, "Completion")?;
                    CompletionOutcome::Error(fields.string("error")?)
                }
                VOID_RESULT => CompletionOutcome::Void,
                NON_VOID_RESULT => {
                    fields.need(1, "Completion")?;
                    CompletionOutcome::Result(fields.json()?)
                }
                _ => return Err(ProtocolError::invalid("Invalid invocation result kind.")),
            };
            HubMessage::Completion {
                invocation_id,
                outcome,
                headers,
            }
        }
        message_type::CANCEL_INVOCATION => {
            fields.need(2, "CancelInvocation")?;
            HubMessage::CancelInvocation {
                headers: fields.headers()?,
                invocation_id: fields.invocation_id()?,
            }
        }
        message_type::PING => HubMessage::Ping,
        message_type::CLOSE => {
            // `[7]` alone is tolerated as a bare close; ASP.NET always writes the error slot.
            let error = match fields.left {
                0 => None,
                _ => fields.nullable_string("error")?,
            };
            let allow_reconnect = match fields.left {
                0 => false,
                _ => fields.bool("allowReconnect")?,
            };
            HubMessage::Close {
                error,
                allow_reconnect,
            }
        }
        message_type::ACK => {
            fields.need(1, "Ack")?;
            HubMessage::Ack {
                sequence_id: fields.u64("sequenceId")?,
            }
        }
        message_type::SEQUENCE => {
            fields.need(1, "Sequence")?;
            HubMessage::Sequence {
                sequence_id: fields.u64("sequenceId")?,
            }
        }
        _ => {
            fields.finish()?;
            return Ok(None);
        }
    };
    fields.finish()?;
    Ok(Some(message))
}

fn read_u64(r: &mut Reader<'_>, field: &str) -> Result<u64, ProtocolError> {
    match r.next()? {
        Token::UInt(v) => Ok(v),
        Token::Int(v) if v >= 0 => Ok(v.unsigned_abs()),
        other => Err(wrong_type(field, "an unsigned Integer", &other)),
    }
}

fn wrong_type(field: &str, expected: &str, got: &Token<'_>) -> ProtocolError {
    ProtocolError::invalid(format!(
        "Reading '{field}' as {expected} failed: found {}.",
        got.kind()
    ))
}

/// The items after the type, counted so that optional trailing ones can be detected.
struct Fields<'a> {
    r: Reader<'a>,
    left: u32,
}

impl Fields<'_> {
    /// Fails unless at least `n` more items are present (the JS client's length checks).
    fn need(&self, n: u32, message: &str) -> Result<(), ProtocolError> {
        if self.left < n {
            return Err(ProtocolError::invalid(format!(
                "Invalid payload for {message} message."
            )));
        }
        Ok(())
    }

    fn next(&mut self) -> Result<Token<'_>, ProtocolError> {
        self.left = self.left.saturating_sub(1);
        self.r.next()
    }

    /// Skips extra items (validating them), then requires the body to be fully used.
    fn finish(mut self) -> Result<(), ProtocolError> {
        for _ in 0..self.left {
            self.r.skip_value(1)?;
        }
        if !self.r.is_empty() {
            return Err(ProtocolError::InvalidMessagePack(
                "Unexpected bytes after the message.".into(),
            ));
        }
        Ok(())
    }

    fn u64(&mut self, field: &str) -> Result<u64, ProtocolError> {
        self.left = self.left.saturating_sub(1);
        read_u64(&mut self.r, field)
    }

    fn bool(&mut self, field: &str) -> Result<bool, ProtocolError> {
        match self.next()? {
            Token::Bool(b) => Ok(b),
            Token::Nil => Ok(false),
            other => Err(wrong_type(field, "Boolean", &other)),
        }
    }

    fn nullable_string(&mut self, field: &str) -> Result<Option<String>, ProtocolError> {
        match self.next()? {
            Token::Nil => Ok(None),
            Token::Str(bytes) => Ok(Some(utf8(bytes)?.to_owned())),
            other => Err(wrong_type(field, "String", &other)),
        }
    }

    fn string(&mut self, field: &str) -> Result<String, ProtocolError> {
        self.nullable_string(field)?
            .ok_or_else(|| ProtocolError::missing(field))
    }

    fn invocation_id(&mut self) -> Result<String, ProtocolError> {
        match self.string("invocationId")? {
            id if id.is_empty() => Err(ProtocolError::missing("invocationId")),
            id => Ok(id),
        }
    }

    fn target(&mut self) -> Result<String, ProtocolError> {
        match self.string("target")? {
            target if target.is_empty() => Err(ProtocolError::missing("target")),
            target => Ok(target),
        }
    }

    /// A map of str to str; nil is read as no headers.
    fn headers(&mut self) -> Result<Headers, ProtocolError> {
        let len = match self.next()? {
            Token::Map(len) => len,
            Token::Nil => return Ok(Vec::new()),
            other => return Err(wrong_type("headers", "Map", &other)),
        };
        let mut headers = Vec::new();
        for _ in 0..len {
            let name = match self.r.next()? {
                Token::Str(bytes) => utf8(bytes)?.to_owned(),
                other => return Err(wrong_type("header name", "String", &other)),
            };
            let value = match self.r.next()? {
                Token::Str(bytes) => utf8(bytes)?.to_owned(),
                other => return Err(wrong_type(&format!("header '{name}'"), "String", &other)),
            };
            headers.push((name, value));
        }
        Ok(headers)
    }

    /// The arguments array, as JSON text.
    fn arguments(&mut self) -> Result<Json, ProtocolError> {
        match self.r.clone().next()? {
            Token::Array(_) => self.value_json(),
            other => Err(wrong_type("arguments", "Array", &other)),
        }
    }

    /// Absent (older clients) and nil both mean no streams.
    fn stream_ids(&mut self) -> Result<Vec<String>, ProtocolError> {
        if self.left == 0 {
            return Ok(Vec::new());
        }
        let len = match self.next()? {
            Token::Array(len) => len,
            Token::Nil => return Ok(Vec::new()),
            other => return Err(wrong_type("streamIds", "Array", &other)),
        };
        let mut ids = Vec::new();
        for _ in 0..len {
            match self.r.next()? {
                Token::Str(bytes) => ids.push(utf8(bytes)?.to_owned()),
                other => return Err(wrong_type("streamIds", "Array of String", &other)),
            }
        }
        Ok(ids)
    }

    /// Any value, as JSON text (`item`, `result`).
    fn json(&mut self) -> Result<Json, ProtocolError> {
        self.value_json()
    }

    fn value_json(&mut self) -> Result<Json, ProtocolError> {
        self.left = self.left.saturating_sub(1);
        let mut text = Vec::new();
        value_to_json(&mut self.r, &mut text, 1)?;
        into_raw(text)
    }
}
