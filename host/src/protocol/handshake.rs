//! The handshake: the first record of a connection, always JSON + 0x1E, even for MessagePack
//! (HubProtocol.md).
//!
//! Request `{"protocol":"json","version":1}` (any whitespace, any field order, unknown fields
//! ignored); response `{}` + 0x1E on success or `{"error":"..."}` + 0x1E, after which the server
//! closes. Nothing may be sent before the response.

use std::fmt;

use bytes::{Buf, BytesMut};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::escape::push_json_string;
use super::json::RECORD_SEPARATOR;
use super::{Protocol, TransferFormat};

#[cfg(test)]
mod tests;

/// What the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// As sent (e.g. `"json"`, `"messagepack"`); checked by [`select`].
    pub protocol: String,
    /// 0 (signalrcore), 1, or 2 (stateful reconnect) from real clients.
    pub version: u32,
}

/// Why the handshake record could not be read. The `Display` text is meant for the
/// `{"error":"..."}` response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// No complete record within `max_size` bytes; ASP.NET answers with this exact text.
    #[error("Handshake was canceled.")]
    TooLarge,
    /// Not a JSON object.
    #[error("Invalid handshake message: {0}")]
    InvalidJson(String),
    /// A JSON object without a usable `protocol` or `version`.
    #[error("{0}")]
    InvalidRequest(String),
}

/// Parses the handshake record at the front of `buf`.
///
/// `Ok(None)` until a whole record (up to 0x1E) has arrived. On success, the record and its
/// separator are removed and any bytes after it (the first hub messages) stay in `buf`. A
/// record longer than `max_size` bytes (without the 0x1E) is [`HandshakeError::TooLarge`].
pub fn parse_handshake(
    buf: &mut BytesMut,
    max_size: usize,
) -> Result<Option<HandshakeRequest>, HandshakeError> {
    let Some(end) = buf.iter().position(|&b| b == RECORD_SEPARATOR) else {
        if buf.len() > max_size {
            return Err(HandshakeError::TooLarge);
        }
        return Ok(None);
    };
    if end > max_size {
        return Err(HandshakeError::TooLarge);
    }
    let request = parse_request(buf.get(..end).unwrap_or_default())?;
    buf.advance(end + 1);
    Ok(Some(request))
}

/// The success response: `{}` + 0x1E.
pub fn success_response() -> &'static [u8] {
    b"{}\x1e"
}

/// An error response: `{"error":"<msg>"}` + 0x1E.
pub fn error_response(msg: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 13);
    out.extend_from_slice(b"{\"error\":");
    push_json_string(&mut out, msg);
    out.push(b'}');
    out.push(RECORD_SEPARATOR);
    out
}

/// Picks the protocol for a handshake, with ASP.NET's checks and texts, in its order
/// (HubConnectionContext.HandshakeAsync): the protocol name, then the version, then whether
/// the transport can carry the protocol's transfer format.
pub fn select(
    req: &HandshakeRequest,
    transport_formats: &[TransferFormat],
) -> Result<Protocol, String> {
    let Some(protocol) = Protocol::from_name(&req.protocol) else {
        return Err(format!("The protocol '{}' is not supported.", req.protocol));
    };
    if req.version > protocol.max_version() {
        return Err(format!(
            "The server does not support version {} of the '{}' protocol.",
            req.version,
            protocol.name()
        ));
    }
    let format = protocol.transfer_format();
    if !transport_formats.contains(&format) {
        return Err(format!(
            "Cannot use the '{}' protocol on the current transport. The transport does not support '{}' transfer format.",
            protocol.name(),
            format.name()
        ));
    }
    Ok(protocol)
}

fn parse_request(record: &[u8]) -> Result<HandshakeRequest, HandshakeError> {
    let raw: RawRequest<'_> =
        serde_json::from_slice(record).map_err(|e| HandshakeError::InvalidJson(e.to_string()))?;
    let missing =
        |name: &str| HandshakeError::InvalidRequest(format!("Missing required property '{name}'."));
    let wrong = |name: &str, kind: &str| {
        HandshakeError::InvalidRequest(format!("Expected '{name}' to be of type {kind}."))
    };
    let protocol = raw.protocol.ok_or_else(|| missing("protocol"))?;
    let protocol: String =
        serde_json::from_str(protocol.get()).map_err(|_| wrong("protocol", "String"))?;
    let version = raw.version.ok_or_else(|| missing("version"))?;
    let version: u32 =
        serde_json::from_str(version.get()).map_err(|_| wrong("version", "Number"))?;
    Ok(HandshakeRequest { protocol, version })
}

/// `protocol` and `version` as JSON text; other properties are ignored.
#[derive(Default)]
struct RawRequest<'a> {
    protocol: Option<&'a RawValue>,
    version: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawRequest<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawRequest<'a>, D::Error> {
        struct RequestVisitor;

        impl<'de> Visitor<'de> for RequestVisitor {
            type Value = RawRequest<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRequest<'de>, A::Error> {
                let mut request = RawRequest::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Protocol => request.protocol = Some(map.next_value()?),
                        Key::Version => request.version = Some(map.next_value()?),
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(request)
            }
        }

        deserializer.deserialize_map(RequestVisitor)
    }
}

enum Key {
    Protocol,
    Version,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a property name")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(match name {
                    "protocol" => Key::Protocol,
                    "version" => Key::Version,
                    _ => Key::Other,
                })
            }
        }

        deserializer.deserialize_identifier(KeyVisitor)
    }
}
