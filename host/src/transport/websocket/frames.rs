//! Reading a client's WebSocket frames as they arrive (RFC 6455 section 5),
//! without assembling messages: the payload of a data frame is handed on in
//! pieces, as much as has arrived, so the only bytes kept here are those of a
//! header cut across reads, a control frame (at most 125 bytes) and an
//! incomplete UTF-8 character (at most 3). Limits on what the pieces make
//! (SignalR records) are the connection's, per record.
//!
//! Pure: bytes in, [`Event`]s out, no I/O.

use std::io::Cursor;

use bytes::{Buf, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// Largest payload of a control frame (RFC 6455 section 5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// What the client sent, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Event {
    /// The next piece of a text or binary message's payload, unmasked.
    Data(Bytes),
    /// A Ping, to be answered with a Pong of the same payload.
    Ping(Bytes),
    /// A Pong, which needs nothing.
    Pong,
    /// A Close frame with its status code, if it had one.
    Close(Option<u16>),
}

/// A violation of RFC 6455 by the client, which ends the connection with a
/// Close frame of [`Violation::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Violation {
    #[error("{0}")]
    Protocol(&'static str),
    #[error("a text message is not valid UTF-8")]
    InvalidUtf8,
}

impl Violation {
    /// The Close status code: 1002 (protocol error) or 1007 (invalid payload data).
    pub(super) fn code(self) -> u16 {
        match self {
            Violation::Protocol(_) => 1002,
            Violation::InvalidUtf8 => 1007,
        }
    }
}

/// The frame being read.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// None: a data frame; else the control frame's kind.
    control: Option<Control>,
    is_final: bool,
    /// Payload bytes not yet read.
    remaining: u64,
    mask: [u8; 4],
    /// Payload bytes unmasked so far, modulo 4.
    mask_offset: usize,
}

/// A text or binary message whose final frame has not come yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    Text,
    Binary,
}

/// Reads the frames of one client connection.
#[derive(Debug, Default)]
pub(super) struct FrameReader {
    frame: Option<Frame>,
    message: Option<Message>,
    utf8: Utf8Check,
}

impl FrameReader {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The next event from the front of `buf`, whose bytes it consumes;
    /// `Ok(None)` when `buf` holds no more of one. A data piece is split off
    /// `buf` without copying. After an error, the connection must end.
    pub(super) fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, Violation> {
        loop {
            let Some(frame) = self.frame.as_mut() else {
                match self.header(buf)? {
                    Some(()) => continue,
                    None => return Ok(None),
                }
            };
            if let Some(control) = frame.control {
                // Whole control frames only: they are small.
                let len = frame.remaining as usize;
                if buf.len() < len {
                    return Ok(None);
                }
                let mut payload = buf.split_to(len);
                unmask(&mut payload, frame.mask, 0);
                self.frame = None;
                return control_event(control, payload.freeze()).map(Some);
            }
            let available = (buf.len() as u64).min(frame.remaining) as usize;
            if available == 0 && frame.remaining > 0 {
                return Ok(None);
            }
            let mut piece = buf.split_to(available);
            unmask(&mut piece, frame.mask, frame.mask_offset);
            frame.mask_offset = (frame.mask_offset + available) % 4;
            frame.remaining -= available as u64;
            let frame_done = frame.remaining == 0;
            let message_done = frame_done && frame.is_final;
            if frame_done {
                self.frame = None;
            }
            if self.message == Some(Message::Text) {
                self.utf8.feed(&piece, message_done)?;
            }
            if message_done {
                self.message = None;
            }
            if !piece.is_empty() {
                return Ok(Some(Event::Data(piece.freeze())));
            }
        }
    }

