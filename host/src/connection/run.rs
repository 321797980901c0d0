//! A connection from handshake to goodbye, independent of the transport.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use metrics::counter;
use tokio::sync::{Notify, mpsc, watch};
use tracing::{Instrument, debug, info};

use super::replay::{Admit, InboundSequence, ReplayBuffer};
use super::resume::{BoxInbound, BoxOutbound, CloseCode, GoneOnError, ResumeLink, Transport};
use super::takeover::{self, SessionLink, Taken};
use super::writer::{self, StatefulOut};
use super::{ConnectionEnv, ConnectionSettings, Inbound, Negotiated, OutFrame};
use crate::hub::{Flow, HubSession};
use crate::outbound::ConnectionHandle;
use crate::protocol::handshake::{self, HandshakeRequest};
use crate::protocol::{HubMessage, Protocol, ProtocolError, TransferFormat};
use crate::tenant::Tenant;

/// How long a draining connection waits for its in-flight invocations.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Bytes received since the last Ack after which the writer acknowledges at
/// once instead of on its one-second timer. The official clients stop sending
/// when their buffer (100 000 bytes by default) holds that much unacknowledged,
/// so acknowledging only once a second, as ASP.NET does, caps what a client
/// can send at about its buffer per second.
const EAGER_ACK_BYTES: usize = 16 * 1024;
/// How long a closing connection waits for its writer's last flush before
/// aborting it; each write of the flush has the write timeout already.
const WRITER_GRACE: Duration = Duration::from_secs(5);
/// The Close error of a connection closed because its node shuts down.
const SHUTTING_DOWN: &str = "Server is shutting down.";

/// A transport request that may start a connection.
#[derive(Debug)]
pub struct Accepted {
    /// What negotiate decided: the connection id, hub, identity and options.
    pub negotiated: Negotiated,
    /// The tenant the connection belongs to.
    pub tenant: Arc<Tenant>,
    /// The transfer formats the transport can carry.
    pub formats: &'static [TransferFormat],
    /// Whether the transport needs hub pings (long polling does not).
    pub keep_alive: bool,
    /// The connection's span ([`span`]), made where the transport request
    /// was handled so that it is a child of that request's span.
    pub span: tracing::Span,
}

/// The span of a connection's life: `tenant`, `hub`, `connection.id`,
/// `transport`, and `protocol` once the handshake picked it.
pub fn span(transport: &'static str, negotiated: &Negotiated) -> tracing::Span {
    tracing::info_span!(
        "connection",
        tenant = %negotiated.hub.tenant,
        hub = %negotiated.hub.hub,
        connection.id = %negotiated.connection_id,
        transport,
        protocol = tracing::field::Empty,
    )
}

/// Runs one connection until it ends. Its transport cannot be replaced: when
/// it ends, so does the connection (SSE and long polling).
///
/// Not `async fn`: the future it returns is [`run_resumable`]'s own, without a
/// wrapper that would hold a second copy of the arguments for the whole life
/// of the connection (an idle connection's memory is mostly such futures).
pub fn run<I, O>(
    env: Arc<ConnectionEnv>,
    accepted: Accepted,
    inbound: I,
    outbound: O,
) -> impl Future<Output = ()> + Send + 'static
where
    I: Stream<Item = Inbound> + Unpin + Send + 'static,
    O: Sink<OutFrame> + Unpin + Send + 'static,
{
    let outbound: BoxOutbound = Box::pin(GoneOnError::new(outbound));
    let transport = Transport {
        inbound: Box::pin(inbound),
        outbound,
        close_code: CloseCode::default(),
    };
    run_resumable(env, accepted, None, transport)
}

/// Runs one WebSocket connection, whose transport is boxed already. With the
/// `token` its client sends as `id`, when negotiate and the handshake agreed on
/// stateful reconnect, the connection outlives a dropped socket for
/// `disconnect_timeout_secs`, and a new socket with the same token resumes it
/// ([`super::ResumableConnections`]).
///
/// The set-up runs boxed, and its memory is freed once the connection is live,
/// so what stays for the connection's life is only [`Live`] and its loop (an
/// async fn would keep every set-up local and argument beside them: 3 KiB of
/// each idle connection, measured).
pub fn run_resumable(
    env: Arc<ConnectionEnv>,
    accepted: Accepted,
    token: Option<String>,
    transport: Transport,
) -> impl Future<Output = ()> + Send + 'static {
    let span = accepted.span.clone();
    let start = Box::pin(start(env, accepted, token, transport));
    async move {
        if let Some(mut live) = start.await {
            live.run().await;
        }
    }
    .instrument(span)
}

