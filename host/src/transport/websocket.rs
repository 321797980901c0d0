//! The WebSocket transport: each message in is a chunk of records; each
//! frame out is one WebSocket message of whole records, text for JSON and
//! binary for MessagePack.
//!
//! Inbound, text and binary messages are the same bytes to the connection,
//! as in ASP.NET (which pipes raw bytes from either): a binary message on a
//! JSON connection is parsed as JSON records, and one that holds no valid
//! record closes the connection with an error, as a text message would.
//!
//! A message's payload reaches the connection as its frames arrive
//! ([`frames`]), not once whole: the hub protocol's per-record limit applies
//! to each record as it is parsed, so a message of many records (the official
//! client joins queued sends into one) is read whatever its total size, and a
//! message that never ends costs at most one partial record.
//!
//! A close frame from the client ends the connection; a socket that fails
//! without one is `Dropped`, which a stateful-reconnect connection survives
//! until its client resumes it on a new socket ([`resume`]). A frame that
//! breaks RFC 6455 closes the socket with 1002 or 1007 ([`socket`]).

mod frames;
mod socket;
mod upgrade;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tracing::debug;

pub(super) use socket::Socket;
pub(super) use upgrade::Upgrade;

use super::Connections;
use crate::connection::{
    self, Accepted, BoxInbound, BoxOutbound, CloseCode, GoneOnError, OutFrame, ResumeLink,
    Transport,
};

/// Runs a new connection on `socket`. `token` is the `id` the client sent,
/// with which it may resume the connection on another socket.
///
/// Not `async fn`: an async fn keeps its arguments (the socket among them)
/// beside the connection's own future for as long as the connection lives.
pub(super) fn serve(
    env: Connections,
    accepted: Accepted,
    socket: Socket,
    token: Option<String>,
) -> impl Future<Output = ()> + Send + 'static {
    // Boxed: the caller's async block then holds a pointer, not the connection.
    let connection: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(connection::run_resumable(
        env,
        accepted,
        token,
        transport(socket),
    ));
    connection
}

/// Hands `socket` to the live connection `link` names, which continues on it.
pub(super) async fn resume(link: Arc<ResumeLink>, socket: Socket) {
    if let Err(transport) = link.resume(transport(socket)).await {
        // The connection ended between the lookup and the upgrade.
        debug!(connection = %link.connection_id, "resumed connection is gone");
        let mut outbound = transport.outbound;
        let _ = outbound.send(OutFrame::Close).await;
    }
}

/// Runs a durable connection this node took over on the socket its client
/// resumed with.
pub(super) fn take_over(
    env: Connections,
    taken: connection::takeover::Taken,
    socket: Socket,
) -> impl Future<Output = ()> + Send + 'static {
    let connection: Pin<Box<dyn Future<Output = ()> + Send>> =
        Box::pin(connection::run_taken(env, taken, transport(socket)));
    connection
}

/// How long a resuming client may take to speak first (its `Sequence`).
const CLIENT_FIRST: std::time::Duration = std::time::Duration::from_secs(10);

/// Tells a resuming client its connection cannot be resumed (see
/// `crate::durable::honest`), then closes the socket.
///
/// Only once the client spoke on the socket (a resuming client sends its
/// `Sequence` first): the JS client may open a resume socket it has already
/// given up on (its server timeout fired meanwhile), never sends on it, and
/// reads whatever arrives there as the handshake answer of the new connection
/// it starts instead. Such a socket gets nothing and is closed.
pub(super) async fn goodbye(socket: Socket, protocol: crate::protocol::Protocol) {
    let connection::Transport {
        mut inbound,
        mut outbound,
        ..
    } = transport(socket);
    let spoke = matches!(
        tokio::time::timeout(CLIENT_FIRST, inbound.next()).await,
        Ok(Some(connection::Inbound::Data(_)))
    );
    if !spoke {
        debug!("a resuming client said nothing; closing without the goodbye");
    } else if let Ok(frames) = crate::durable::honest::goodbye(protocol) {
        let binary = protocol.transfer_format() == crate::protocol::TransferFormat::Binary;
        let _ = outbound
            .send(OutFrame::Data {
                data: frames.into(),
                binary,
            })
            .await;
    }
    let _ = outbound.send(OutFrame::Close).await;
    let _ = outbound.close().await;
}

/// The socket as the connection sees it: chunks in, frames out.
fn transport(socket: Socket) -> Transport {
    let (sink, inbound) = socket.split();
    let close_code = CloseCode::new();
    let code = close_code.clone();
    let outbound = GoneOnError::mapping(sink, move |frame| message(frame, &code));
    let inbound: BoxInbound = Box::pin(inbound);
    let outbound: BoxOutbound = Box::pin(outbound);
    Transport {
        inbound,
        outbound,
        close_code,
    }
}

/// What the socket sends for `frame`.
fn message(frame: OutFrame, close_code: &CloseCode) -> Message {
    match frame {
        OutFrame::Data { data, binary: true } => Message::Binary(data),
        // A clone is a reference count: the bytes stay for the fallback below.
        OutFrame::Data {
            data,
            binary: false,
        } => match Utf8Bytes::try_from(data.clone()) {
            Ok(text) => Message::Text(text),
            Err(e) => {
                tracing::error!(error = %e, "a JSON frame was not UTF-8; sent as binary");
                Message::Binary(data)
            }
        },
        OutFrame::Close => Message::Close(Some(CloseFrame {
            code: close_code.get().into(),
            reason: Utf8Bytes::from_static(""),
        })),
    }
}
