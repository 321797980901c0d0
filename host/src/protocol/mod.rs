//! The SignalR wire protocol as pure functions over bytes: no I/O, no clocks, no `crate::` imports.
//!
//! Layout:
//! - [`handshake`]: the first record of every connection (`{"protocol":"json","version":1}` + 0x1E)
//!   and ASP.NET's exact handshake error texts.
//! - [`negotiate`]: the body of `POST {hub}/negotiate` and its `negotiateVersion` rules.
//! - [`json`]: the JSON hub protocol (records ending in 0x1E).
//! - [`messagepack`]: the MessagePack hub protocol (VarInt length prefix, arrays), plus the
//!   MessagePack <-> JSON value conversion, because plugins only ever see JSON.
//! - `varint`: the MessagePack framing length prefix.
//! - [`fuzz`]: a panic-free entry point that feeds arbitrary bytes to every parser.
//!
//! The comments cite the SignalR specifications of dotnet/aspnetcore (`src/SignalR/docs/specs`):
//! TransportProtocols.md for negotiate and the transports, HubProtocol.md for the messages.

pub mod fuzz;
pub mod handshake;
pub mod json;
pub mod messagepack;
pub mod negotiate;

mod escape;
pub(crate) mod marked;
pub use marked::{push_json, push_json_walked};
mod varint;

#[cfg(test)]
pub(crate) mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_bytes_tests;

use bytes::BytesMut;
pub use serde_json::value::RawValue;

/// JSON text of one value (arguments array, a result, an item), already validated.
///
/// It is written to JSON clients verbatim, so the hot path never re-serialises arguments.
pub type Json = Box<RawValue>;

/// Message headers (`headers` object / map). Usually empty; unknown headers are kept in order.
pub type Headers = Vec<(String, String)>;

/// One hub message, as both protocols carry it (HubProtocol.md).
#[derive(Debug, Clone)]
pub enum HubMessage {
    /// Type 1. No `invocation_id` means fire-and-forget: the callee must not reply.
    Invocation {
        /// Absent (or empty on input) means non-blocking.
        invocation_id: Option<String>,
        /// Method name; never empty.
        target: String,
        /// Always a JSON array.
        arguments: Json,
        /// Ids of client-to-server upload streams (HubProtocol.md).
        stream_ids: Vec<String>,
        /// Message headers; usually empty.
        headers: Headers,
    },
    /// Type 4: a call whose results come back as StreamItems and a final Completion.
    StreamInvocation {
        /// The id its StreamItems and Completion carry.
        invocation_id: String,
        /// Method name; never empty.
        target: String,
        /// Always a JSON array.
        arguments: Json,
        /// Ids of client-to-server upload streams.
        stream_ids: Vec<String>,
        /// Message headers; usually empty.
        headers: Headers,
    },
    /// Type 2: one item of a stream (server results, or client upload items).
    StreamItem {
        /// The stream (a StreamInvocation's or an upload stream's id) the item belongs to.
        invocation_id: String,
        /// The item, one JSON value.
        item: Json,
        /// Message headers; usually empty.
        headers: Headers,
    },
    /// Type 3: the end of an invocation or a stream.
    Completion {
        /// The invocation or stream that ended.
        invocation_id: String,
        /// A result, an error or neither.
        outcome: CompletionOutcome,
        /// Message headers; usually empty.
        headers: Headers,
    },
    /// Type 5: the client disposed a stream subscription.
    CancelInvocation {
        /// The StreamInvocation whose stream the client no longer wants.
        invocation_id: String,
        /// Message headers; usually empty.
        headers: Headers,
    },
    /// Type 6. JSON `{"type":6}`, MessagePack exactly `0x91 0x06`.
    Ping,
    /// Type 7. `allow_reconnect` makes a client with automatic reconnect reconnect (HubProtocol.md).
    Close {
        /// Why the connection closes, shown to the client; `None` for a normal close.
        error: Option<String>,
        /// `allowReconnect` on the wire (JSON leaves it out when false).
        allow_reconnect: bool,
    },
    /// Type 8: "I have processed everything up to `sequence_id`" (stateful reconnect, 3.9).
    Ack {
        /// The sequence id of the last message processed: the sender may drop it and all before.
        sequence_id: u64,
    },
    /// Type 9: sent first after a stateful reconnect, then the replay follows (3.9).
    Sequence {
        /// The sequence id of the first message that follows (the replay's start).
        sequence_id: u64,
    },
}

