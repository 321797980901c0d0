//! One connection's life, whatever transport carries it: the handshake, the
//! bounded outbound queue, keep-alive pings and the client timeout, and the
//! reader that hands hub messages to the `hub` layer.
//!
//! A transport gives the connection a stream of inbound byte chunks and a
//! sink for outbound frames; every outbound frame holds whole records.

mod handle;
mod pending;
mod run;
mod writer;

use bytes::Bytes;

pub use handle::ConnectionHandle;
pub use pending::{Negotiated, PendingConnections, RequestInfo};
pub use run::{Accepted, run};

/// A chunk of bytes from the client: a WebSocket message or a POST body.
/// Records may span chunks, and a chunk may hold several records.
#[derive(Debug)]
pub enum Inbound {
    Data(Bytes),
    /// The client closed the transport.
    Closed,
}

/// What the connection asks its transport to do.
#[derive(Debug, Clone)]
pub enum OutFrame {
    /// One WebSocket message, SSE event or poll body of whole records;
    /// binary (MessagePack) rather than text (JSON) when `binary`.
    Data { data: Bytes, binary: bool },
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