/// How long a client resuming on a taken-over connection may take to speak first.
const CLIENT_FIRST: Duration = Duration::from_secs(10);

/// Runs a durable connection this node took over (see [`takeover::claim`])
/// on the socket its client resumed with: no handshake, the client's
/// `Sequence` first; the server's replay is the stream from the checkpoint,
/// numbered as the old owner numbered it.
pub fn run_taken(
    env: Arc<ConnectionEnv>,
    taken: Taken,
    transport: Transport,
) -> impl Future<Output = ()> + Send + 'static {
    let span = span("webSockets", &taken.negotiated);
    span.record("protocol", taken.protocol.name());
    let start = Box::pin(start_taken(env, taken, transport));
    async move {
        if let Some(mut live) = start.await {
            live.run().await;
        }
    }
    .instrument(span)
}

async fn start_taken(env: Arc<ConnectionEnv>, taken: Taken, transport: Transport) -> Option<Live> {
    let Taken {
        link,
        session,
        mut negotiated,
        tenant,
        protocol,
        token,
        partition,
        target,
        last_claim,
    } = taken;
    let Transport {
        mut inbound,
        mut outbound,
        close_code,
    } = transport;
    // Nothing is written before the client speaks (its `Sequence` comes
    // first): the JS client may open a resume socket it has already given up
    // on (its server timeout fired meanwhile), never send on it, and read
    // whatever arrives there as the handshake answer of the new connection it
    // starts instead. Such a socket gets nothing, and the session is let go.
    let mut first = BytesMut::new();
    match tokio::time::timeout(CLIENT_FIRST, inbound.next()).await {
        Ok(Some(Inbound::Data(data))) => first.extend_from_slice(&data),
        _ => {
            debug!(connection = %negotiated.connection_id, "the resuming client said nothing; the connection taken over ends");
            link.abandon();
            let _ = outbound.send(OutFrame::Close).await;
            return None;
        }
    }
    let settings = &env.settings;
    let hub = negotiated.hub.clone();
    let slot = match crate::tenant::limits::admit_connection(&env.usage, &tenant.limits(), &hub) {
        Ok(slot) => slot,
        Err(error) => {
            debug!(connection = %negotiated.connection_id, %error, "takeover refused by the connection limit");
            let _ = outbound.send(OutFrame::Close).await;
            return None;
        }
    };
    let user = negotiated.identity.user_id.as_deref().map(Arc::from);
    // Taken over on the WebSocket its client resumed with.
    negotiated
        .request
        .set_transport(crate::outbound::TransportKind::WebSockets);
    let mut handle = ConnectionHandle::new(
        negotiated.connection_id.clone(),
        hub.clone(),
        user,
        protocol,
        settings.outbound_queue,
        tenant.limits().outbound_buffer_bytes,
        negotiated.request.clone(),
    );
    // What plugins saw of the connection on its first node.
    handle.restore_items(session.items.clone());
    let mark = session.checkpoint.to_mark();
    let track = crate::durable::Track::resume(
        &negotiated.connection_id,
        handle.user.as_deref(),
        env.router.max_groups(&hub),
        &mark,
    );
    handle.make_durable(
        track,
        env.router.backplane(),
        partition,
        session.epoch,
        last_claim,
    );
    let handle = Arc::new(handle);
    handle.link_session(link.clone());
    let link_for_end = link.clone();
    env.router.register_taken(handle.clone());
    if let Some(cluster) = env.cluster.clone() {
        let every = env.settings.claim_renewal;
        takeover::renew_claims(cluster, handle.clone(), session.epoch, every);
    }
    let (stateful_in, stateful_out) = stateful_halves(
        &env,
        &negotiated,
        token,
        InboundSequence::taken_over(),
        ReplayBuffer::starting_after(settings.stateful_reconnect_buffer_bytes, mark.id),
        Some(link),
    );
    let (Some(stateful_in), Some(stateful_out)) = (stateful_in, stateful_out) else {
        handle.close();
        env.router.unregister(&handle);
        return None;
    };
    handle.link_acks(stateful_in.received.clone());
    // The writer starts parked and gets the socket as a resumed one: its
    // `Sequence` (the checkpoint's next id), then what the catch-up queued.
    let _ = stateful_in.sinks.try_send(outbound);
    let writer = tokio::spawn(writer::run(
        None,
        handle.clone(),
        protocol,
        Some(settings.keep_alive),
        settings.write_timeout,
        Some(stateful_out),
    ));
    let mut stateful_in = stateful_in;
    let refused = match takeover::catch_up(&env, &handle, partition, mark.cursor, target).await {
        Ok(()) => {
            // What the old owner stored of the client's messages ran there
            // (or was running): the client's resend of it is dropped, and
            // what was running ends with an error, never runs twice.
            stateful_in
                .sequence
                .stored_through(handle.durable_inbound());
            takeover::end_unknown_outcomes(&handle).await;
            None
        }
        Err(reason) => {
            takeover::count_unrecoverable(reason);
            // Ended before the client hears it, so its follow-up resume gets
            // a 404, not a second takeover and goodbye.
            link_for_end.end_unrecoverable().await;
            let error = crate::durable::honest::UNRECOVERABLE;
            handle.abort_allow_reconnect(error);
            Some(error.to_owned())
        }
    };
    info!(connection = %handle.id, hub = %hub, protocol = protocol.name(), "taken over");
    let session = HubSession::new(
        env.hub.clone(),
        tenant,
        handle.clone(),
        &negotiated.identity,
    );
    Some(Live {
        reader: Reader {
            env,
            handle,
            protocol,
            inbound,
            close_code,
            buf: first,
            stateful: Some(stateful_in),
            _slot: slot,
        },
        session,
        writer,
        refused,
    })
}