/// An Invocation or a StreamInvocation, borrowed: what the two have alike,
/// and what both protocols write alike.
#[derive(Debug, Clone, Copy)]
pub struct CallRef<'a> {
    /// [`message_type::INVOCATION`] or [`message_type::STREAM_INVOCATION`].
    pub kind: u8,
    /// As the message holds it: `None` only for a non-blocking Invocation.
    pub invocation_id: Option<&'a str>,
    /// Method name.
    pub target: &'a str,
    /// The arguments, a JSON array.
    pub arguments: &'a RawValue,
    /// Ids of client-to-server upload streams.
    pub stream_ids: &'a [String],
    /// Message headers.
    pub headers: &'a Headers,
}

impl CallRef<'_> {
    /// The id as written: an Invocation's empty id means non-blocking (as in
    /// ASP.NET) and is left out; a StreamInvocation's is always written.
    pub fn wire_id(&self) -> Option<&str> {
        if self.kind == message_type::INVOCATION {
            self.invocation_id.filter(|id| !id.is_empty())
        } else {
            self.invocation_id
        }
    }
}

impl PartialEq for CallRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.invocation_id == other.invocation_id
            && self.target == other.target
            && self.arguments.get() == other.arguments.get()
            && self.stream_ids == other.stream_ids
            && self.headers == other.headers
    }
}

/// How a [`HubMessage::Completion`] ended.
#[derive(Debug, Clone)]
pub enum CompletionOutcome {
    /// Neither `result` nor `error` on the wire (void methods, and the end of a stream).
    Void,
    /// `result` present; `"result":null` is `Result(null)`, not `Void`.
    Result(Json),
    /// `error` present.
    Error(String),
}

/// The message type numbers of the hub protocol.
pub mod message_type {
    /// [`HubMessage::Invocation`](super::HubMessage::Invocation).
    pub const INVOCATION: u8 = 1;
    /// [`HubMessage::StreamItem`](super::HubMessage::StreamItem).
    pub const STREAM_ITEM: u8 = 2;
    /// [`HubMessage::Completion`](super::HubMessage::Completion).
    pub const COMPLETION: u8 = 3;
    /// [`HubMessage::StreamInvocation`](super::HubMessage::StreamInvocation).
    pub const STREAM_INVOCATION: u8 = 4;
    /// [`HubMessage::CancelInvocation`](super::HubMessage::CancelInvocation).
    pub const CANCEL_INVOCATION: u8 = 5;
    /// [`HubMessage::Ping`](super::HubMessage::Ping).
    pub const PING: u8 = 6;
    /// [`HubMessage::Close`](super::HubMessage::Close).
    pub const CLOSE: u8 = 7;
    /// [`HubMessage::Ack`](super::HubMessage::Ack).
    pub const ACK: u8 = 8;
    /// [`HubMessage::Sequence`](super::HubMessage::Sequence).
    pub const SEQUENCE: u8 = 9;
}

// === impl HubMessage ===

