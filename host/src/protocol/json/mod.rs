//! The JSON hub protocol: one JSON object per record, each record ending with 0x1E
//! (HubProtocol.md).
//!
//! Input is a byte stream: a WebSocket message or POST body may hold several records, and a
//! record may be split across them, so [`parse_messages`] works on a growing buffer.

mod read;
mod write;

#[cfg(test)]
mod tests;

use bytes::{Buf, BytesMut};

use super::{HubMessage, ProtocolError};

pub use read::parse_record;
pub use write::write_record;

/// The record separator that ends every JSON record, the handshake included.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// Parses every whole record at the front of `buf` (see [`super::Protocol::parse_messages`]).
///
/// `max_message_size` limits one record without its separator.
pub fn parse_messages(
    buf: &mut BytesMut,
    max_message_size: usize,
    out: &mut Vec<HubMessage>,
) -> Result<(), ProtocolError> {
    let mut consumed = 0;
    let result = loop {
        let rest = buf.get(consumed..).unwrap_or_default();
        let Some(end) = rest.iter().position(|&b| b == RECORD_SEPARATOR) else {
            if rest.len() > max_message_size {
                break Err(ProtocolError::MessageTooLarge {
                    limit: max_message_size,
                });
            }
            break Ok(());
        };
        if end > max_message_size {
            break Err(ProtocolError::MessageTooLarge {
                limit: max_message_size,
            });
        }
        match parse_record(rest.get(..end).unwrap_or_default()) {
            Ok(Some(message)) => out.push(message),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        consumed += end + 1;
    };
    buf.advance(consumed);
    result
}

/// Appends `msg` as one JSON record (object + 0x1E) to `out`; on error `out` is unchanged.
pub fn write_message(msg: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    let start = out.len();
    match write_record(msg, out) {
        Ok(()) => {
            out.push(RECORD_SEPARATOR);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}