/// A connection past its handshake, its writer running.
struct Live {
    reader: Reader,
    session: HubSession,
    writer: tokio::task::JoinHandle<()>,
    /// The error `on-connected` ended the connection with, if it did.
    refused: Option<String>,
}

/// The handshake, registration and the hub's `on-connected`. None: the
/// connection ended before it was live.
async fn start(
    env: Arc<ConnectionEnv>,
    accepted: Accepted,
    token: Option<String>,
    transport: Transport,
) -> Option<Live> {
    let Transport {
        mut inbound,
        mut outbound,
        close_code,
    } = transport;
    let settings = &env.settings;
    let id = accepted.negotiated.connection_id.clone();
    let mut buf = BytesMut::new();

    let request = match read_handshake(settings, &mut inbound, &mut buf).await {
        Ok(Some(request)) => request,
        Ok(None) => return None,
        Err(error) => {
            debug!(connection = %id, %error, "handshake failed");
            refuse(&mut outbound, &error, false).await;
            return None;
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
            return None;
        }
    };
    tracing::Span::current().record("protocol", protocol.name());
    // Negotiate agreed, and the client speaks version 2 of the hub protocol,
    // which it asks for only when it will resume (HubProtocol.md).
    let token = token.filter(|_| {
        accepted.negotiated.stateful_reconnect
            && accepted.negotiated.negotiate_version >= 1
            && request.version >= 2
    });
    // The tenant's connection limit: a refused handshake, which clients report as such.
    let slot = match crate::tenant::limits::admit_connection(
        &env.usage,
        &accepted.tenant.limits(),
        &accepted.negotiated.hub,
    ) {
        Ok(slot) => slot,
        Err(error) => {
            let binary = protocol.transfer_format() == TransferFormat::Binary;
            refuse(&mut outbound, &error, binary).await;
            return None;
        }
    };
    let user = accepted
        .negotiated
        .identity
        .user_id
        .as_deref()
        .map(Arc::from);
    let mut handle = ConnectionHandle::new(
        id.clone(),
        accepted.negotiated.hub.clone(),
        user,
        protocol,
        settings.outbound_queue,
        accepted.tenant.limits().outbound_buffer_bytes,
        accepted.negotiated.request.clone(),
    );
    // A stateful connection in a cluster with durable resume gets every
    // record from the stream, from where this node's read of it is now.
    if token.is_some()
        && let Some(cluster) = env.cluster.as_ref()
        && accepted
            .tenant
            .durable_resume(&accepted.negotiated.hub.hub, settings.durable_resume)
    {
        let hub = &accepted.negotiated.hub;
        // Its start in the stream is set when the router registers it.
        let track = crate::durable::Track::new(
            &id,
            handle.user.as_deref(),
            env.router.max_groups(hub),
            1,
            0,
        );
        handle.make_durable(
            track,
            env.router.backplane(),
            cluster.partition_of(hub),
            1,
            0,
        );
    }
    let handle = Arc::new(handle);
    // Registered before the client learns the handshake succeeded, so that anything the client
    // does next (a REST lookup, a send from another connection) already finds it. Messages routed
    // here in between wait in the queue until the writer starts, after the handshake response.
    env.router.register(handle.clone());
    // Where a node taking it over would start, stored before the client can get anything.
    let session_link = match token.as_deref() {
        Some(token) if handle.is_durable() => SessionLink::open(&env, &handle, token).await,
        _ => None,
    };
    if let Some(link) = &session_link {
        handle.link_session(link.clone());
    }
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
        env.router.unregister(&handle);
        return None;
    }
    let (stateful_in, stateful_out) = match token {
        Some(token) => stateful_halves(
            &env,
            &accepted.negotiated,
            token,
            InboundSequence::new(),
            ReplayBuffer::new(settings.stateful_reconnect_buffer_bytes),
            session_link,
        ),
        None => (None, None),
    };
    if let Some(st) = &stateful_in {
        handle.link_acks(st.received.clone());
    }
    let keep_alive = accepted.keep_alive.then_some(settings.keep_alive);
    let writer = tokio::spawn(writer::run(
        Some(outbound),
        handle.clone(),
        protocol,
        keep_alive,
        settings.write_timeout,
        stateful_out,
    ));
    info!(
        connection = %id,
        hub = %handle.hub,
        protocol = protocol.name(),
        stateful_reconnect = stateful_in.is_some(),
        client_addr = handle.request.client_addr().map(tracing::field::display),
        "connected"
    );

    let session = HubSession::new(
        env.hub.clone(),
        accepted.tenant,
        handle.clone(),
        &accepted.negotiated.identity,
    );
    // The reader, and with it the resume listing, is gone before the
    // teardown: no transport can join a connection that is ending.
    let (refused, stateful) = match Box::pin(session.connected()).await {
        Ok(()) => (None, stateful_in),
        Err(error) => {
            drop(stateful_in);
            handle.abort(&error);
            (Some(error), None)
        }
    };
    Some(Live {
        reader: Reader {
            env,
            handle,
            protocol,
            inbound,
            close_code,
            buf,
            stateful,
            _slot: slot,
        },
        session,
        writer,
        refused,
    })
}