    /// Reads a frame header from `buf` and checks it. `Ok(None)`: not all here yet.
    fn header(&mut self, buf: &mut BytesMut) -> Result<Option<()>, Violation> {
        let mut cursor = Cursor::new(&buf[..]);
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(None),
            Err(_) => return Err(Violation::Protocol("reserved opcode")),
        };
        let consumed = cursor.position() as usize;
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(Violation::Protocol(
                "reserved bits set without an extension",
            ));
        }
        let Some(mask) = header.mask else {
            return Err(Violation::Protocol("unmasked frame from a client"));
        };
        if len >> 63 != 0 {
            return Err(Violation::Protocol("payload length with its high bit set"));
        }
        let control = match header.opcode {
            OpCode::Control(control) => {
                if !header.is_final {
                    return Err(Violation::Protocol("fragmented control frame"));
                }
                if len > MAX_CONTROL_PAYLOAD {
                    return Err(Violation::Protocol("control frame over 125 bytes"));
                }
                Some(control)
            }
            OpCode::Data(Data::Continue) => {
                if self.message.is_none() {
                    return Err(Violation::Protocol("continuation frame without a message"));
                }
                None
            }
            OpCode::Data(data) => {
                if self.message.is_some() {
                    return Err(Violation::Protocol(
                        "new message before the previous one's final frame",
                    ));
                }
                self.message = Some(match data {
                    Data::Text => Message::Text,
                    _ => Message::Binary,
                });
                None
            }
        };
        buf.advance(consumed);
        self.frame = Some(Frame {
            control,
            is_final: header.is_final,
            remaining: len,
            mask,
            mask_offset: 0,
        });
        Ok(Some(()))
    }
}

/// What a whole control frame means.
fn control_event(control: Control, payload: Bytes) -> Result<Event, Violation> {
    match control {
        Control::Ping => Ok(Event::Ping(payload)),
        Control::Pong => Ok(Event::Pong),
        Control::Close => {
            let Some((code, reason)) = payload.split_first_chunk::<2>() else {
                return if payload.is_empty() {
                    Ok(Event::Close(None))
                } else {
                    Err(Violation::Protocol("close frame with a 1-byte payload"))
                };
            };
            let code = u16::from_be_bytes(*code);
            if !CloseCode::from(code).is_allowed() {
                return Err(Violation::Protocol(
                    "close frame with an invalid status code",
                ));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(Violation::InvalidUtf8);
            }
            Ok(Event::Close(Some(code)))
        }
        // FrameHeader::parse refuses reserved opcodes.
        Control::Reserved(_) => Err(Violation::Protocol("reserved opcode")),
    }
}

/// Unmasks `data`, the payload from byte `offset` (mod 4) of its frame on.
fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset % 4);
    let key = u32::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let mut word = [0; 4];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u32::from_ne_bytes(word) ^ key).to_ne_bytes());
    }
    let key = key.to_ne_bytes();
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key) {
        *byte ^= k;
    }
}

/// Checks a text message's UTF-8 over its pieces, keeping the start of a
/// character cut between two of them.
#[derive(Debug, Default)]
struct Utf8Check {
    partial: [u8; 4],
    partial_len: usize,
}

impl Utf8Check {
    /// Checks the next piece; `last`: the message ends with it.
    fn feed(&mut self, mut piece: &[u8], last: bool) -> Result<(), Violation> {
        if self.partial_len > 0 {
            let want = char_len(self.partial[0]);
            let take = (want - self.partial_len).min(piece.len());
            let (head, rest) = piece.split_at(take);
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(head);
            self.partial_len += take;
            piece = rest;
            match std::str::from_utf8(&self.partial[..self.partial_len]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_some() => return Err(Violation::InvalidUtf8),
                // Still a valid start: the piece was too short to finish it.
                Err(_) => {}
            }
        }
        if self.partial_len == 0 {
            match std::str::from_utf8(piece) {
                Ok(_) => {}
                Err(e) if e.error_len().is_some() => return Err(Violation::InvalidUtf8),
                Err(e) => {
                    let tail = &piece[e.valid_up_to()..];
                    self.partial[..tail.len()].copy_from_slice(tail);
                    self.partial_len = tail.len();
                }
            }
        }
        if last && self.partial_len > 0 {
            self.partial_len = 0;
            return Err(Violation::InvalidUtf8);
        }
        Ok(())
    }
}

/// The length of the UTF-8 sequence `first` starts (a valid start byte).
fn char_len(first: u8) -> usize {
    match first {
        0xF0.. => 4,
        0xE0.. => 3,
        _ => 2,
    }
}

#[cfg(test)]
#[path = "frames_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "frames_proptests.rs"]
mod proptests;
