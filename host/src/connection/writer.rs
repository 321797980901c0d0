//! The writer half of a connection: drains the outbound queue into the
//! transport, several queued records per frame, pings when idle, and on close
//! flushes what was queued, tells the client why, and ends the transport.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, SinkExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::{ConnectionHandle, OutFrame};
use crate::protocol::{HubMessage, Protocol, TransferFormat};

/// Most bytes joined into one outbound frame.
const MAX_BATCH: usize = 64 * 1024;

pub(super) async fn run<O>(
    mut sink: O,
    mut queue: mpsc::Receiver<Bytes>,
    handle: Arc<ConnectionHandle>,
    protocol: Protocol,
    keep_alive: Option<Duration>,
) where
    O: Sink<OutFrame> + Unpin,
{
    let binary = protocol.transfer_format() == TransferFormat::Binary;
    let ping = encode(protocol, &HubMessage::Ping);
    let idle = keep_alive.unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let mut next_ping = Instant::now() + idle;
    loop {
        let frame = tokio::select! {
            biased;
            item = queue.recv() => match item {
                Some(first) => batch(first, &mut queue),
                None => break,
            },
            () = handle.closing.cancelled() => break,
            () = sleep_until(next_ping), if keep_alive.is_some() => ping.clone(),
        };
        if sink
            .send(OutFrame::Data {
                data: frame,
                binary,
            })
            .await
            .is_err()
        {
            handle.close();
            return;
        }
        next_ping = Instant::now() + idle;
    }
    // Closing: what was queued before the close still goes out, then the reason.
    let mut rest = Vec::new();
    while let Ok(item) = queue.try_recv() {
        rest.push(item);
    }
    if let Some(reason) = handle.close_reason() {
        rest.push(encode(
            protocol,
            &HubMessage::Close {
                error: Some(reason.error),
                allow_reconnect: reason.allow_reconnect,
            },
        ));
    }
    for chunk in rest.chunks(64) {
        let data = join(chunk);
        if sink.send(OutFrame::Data { data, binary }).await.is_err() {
            return;
        }
    }
    let _ = sink.send(OutFrame::Close).await;
    let _ = sink.close().await;
}

/// Joins whatever else is queued already into one frame with `first`, so a
/// busy connection makes one write (and one syscall) for many messages.
fn batch(first: Bytes, queue: &mut mpsc::Receiver<Bytes>) -> Bytes {
    let mut more = Vec::new();
    let mut size = first.len();
    while size < MAX_BATCH {
        match queue.try_recv() {
            Ok(next) => {
                size += next.len();
                more.push(next);
            }
            Err(_) => break,
        }
    }
    if more.is_empty() {
        return first;
    }
    let mut joined = BytesMut::with_capacity(size);
    joined.extend_from_slice(&first);
    for b in more {
        joined.extend_from_slice(&b);
    }
    joined.freeze()
}

fn join(chunks: &[Bytes]) -> Bytes {
    match chunks {
        [one] => one.clone(),
        many => {
            let mut joined = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
            for b in many {
                joined.extend_from_slice(b);
            }
            joined.freeze()
        }
    }
}

pub(super) fn encode(protocol: Protocol, message: &HubMessage) -> Bytes {
    let mut out = Vec::new();
    // Control messages always encode; an error here would be a codec bug.
    if let Err(e) = protocol.write_message(message, &mut out) {
        tracing::error!(error = %e, "cannot encode a control message");
    }
    Bytes::from(out)
}
