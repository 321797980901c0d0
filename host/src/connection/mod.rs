//! One connection's life, whatever transport carries it: the handshake, the
//! bounded outbound queue, keep-alive pings and the client timeout, the
//! reader that hands hub messages to the `hub` layer, and stateful reconnect.
//! What the rest of the node holds of a connection (its handle, outbox and
//! request info) is the `outbound` layer's.
//!
//! A transport gives the connection a stream of inbound byte chunks and a
//! sink for outbound frames; every outbound frame holds whole records.
//!
//! The node gives every connection one [`ConnectionEnv`]: what it uses of
//! the node (settings, router, usage, the pending and resumable tables, the
//! cluster, the draining signal, the hub services), never the node itself.
//!
//! Layout:
//! - `env`: the connection layer's handle on the node.
//! - `run`: handshake, then the reader loop; with stateful reconnect it also
//!   parks the connection when its WebSocket drops and takes a new one.
//! - `writer`: the outbound queue into the transport, pings, Acks, replay.
//! - `replay`: sequence numbers, the bounded replay buffer, duplicate
//!   suppression; pure.
//! - `resume`: the node's table of connections a new WebSocket may resume.
//! - `pending`: negotiated connections waiting for their transport.

mod env;
pub(crate) mod listed;
mod pending;
pub mod replay;
mod resume;
mod run;
pub mod takeover;
mod writer;

use bytes::Bytes;

pub use env::{ConnectionEnv, ConnectionSettings};
pub use pending::{EARLY_BYTES, EarlyRefused, Negotiated, PendingConnections};
pub use resume::{
    BoxInbound, BoxOutbound, CloseCode, GoneOnError, ResumableConnections, ResumeLink, Transport,
    TransportGone,
};
pub use run::{Accepted, run, run_resumable, run_taken, span};

/// A chunk of bytes from the client: a WebSocket message or a POST body.
/// Records may span chunks, and a chunk may hold several records.
#[derive(Debug)]
pub enum Inbound {
    /// Bytes as they arrived: a WebSocket message's payload or a POST body.
    Data(Bytes),
    /// The client closed the transport (a WebSocket close frame, a DELETE).
    Closed,
    /// The transport failed without a close (a reset, a vanished peer): a
    /// stateful-reconnect client will resume on a new one.
    Dropped,
}

/// What the connection asks its transport to do.
#[derive(Debug, Clone)]
pub enum OutFrame {
    /// One WebSocket message, SSE event or poll body of whole records;
    /// binary (MessagePack) rather than text (JSON) when `binary`.
    Data {
        /// Whole encoded records.
        data: Bytes,
        /// Binary (MessagePack) rather than text (JSON).
        binary: bool,
    },
    /// End the transport cleanly (WebSocket close code 1000).
    Close,
}

/// Random ids as ASP.NET makes them: 16 bytes, base64url, 22 characters,
/// URL-safe because clients append them to URLs without encoding.
pub fn new_id() -> String {
    use base64::Engine as _;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod run_tests;

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_url_safe_and_distinct() {
        let a = super::new_id();
        let b = super::new_id();
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}