impl HubMessage {
    /// An Invocation of `target` with no stream ids and no headers, as the
    /// server sends one to a client (`invocation_id`: none when no reply is wanted).
    pub(crate) fn invocation(
        invocation_id: Option<String>,
        target: String,
        arguments: Json,
    ) -> HubMessage {
        HubMessage::Invocation {
            invocation_id,
            target,
            arguments,
            stream_ids: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// The `type` number of this message on the wire.
    pub fn message_type(&self) -> u8 {
        match self {
            HubMessage::Invocation { .. } => message_type::INVOCATION,
            HubMessage::StreamItem { .. } => message_type::STREAM_ITEM,
            HubMessage::Completion { .. } => message_type::COMPLETION,
            HubMessage::StreamInvocation { .. } => message_type::STREAM_INVOCATION,
            HubMessage::CancelInvocation { .. } => message_type::CANCEL_INVOCATION,
            HubMessage::Ping => message_type::PING,
            HubMessage::Close { .. } => message_type::CLOSE,
            HubMessage::Ack { .. } => message_type::ACK,
            HubMessage::Sequence { .. } => message_type::SEQUENCE,
        }
    }

    /// A Completion without headers.
    pub fn completion(invocation_id: impl Into<String>, outcome: CompletionOutcome) -> HubMessage {
        HubMessage::Completion {
            invocation_id: invocation_id.into(),
            outcome,
            headers: Vec::new(),
        }
    }

    /// The call an Invocation or StreamInvocation makes; `None` for every other message.
    pub fn as_call(&self) -> Option<CallRef<'_>> {
        let (kind, invocation_id) = match self {
            HubMessage::Invocation { invocation_id, .. } => {
                (message_type::INVOCATION, invocation_id.as_deref())
            }
            HubMessage::StreamInvocation { invocation_id, .. } => (
                message_type::STREAM_INVOCATION,
                Some(invocation_id.as_str()),
            ),
            _ => return None,
        };
        let (HubMessage::Invocation {
            target,
            arguments,
            stream_ids,
            headers,
            ..
        }
        | HubMessage::StreamInvocation {
            target,
            arguments,
            stream_ids,
            headers,
            ..
        }) = self
        else {
            return None;
        };
        Some(CallRef {
            kind,
            invocation_id,
            target,
            arguments,
            stream_ids,
            headers,
        })
    }

    /// Types 1–5 are numbered, buffered and replayed by stateful reconnect; Ping, Close, Ack and
    /// Sequence never are (HubProtocol.md).
    pub fn is_trackable(&self) -> bool {
        (message_type::INVOCATION..=message_type::CANCEL_INVOCATION).contains(&self.message_type())
    }
}

impl PartialEq for HubMessage {
    fn eq(&self, other: &Self) -> bool {
        use HubMessage as M;
        if let (Some(a), Some(b)) = (self.as_call(), other.as_call()) {
            return a == b;
        }
        match (self, other) {
            (
                M::StreamItem {
                    invocation_id: a0,
                    item: a1,
                    headers: a2,
                },
                M::StreamItem {
                    invocation_id: b0,
                    item: b1,
                    headers: b2,
                },
            ) => a0 == b0 && a1.get() == b1.get() && a2 == b2,
            (
                M::Completion {
                    invocation_id: a0,
                    outcome: a1,
                    headers: a2,
                },
                M::Completion {
                    invocation_id: b0,
                    outcome: b1,
                    headers: b2,
                },
            ) => a0 == b0 && a1 == b1 && a2 == b2,
            (
                M::CancelInvocation {
                    invocation_id: a0,
                    headers: a1,
                },
                M::CancelInvocation {
                    invocation_id: b0,
                    headers: b1,
                },
            ) => a0 == b0 && a1 == b1,
            (M::Ping, M::Ping) => true,
            (
                M::Close {
                    error: a0,
                    allow_reconnect: a1,
                },
                M::Close {
                    error: b0,
                    allow_reconnect: b1,
                },
            ) => a0 == b0 && a1 == b1,
            (M::Ack { sequence_id: a }, M::Ack { sequence_id: b }) => a == b,
            (M::Sequence { sequence_id: a }, M::Sequence { sequence_id: b }) => a == b,
            _ => false,
        }
    }
}

impl PartialEq for CompletionOutcome {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CompletionOutcome::Void, CompletionOutcome::Void) => true,
            (CompletionOutcome::Result(a), CompletionOutcome::Result(b)) => a.get() == b.get(),
            (CompletionOutcome::Error(a), CompletionOutcome::Error(b)) => a == b,
            _ => false,
        }
    }
}

// === impl Protocol ===

/// A hub protocol, chosen by the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `json`: text records ending in 0x1E.
    Json,
    /// `messagepack`: binary, each message prefixed with its VarInt length.
    MessagePack,
}

/// How a transport carries a protocol's bytes: WebSocket text or binary frames, SSE (text only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferFormat {
    /// WebSocket text frames, or SSE.
    Text,
    /// WebSocket binary frames (not possible over SSE).
    Binary,
}

