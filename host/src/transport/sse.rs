//! Server-Sent Events (TransportProtocols.md): `GET /hub?id=...` with
//! `Accept: text/event-stream` carries everything the server sends, one
//! event per outbound frame; the client sends by POST. Text (JSON) only.
//!
//! The response starts with the comment `:\r\n`, flushed at once, because the
//! client's `start()` waits for the EventSource to open. The connection ends
//! when the response stream is dropped (the client closed it).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_util::sync::{DropGuard, PollSender};

use super::TransportState;
use super::error::RequestError;
use super::http_connections::TransportKind;
use super::{Caller, start_http};
use crate::connection::{self, OutFrame};
use crate::protocol::TransferFormat;

/// SSE carries text only, so MessagePack never uses it.
pub const SSE_FORMATS: &[TransferFormat] = &[TransferFormat::Text];

/// Frames queued for the response before the connection's writer waits for
/// the client to read.
const OUTBOUND_FRAMES: usize = 8;

/// The comment that opens the stream.
const PREAMBLE: &[u8] = b":\r\n";

/// `GET /hubs/{tenant}/{hub}?id=...` with `Accept: text/event-stream`.
pub(super) async fn connect(
    node: Arc<TransportState>,
    caller: Caller<'_>,
) -> Result<Response, RequestError> {
    if let Some(active) = node.http_connections.get(caller.id) {
        return Err(if active.hub != caller.key {
            RequestError::UnknownConnection
        } else if active.kind == TransportKind::ServerSentEvents {
            RequestError::AlreadyActive
        } else {
            RequestError::TransportMismatch
        });
    }
    let started = start_http(&node, caller, TransportKind::ServerSentEvents, None);
    let (accepted, registration, inbound) = started?;
    let ended = registration.connection().ended().clone();
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_FRAMES);
    let connections = node.connections.clone();
    tokio::spawn(async move {
        connection::run(connections, accepted, inbound, PollSender::new(out_tx)).await;
        drop(registration);
    });
    let events = EventStream {
        frames: out_rx,
        preamble_sent: false,
        _ended_when_dropped: ended.drop_guard(),
    };
    let mut response = (StatusCode::OK, Body::from_stream(events)).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache,no-store"),
        (header::PRAGMA, "no-cache"),
        // Compression would buffer events; so would nginx without this.
        (header::CONTENT_ENCODING, "identity"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The response body: the preamble, then one event per frame, until the
/// connection ends. Dropping it (the client went away) ends the transport.
struct EventStream {
    frames: mpsc::Receiver<OutFrame>,
    preamble_sent: bool,
    _ended_when_dropped: DropGuard,
}

impl Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !self.preamble_sent {
            self.preamble_sent = true;
            return Poll::Ready(Some(Ok(Bytes::from_static(PREAMBLE))));
        }
        match self.frames.poll_recv(cx) {
            Poll::Ready(Some(OutFrame::Data { data, .. })) => {
                Poll::Ready(Some(Ok(format_event(&data))))
            }
            Poll::Ready(Some(OutFrame::Close) | None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// One SSE event carrying `payload` (ASP.NET's ServerSentEventsMessageFormatter):
/// each LF-separated line becomes a `data: ` line (a CR before the LF is
/// dropped), and a blank line ends the event. The client joins the lines
/// with LF again. An empty payload is a lone blank line.
pub(super) fn format_event(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    if !payload.is_empty() {
        for line in payload.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: &str) -> String {
        String::from_utf8(format_event(payload.as_bytes()).to_vec()).expect("utf-8")
    }

    #[test]
    fn events_as_asp_net_writes_them() {
        // The cases of ASP.NET's ServerSentEventsMessageFormatterTests.
        assert_eq!(event(""), "\r\n");
        assert_eq!(event("Hello, World"), "data: Hello, World\r\n\r\n");
        assert_eq!(
            event("Hello\r\nWorld"),
            "data: Hello\r\ndata: World\r\n\r\n"
        );
        assert_eq!(event("Hello\nWorld"), "data: Hello\r\ndata: World\r\n\r\n");
        assert_eq!(event("Hello\n"), "data: Hello\r\ndata: \r\n\r\n");
        assert_eq!(event("Hello\r\n"), "data: Hello\r\ndata: \r\n\r\n");
    }

    #[test]
    fn records_stay_whole_in_one_event() {
        let records = "{\"type\":1,\"target\":\"m\",\"arguments\":[\"a\"]}\u{1e}{\"type\":6}\u{1e}";
        assert_eq!(event(records), format!("data: {records}\r\n\r\n"));
        // A lone CR (not before LF) is kept as it is.
        assert_eq!(event("a\rb"), "data: a\rb\r\n\r\n");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stream_opens_with_the_preamble_and_ends_on_close() {
        use futures_util::StreamExt;

        let (tx, rx) = mpsc::channel(4);
        let ended = tokio_util::sync::CancellationToken::new();
        let mut events = EventStream {
            frames: rx,
            preamble_sent: false,
            _ended_when_dropped: ended.clone().drop_guard(),
        };
        let data = Bytes::from_static(b"{}\x1e");
        tx.send(OutFrame::Data {
            data,
            binary: false,
        })
        .await
        .expect("queued");
        tx.send(OutFrame::Close).await.expect("queued");
        let mut chunks = Vec::new();
        while let Some(Ok(chunk)) = events.next().await {
            chunks.push(chunk);
        }
        assert_eq!(
            chunks,
            vec![
                Bytes::from_static(PREAMBLE),
                Bytes::from_static(b"data: {}\x1e\r\n\r\n")
            ]
        );
        assert!(!ended.is_cancelled());
        drop(events);
        assert!(
            ended.is_cancelled(),
            "dropping the response ends the transport"
        );
    }
}
