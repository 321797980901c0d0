//! The MessagePack hub protocol (HubProtocol.md, "MessagePack Encoding").
//!
//! Framing: each message is a VarInt length (1–5 bytes, at most 2 GB) followed by that many
//! bytes of MessagePack. There is no 0x1E. The handshake is still JSON (see
//! [`super::handshake`]).
//!
//! Plugins only see JSON, so values are converted at this boundary: see `to_json` for
//! MessagePack -> JSON (bin -> base64 string, timestamp -> ISO-8601 string, map keys -> strings)
//! and `from_json` for JSON -> MessagePack. A bin or timestamp sent by a client reaches the plugin as a
//! string; it goes back out as bin or a timestamp when the plugin marks it (see `super::marked`).

mod decode;
mod encode;
mod from_json;
mod read;
mod to_json;
mod write;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod value_tests;

use bytes::{Buf, BytesMut};

use super::varint;
use super::{HubMessage, Json, ProtocolError};

pub(crate) use decode::MAX_DEPTH;
pub use from_json::{Markers, json_to_msgpack, json_to_msgpack_with};
pub use read::parse_body;
pub(crate) use to_json::push_timestamp;
pub use write::write_body;

/// The exact framed bytes of a Ping: length 2, then `0x91 0x06`.
pub const FRAMED_PING: &[u8] = &[0x02, 0x91, 0x06];

/// Parses every whole message at the front of `buf` (see [`super::Protocol::parse_messages`]).
///
/// `max_message_size` limits one body (without its prefix); a declared length over the limit
/// fails at once, before the body has arrived.
pub fn parse_messages(
    buf: &mut BytesMut,
    max_message_size: usize,
    out: &mut Vec<HubMessage>,
) -> Result<(), ProtocolError> {
    let mut consumed = 0;
    let result = loop {
        let rest = buf.get(consumed..).unwrap_or_default();
        let (len, prefix) = match varint::decode(rest) {
            Ok(Some((len, prefix))) => (len as usize, prefix),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        if len > max_message_size {
            break Err(ProtocolError::MessageTooLarge {
                limit: max_message_size,
            });
        }
        let Some(body) = rest.get(prefix..prefix + len) else {
            break Ok(());
        };
        match parse_body(body) {
            Ok(Some(message)) => out.push(message),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        consumed += prefix + len;
    };
    buf.advance(consumed);
    result
}

/// Appends `msg` framed (VarInt length + body) to `out`; on error `out` is unchanged.
pub fn write_message(msg: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    let start = out.len();
    out.extend_from_slice(&[0; varint::MAX_LEN]);
    let written = write_body(msg, out).and_then(|()| {
        let body_len = out.len() - start - varint::MAX_LEN;
        u32::try_from(body_len)
            .ok()
            .filter(|&n| n <= varint::MAX_VALUE)
            .ok_or(ProtocolError::MessageTooLarge {
                limit: varint::MAX_VALUE as usize,
            })
    });
    let body_len = match written {
        Ok(n) => n,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    let mut prefix = [0u8; varint::MAX_LEN];
    let used = varint::encode(body_len, &mut prefix);
    let end = out.len();
    out.copy_within(start + varint::MAX_LEN..end, start + used);
    out.truncate(end - (varint::MAX_LEN - used));
    if let (Some(slot), Some(bytes)) = (out.get_mut(start..start + used), prefix.get(..used)) {
        slot.copy_from_slice(bytes);
    }
    Ok(())
}

/// Converts one MessagePack value (the whole of `bytes`) to JSON text, with the mapping
/// described in the module docs.
pub fn msgpack_to_json(bytes: &[u8]) -> Result<Json, ProtocolError> {
    let mut reader = decode::Reader::new(bytes);
    let mut text = Vec::new();
    to_json::value_to_json(&mut reader, &mut text, 0)?;
    if !reader.is_empty() {
        return Err(ProtocolError::InvalidMessagePack(
            "Unexpected bytes after the value.".into(),
        ));
    }
    to_json::into_raw(text)
}