impl TransferFormat {
    /// `"Text"` or `"Binary"`, as negotiate and the handshake errors spell them.
    pub fn name(self) -> &'static str {
        match self {
            TransferFormat::Text => "Text",
            TransferFormat::Binary => "Binary",
        }
    }
}

impl Protocol {
    /// `"json"` or `"messagepack"`, matched ASCII case-insensitively like ASP.NET's resolver.
    pub fn from_name(name: &str) -> Option<Protocol> {
        if name.eq_ignore_ascii_case("json") {
            Some(Protocol::Json)
        } else if name.eq_ignore_ascii_case("messagepack") {
            Some(Protocol::MessagePack)
        } else {
            None
        }
    }

    /// The canonical (lower-case) name used in the handshake.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Json => "json",
            Protocol::MessagePack => "messagepack",
        }
    }

    /// Json -> Text, MessagePack -> Binary.
    pub fn transfer_format(self) -> TransferFormat {
        match self {
            Protocol::Json => TransferFormat::Text,
            Protocol::MessagePack => TransferFormat::Binary,
        }
    }

    /// The highest handshake `version` accepted: 2 for both (1 = classic, 2 = stateful reconnect).
    pub fn max_version(self) -> u32 {
        2
    }

    /// Whether appending `more` to a buffer that [`Self::parse_messages`] left
    /// holding only a partial record (at most `max_message_size` bytes, now
    /// `buffered` with `more`) may let it parse something or fail. False only
    /// for JSON without a separator in `more` and under the limit: parsing again
    /// would only scan the same partial record once more, and a record
    /// arriving in many small pieces would be scanned quadratically.
    pub fn may_parse(self, more: &[u8], buffered: usize, max_message_size: usize) -> bool {
        match self {
            Protocol::Json => buffered > max_message_size || more.contains(&json::RECORD_SEPARATOR),
            Protocol::MessagePack => true,
        }
    }

    /// Parses every whole message at the front of `buf`, removing the bytes it consumed; a
    /// trailing partial record stays in `buf` for the next read.
    ///
    /// Unknown message types that are otherwise well formed are skipped silently, for forward
    /// compatibility. A record larger than `max_message_size` (whole, or still partial) is an
    /// error; pass `usize::MAX` for "no limit". On error, the messages before the bad record are
    /// already in `out` and their bytes consumed; the bad record stays in `buf`. The caller is
    /// expected to close the connection.
    pub fn parse_messages(
        self,
        buf: &mut BytesMut,
        max_message_size: usize,
        out: &mut Vec<HubMessage>,
    ) -> Result<(), ProtocolError> {
        match self {
            Protocol::Json => json::parse_messages(buf, max_message_size, out),
            Protocol::MessagePack => messagepack::parse_messages(buf, max_message_size, out),
        }
    }

    /// Appends one framed message (JSON + 0x1E, or VarInt length + MessagePack) to `out`.
    /// On error `out` is left as it was.
    pub fn write_message(self, msg: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        match self {
            Protocol::Json => json::write_message(msg, out),
            Protocol::MessagePack => messagepack::write_message(msg, out),
        }
    }
}

// === ProtocolError ===

/// Why bytes could not be parsed or a message could not be written. The `Display` texts follow
/// ASP.NET's where one exists, and are meant to be shown to clients in a Close error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A record (or the partial record buffered so far) is over the configured limit.
    #[error("The maximum message size of {limit}B was exceeded.")]
    MessageTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The bytes are not JSON at all (syntax, encoding, not an object).
    #[error("Invalid JSON: {0}")]
    InvalidJson(String),
    /// The bytes are not well-formed MessagePack, or the frame prefix is bad.
    #[error("Invalid MessagePack: {0}")]
    InvalidMessagePack(String),
    /// Well-formed JSON/MessagePack that is not a valid hub message, e.g.
    /// `Missing required property 'target'.`
    #[error("{0}")]
    InvalidMessage(String),
}

impl ProtocolError {
    pub(crate) fn invalid(text: impl Into<String>) -> ProtocolError {
        ProtocolError::InvalidMessage(text.into())
    }

    pub(crate) fn missing(property: &str) -> ProtocolError {
        ProtocolError::InvalidMessage(format!("Missing required property '{property}'."))
    }
}