impl Live {
    /// By reference: an async fn keeps a by-value `self` twice (its argument
    /// and its binding), 360 bytes more for every connection.
    async fn run(&mut self) {
        let error = match self.refused.take() {
            None => self.reader.read_loop(&mut self.session).await,
            Some(error) => Some(error),
        };
        let session = self
            .reader
            .stateful
            .as_mut()
            .and_then(|st| st.session.take());
        self.reader.stateful = None;
        let Reader { env, handle, .. } = &self.reader;
        handle.close();
        if let Some(session) = session {
            session.end(handle);
        }
        env.router.unregister(handle);
        handle.fail_pending_results();
        // A connection another node took over lives on there: its end here is
        // no disconnect (nothing a hub does then may reach the cluster).
        if handle.ended_as_owner().await {
            Box::pin(self.session.disconnected(error.clone())).await;
        }
        // The writer's writes have deadlines; this one is a backstop, after
        // which the writer (and the transport it holds) is dropped, not left running.
        if Box::pin(tokio::time::timeout(WRITER_GRACE, &mut self.writer))
            .await
            .is_err()
        {
            self.writer.abort();
        }
        info!(connection = %handle.id, error = error.as_deref().unwrap_or(""), "disconnected");
    }
}

/// Lists a stateful connection for resuming and links its reader and writer.
fn stateful_halves(
    env: &Arc<ConnectionEnv>,
    negotiated: &Negotiated,
    token: String,
    sequence: InboundSequence,
    buffer: ReplayBuffer,
    session: Option<Arc<SessionLink>>,
) -> (Option<StatefulIn>, Option<StatefulOut>) {
    let Some((link, transports)) = env.resumable.insert(
        token.clone(),
        negotiated.hub.clone(),
        negotiated.identity.user_id.clone(),
        negotiated.connection_id.clone(),
    ) else {
        return (None, None);
    };
    let (acks_tx, acks_rx) = watch::channel(0);
    let (received_tx, received_rx) = watch::channel(0);
    let received_tx = Arc::new(received_tx);
    let (sinks_tx, sinks_rx) = mpsc::channel(1);
    let ack_now = Arc::new(Notify::new());
    let reader = StatefulIn {
        sequence,
        session,
        acks: acks_tx,
        received: received_tx,
        ack_now: ack_now.clone(),
        unacked_bytes: 0,
        transports,
        sinks: sinks_tx,
        _listed: Listed {
            env: env.clone(),
            token,
            link,
        },
    };
    let writer = StatefulOut {
        buffer,
        acks: acks_rx,
        received: received_rx,
        ack_now,
        sinks: sinks_rx,
    };
    (Some(reader), Some(writer))
}

