//! A connection from handshake to goodbye, independent of the transport.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::{ConnectionHandle, Inbound, Negotiated, OutFrame, writer};
use crate::hub::{Flow, HubSession};
use crate::node::Node;
use crate::protocol::handshake::{self, HandshakeRequest};
use crate::protocol::{HubMessage, Protocol, TransferFormat};
use crate::tenant::Tenant;

/// How long a draining connection waits for its in-flight invocations.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// The Close error of a connection closed because its node shuts down.
const SHUTTING_DOWN: &str = "Server is shutting down.";

/// A transport request that may start a connection.
#[derive(Debug)]
pub struct Accepted {
    pub negotiated: Negotiated,
    pub tenant: Arc<Tenant>,
    /// The transfer formats the transport can carry.
    pub formats: &'static [TransferFormat],
    /// Whether the transport needs hub pings (long polling does not).
    pub keep_alive: bool,
}

/// Runs one connection until it ends.
pub async fn run<I, O>(node: Arc<Node>, accepted: Accepted, mut inbound: I, mut outbound: O)
where
    I: Stream<Item = Inbound> + Unpin + Send + 'static,
    O: Sink<OutFrame> + Unpin + Send + 'static,
{
    let config = &node.config;
    let id = accepted.negotiated.connection_id.clone();
    let mut buf = BytesMut::new();

    let request = match read_handshake(&node, &mut inbound, &mut buf).await {
        Ok(Some(request)) => request,
        Ok(None) => return,
        Err(error) => {
            debug!(connection = %id, %error, "handshake failed");
            refuse(&mut outbound, &error, false).await;
            return;
        }
    };
    let protocol = match handshake::select(&request, accepted.formats) {
        Ok(protocol) => protocol,
        Err(error) => {
            debug!(connection = %id, %error, "handshake refused");
            let binary = Protocol::from_name(&request.protocol)
                .is_some_and(|p| p.transfer_format() == TransferFormat::Binary)
                && accepted.formats.contains(&TransferFormat::Binary);
            refuse(&mut outbound, &error, binary).await;
            return;
        }
    };
    let (queue_tx, queue_rx) = mpsc::channel(config.outbound_queue);
    let user = accepted
        .negotiated
        .identity
        .user_id
        .as_deref()
        .map(Arc::from);
    let handle = Arc::new(ConnectionHandle::new(
        id.clone(),
        accepted.negotiated.hub.clone(),
        user,
        protocol,
        queue_tx,
        accepted.negotiated.request.clone(),
    ));
    // Registered before the client learns the handshake succeeded, so that anything the client
    // does next (a REST lookup, a send from another connection) already finds it. Messages routed
    // here in between wait in the queue until the writer starts, after the handshake response.
    node.router.register(handle.clone());
    let binary = protocol.transfer_format() == TransferFormat::Binary;
    let success = Bytes::from_static(handshake::success_response());
    if outbound
        .send(OutFrame::Data {
            data: success,
            binary,
        })
        .await
        .is_err()
    {
        handle.close();
        node.router.unregister(&handle.hub, &id);
        return;
    }
    let keep_alive = accepted
        .keep_alive
        .then(|| Duration::from_secs(config.keep_alive_secs));
    let writer = tokio::spawn(writer::run(
        outbound,
        queue_rx,
        handle.clone(),
        protocol,
        keep_alive,
    ));
    info!(connection = %id, hub = %handle.hub, protocol = protocol.name(), "connected");

    let mut session = HubSession::new(
        node.clone(),
        accepted.tenant,
        handle.clone(),
        &accepted.negotiated,
    );
    let error = match session.connected().await {
        Ok(()) => {
            read_loop(
                &node,
                &handle,
                &mut session,
                protocol,
                &mut inbound,
                &mut buf,
            )
            .await
        }
        Err(error) => {
            handle.abort(&error);
            Some(error)
        }
    };

    handle.close();
    node.router.unregister(&handle.hub, &id);
    handle.fail_pending_results();
    session.disconnected(error.clone()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    info!(connection = %id, error = error.as_deref().unwrap_or(""), "disconnected");
}

/// Reads and dispatches hub messages until the connection ends; returns the
/// error it ended with, if any.
async fn read_loop<I>(
    node: &Node,
    handle: &ConnectionHandle,
    session: &mut HubSession,
    protocol: Protocol,
    inbound: &mut I,
    buf: &mut BytesMut,
) -> Option<String>
where
    I: Stream<Item = Inbound> + Unpin,
{
    let max = node.config.max_message_size;
    let client_timeout = Duration::from_secs(node.config.client_timeout_secs);
    // As in ASP.NET, the client timeout starts with the client's first Ping,
    // so a client with a longer keep-alive of its own is not cut off early.
    let mut timeout_armed = false;
    let mut messages = Vec::new();
    // Once draining: the dispatcher finishing what was in flight, and a deadline.
    let mut drain: Option<(tokio::task::JoinHandle<()>, tokio::time::Instant)> = None;
    let mut draining = false;
    loop {
        // Messages before a bad record were accepted: handle them, then close.
        let parsed = protocol.parse_messages(buf, max, &mut messages);
        for message in messages.drain(..) {
            if matches!(message, HubMessage::Ping) {
                timeout_armed = true;
            }
            if let Flow::Close = session.on_message(message).await {
                return None;
            }
        }
        if let Err(e) = parsed {
            let error = e.to_string();
            handle.abort(&error);
            return Some(error);
        }
        let drained = async {
            match drain.as_mut() {
                Some((dispatcher, deadline)) => {
                    let _ = tokio::time::timeout_at(*deadline, dispatcher).await;
                }
                None => std::future::pending().await,
            }
        };
        let next = tokio::select! {
            biased;
            () = handle.closing.cancelled() => return handle.close_reason().map(|r| r.error),
            () = drained => {
                handle.abort_allow_reconnect(SHUTTING_DOWN);
                return Some(SHUTTING_DOWN.to_owned());
            }
            () = handle.draining.cancelled(), if !draining => {
                // Take no new invocations, but keep reading: in-flight ones
                // may await client results or upload items.
                draining = true;
                let dispatcher = session.stop_accepting();
                drain = Some((dispatcher, tokio::time::Instant::now() + DRAIN_TIMEOUT));
                continue;
            }
            next = inbound.next() => Some(next),
            () = tokio::time::sleep(client_timeout), if timeout_armed => None,
        };
        match next {
            Some(Some(Inbound::Data(data))) => buf.extend_from_slice(&data),
            Some(Some(Inbound::Closed)) | Some(None) => return None,
            None => {
                let error = "Server timeout elapsed without receiving a message from the client.";
                handle.abort_allow_reconnect(error);
                return Some(error.to_owned());
            }
        }
    }
}

/// Waits for the handshake request. Ok(None): the client left first.
async fn read_handshake<I>(
    node: &Node,
    inbound: &mut I,
    buf: &mut BytesMut,
) -> Result<Option<HandshakeRequest>, String>
where
    I: Stream<Item = Inbound> + Unpin,
{
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(node.config.handshake_timeout_secs);
    loop {
        match handshake::parse_handshake(buf, node.config.max_message_size) {
            Ok(Some(request)) => return Ok(Some(request)),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        match tokio::time::timeout_at(deadline, inbound.next()).await {
            Ok(Some(Inbound::Data(data))) => buf.extend_from_slice(&data),
            Ok(Some(Inbound::Closed)) | Ok(None) => return Ok(None),
            Err(_) => return Err("Handshake was canceled.".into()),
        }
    }
}

/// Sends a handshake error and ends the transport.
async fn refuse<O>(outbound: &mut O, error: &str, binary: bool)
where
    O: Sink<OutFrame> + Unpin,
{
    let data = Bytes::from(handshake::error_response(error));
    let _ = outbound.send(OutFrame::Data { data, binary }).await;
    let _ = outbound.send(OutFrame::Close).await;
    let _ = outbound.close().await;
}