/// The reader's side of stateful reconnect.
struct StatefulIn {
    sequence: InboundSequence,
    /// A durable connection's session, whose checkpoint follows the client's Acks.
    session: Option<Arc<SessionLink>>,
    /// The newest sequence id the client acknowledged, for the writer's buffer.
    acks: watch::Sender<u64>,
    /// The newest sequence id processed, for the writer to acknowledge (for
    /// a durable connection: the newest stored, set by its receipts).
    received: Arc<watch::Sender<u64>>,
    /// Asks the writer to acknowledge at once.
    ack_now: Arc<Notify>,
    /// Bytes received since the writer was last asked to acknowledge.
    unacked_bytes: usize,
    /// New transports from resuming requests.
    transports: mpsc::Receiver<Transport>,
    /// Their outbound halves, for the writer.
    sinks: mpsc::Sender<BoxOutbound>,
    _listed: Listed,
}

/// Keeps a connection in [`ConnectionEnv::resumable`] until dropped.
struct Listed {
    env: Arc<ConnectionEnv>,
    token: String,
    link: Arc<ResumeLink>,
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.env.resumable.remove(&self.token, &self.link);
    }
}

/// What woke the reader.
enum Next {
    Data(Bytes),
    /// The client closed the transport (a WebSocket close frame, a DELETE).
    Closed,
    /// The transport failed or vanished without a close.
    Dropped,
    /// A resuming request brought a new transport.
    Resumed(Transport),
    ClientTimeout,
}

/// The reader half of a connection.
struct Reader {
    env: Arc<ConnectionEnv>,
    handle: Arc<ConnectionHandle>,
    protocol: Protocol,
    inbound: BoxInbound,
    /// The close code of the transport `inbound` is half of.
    close_code: CloseCode,
    /// Received bytes not yet parsed: the start of a record cut across chunks.
    buf: BytesMut,
    stateful: Option<StatefulIn>,
    /// The connection's place under the tenant's connection limit.
    _slot: crate::tenant::limits::ConnectionSlot,
}

impl Reader {
    /// Reads and dispatches hub messages until the connection ends; returns
    /// the error it ended with, if any.
    async fn read_loop(&mut self, session: &mut HubSession) -> Option<String> {
        let handle = self.handle.clone();
        let env = self.env.clone();
        let max = session.max_message_size();
        let client_timeout = env.settings.client_timeout;
        // As in ASP.NET, the client timeout starts with the client's first Ping,
        // so a client with a longer keep-alive of its own is not cut off early.
        let mut timeout_armed = false;
        // One timer for the connection's life, moved only when it fires: a new
        // timer per message would cost two timer-wheel updates per message.
        let mut last_read = tokio::time::Instant::now();
        let mut client_timer = std::pin::pin!(tokio::time::sleep_until(last_read + client_timeout));
        let mut messages = Vec::new();
        // Once draining: the dispatcher finishing what was in flight, and a deadline.
        let mut drain: Option<(tokio::task::JoinHandle<()>, tokio::time::Instant)> = None;
        let mut draining = false;
        // Whether the bytes received since the last parse may make a record.
        let mut parse = true;
        loop {
            // Messages before a bad record were accepted: handle them, then close.
            let parsed = if std::mem::take(&mut parse) {
                self.protocol
                    .parse_messages(&mut self.buf, max, &mut messages)
            } else {
                Ok(())
            };
            if let Some(st) = self.stateful.as_mut() {
                // Which of the client's messages are new; its Acks are applied here.
                let mut gap = None;
                messages.retain(|message| {
                    if gap.is_some() {
                        return false;
                    }
                    match st.sequence.admit(message) {
                        Ok(Admit::Process) => {}
                        Ok(Admit::Drop | Admit::Sequenced) => return false,
                        Err(e) => {
                            gap = Some(e);
                            return false;
                        }
                    }
                    let HubMessage::Ack { sequence_id } = *message else {
                        return true;
                    };
                    let newer = st.acks.send_if_modified(|acked| {
                        let newer = sequence_id > *acked;
                        if newer {
                            *acked = sequence_id;
                        }
                        newer
                    });
                    if newer && let Some(link) = &st.session {
                        link.acknowledged(&handle, sequence_id);
                    }
                    false
                });
                if let Some(gap) = gap {
                    let error = gap.to_string();
                    handle.abort(&error);
                    return Some(error);
                }
                // A durable connection stores what its client sent before
                // anyone sees an effect of it (see `crate::durable`): a node
                // taking it over then knows what ran, and what was running
                // when this one stopped. Invocations run at once, their
                // receipt carried by their first effect; anything else waits
                // until its receipt is stored.
                if handle.is_durable() && messages.iter().any(HubMessage::is_trackable) {
                    // Claimed by another node meanwhile (this one was paused):
                    // the client resends these there, so they do not run here.
                    if handle.is_fenced() {
                        return None;
                    }
                    let up_to = st.sequence.latest();
                    if messages.iter().all(answered_later) {
                        handle.defer_receipt(up_to, invocations(&messages));
                    } else if handle
                        .store_receipt(up_to, invocations(&messages))
                        .await
                        .is_err()
                    {
                        return handle.close_reason().map(|r| r.error);
                    }
                    if handle.is_fenced() {
                        return None;
                    }
                }
            }
            for message in messages.drain(..) {
                if matches!(message, HubMessage::Ping) {
                    timeout_armed = true;
                }
                if let Flow::Close = Box::pin(session.on_message(message)).await {
                    return None;
                }
            }
            handle.linger_receipt();
            if let Some(st) = self.stateful.as_ref()
                && !handle.is_durable()
            {
                // What was handled (or dropped as handled before) is
                // acknowledged; a durable connection's receipts do that.
                let latest = st.sequence.latest();
                st.received.send_if_modified(|received| {
                    let newer = latest > *received;
                    if newer {
                        *received = latest;
                    }
                    newer
                });
            }
            if let Some(st) = self.stateful.as_mut()
                && st.unacked_bytes >= EAGER_ACK_BYTES
            {
                st.unacked_bytes = 0;
                st.ack_now.notify_one();
            }
            if let Err(e) = parsed {
                session.on_protocol_error(&e);
                if let ProtocolError::MessageTooLarge { .. } = e {
                    self.close_code.set(CloseCode::TOO_BIG);
                }
                info!(connection = %handle.id, error = %e, "bad message from the client; closing");
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
            let Reader {
                inbound, stateful, ..
            } = self;
            let resumed = async {
                match stateful.as_mut() {
                    Some(st) => match st.transports.recv().await {
                        Some(transport) => transport,
                        None => std::future::pending().await,
                    },
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
                () = env.draining.cancelled(), if !draining => {
                    // Take no new invocations, but keep reading: in-flight ones
                    // may await client results or upload items.
                    draining = true;
                    let dispatcher = session.stop_accepting();
                    drain = Some((dispatcher, tokio::time::Instant::now() + DRAIN_TIMEOUT));
                    continue;
                }
                transport = resumed => Next::Resumed(transport),
                next = inbound.next() => match next {
                    Some(Inbound::Data(data)) => Next::Data(data),
                    Some(Inbound::Closed) => Next::Closed,
                    Some(Inbound::Dropped) | None => Next::Dropped,
                },
                () = client_timer.as_mut(), if timeout_armed => {
                    let due = last_read + client_timeout;
                    if due > tokio::time::Instant::now() {
                        client_timer.as_mut().reset(due);
                        continue;
                    }
                    Next::ClientTimeout
                }
            };
            match next {
                Next::Data(data) => {
                    last_read = tokio::time::Instant::now();
                    if let Some(st) = self.stateful.as_mut() {
                        st.unacked_bytes += data.len();
                    }
                    self.buf.extend_from_slice(&data);
                    parse = self.protocol.may_parse(&data, self.buf.len(), max);
                }
                Next::Closed => return None,
                Next::Dropped if self.stateful.is_none() => return None,
                Next::Dropped => {
                    if let Err(error) = Box::pin(self.park()).await {
                        return error;
                    }
                    last_read = tokio::time::Instant::now();
                }
                Next::Resumed(transport) => {
                    Box::pin(self.switch(transport)).await;
                    last_read = tokio::time::Instant::now();
                }
                Next::ClientTimeout => {
                    let error =
                        "Server timeout elapsed without receiving a message from the client.";
                    handle.abort_allow_reconnect(error);
                    return Some(error.to_owned());
                }
            }
        }
    }

    /// Waits for the client of a stateful connection to resume it on a new
    /// transport. Err: the connection ends, with this error.
    async fn park(&mut self) -> Result<(), Option<String>> {
        let handle = self.handle.clone();
        let wait = self.env.settings.disconnect_timeout;
        let Some(st) = self.stateful.as_mut() else {
            return Err(None);
        };
        debug!(connection = %handle.id, "transport dropped; waiting for the client to resume");
        let transport = tokio::select! {
            biased;
            () = handle.closing.cancelled() => return Err(handle.close_reason().map(|r| r.error)),
            // Nobody to tell to reconnect elsewhere, nothing to wait for.
            () = self.env.draining.cancelled() => return Err(Some(SHUTTING_DOWN.to_owned())),
            transport = st.transports.recv() => match transport {
                Some(transport) => transport,
                None => return Err(None),
            },
            () = tokio::time::sleep(wait) => {
                counter!(
                    "switchboard_stateful_reconnect_expired_total",
                    "tenant" => handle.hub.tenant.to_string(),
                    "hub" => handle.hub.hub.to_string()
                )
                .increment(1);
                let wait = wait.as_secs();
                return Err(Some(format!("The client did not reconnect within {wait} s.")));
            }
        };
        self.switch(transport).await;
        Ok(())
    }

    /// Continues on a new transport: the old one is dropped, with any partial
    /// record it carried; the client starts the new one with `Sequence` and
    /// its replay; the writer gets the outbound half and replays its own.
    async fn switch(&mut self, transport: Transport) {
        let handle = self.handle.clone();
        let Some(st) = self.stateful.as_mut() else {
            return;
        };
        self.inbound = transport.inbound;
        self.close_code = transport.close_code;
        self.buf.clear();
        st.sequence.reconnected();
        tokio::select! {
            _ = st.sinks.send(transport.outbound) => {}
            () = handle.closing.cancelled() => {}
        }
        counter!(
            "switchboard_stateful_reconnects_total",
            "tenant" => handle.hub.tenant.to_string(),
            "hub" => handle.hub.hub.to_string()
        )
        .increment(1);
        info!(connection = %handle.id, "resumed on a new transport");
    }
}

/// The ids of the invocations among `messages` that expect a Completion.
/// Whether a durable connection's message may run before its receipt is
/// stored: a method invocation, whose effects carry or follow the receipt.
/// Uploads, cancellations and client results wait for theirs.
fn answered_later(message: &HubMessage) -> bool {
    match message {
        HubMessage::Invocation { stream_ids, .. }
        | HubMessage::StreamInvocation { stream_ids, .. } => stream_ids.is_empty(),
        other => !other.is_trackable(),
    }
}

fn invocations(messages: &[HubMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|message| message.as_call()?.invocation_id)
        // A longer id is refused by the hub, never runs: nothing to end.
        .filter(|id| id.len() <= crate::durable::MAX_INVOCATION_ID_BYTES)
        .map(str::to_owned)
        .collect()
}

/// Waits for the handshake request. Ok(None): the client left first.
async fn read_handshake(
    settings: &ConnectionSettings,
    inbound: &mut BoxInbound,
    buf: &mut BytesMut,
) -> Result<Option<HandshakeRequest>, String> {
    let deadline = tokio::time::Instant::now() + settings.handshake_timeout;
    loop {
        match handshake::parse_handshake(buf, settings.max_message_size) {
            Ok(Some(request)) => return Ok(Some(request)),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        match tokio::time::timeout_at(deadline, inbound.next()).await {
            Ok(Some(Inbound::Data(data))) => buf.extend_from_slice(&data),
            Ok(Some(Inbound::Closed | Inbound::Dropped)) | Ok(None) => return Ok(None),
            Err(_) => return Err("Handshake was canceled.".into()),
        }
    }
}

/// Sends a handshake error and ends the transport.
async fn refuse(outbound: &mut BoxOutbound, error: &str, binary: bool) {
    let data = Bytes::from(handshake::error_response(error));
    let _ = outbound.send(OutFrame::Data { data, binary }).await;
    let _ = outbound.send(OutFrame::Close).await;
    let _ = outbound.close().await;
}
