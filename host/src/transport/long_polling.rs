//! Long polling (TransportProtocols.md): `GET /hub?id=...` polls, `POST` sends,
//! `DELETE` closes.
//!
//! - The first poll starts the connection and returns 200 with an empty body
//!   at once; the client sends its handshake by POST only after it.
//! - Later polls are held until something is queued, then answer 200 with
//!   everything queued (whole records), or an empty 200 after the poll timeout
//!   (90 s, below the client's own 100 s).
//! - 204 ends the transport: the connection is over and drained, it was
//!   DELETEd, or a newer poll superseded this one.
//! - No hub pings: the polls are the keep-alive. A connection with no poll in
//!   flight for the disconnect timeout is gone; its run ends and
//!   on-disconnected runs.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, PollSender};
use tracing::debug;

use super::TransportState;
use super::error::RequestError;
use super::http_connections::{HttpConnection, Registration, TransportKind};
use super::{Caller, start_http};
use crate::connection::{self, OutFrame};
use crate::protocol::TransferFormat;

/// Long polling carries JSON as text and MessagePack as binary bodies.
pub const LONG_POLLING_FORMATS: &[TransferFormat] = &[TransferFormat::Text, TransferFormat::Binary];

/// Frames (each up to the writer's 64 KiB batch) queued for the next poll
/// before the connection's writer waits.
const OUTBOUND_FRAMES: usize = 8;

/// A poll answers with at most about this many bytes; the rest waits for the
/// next poll. Whole frames only, so the last one may go past it.
const MAX_POLL_BODY: usize = 1 << 20;

/// The long-polling side of a connection: what waits for the next poll, and
/// when the client last polled.
#[derive(Debug)]
pub struct LongPoll {
    /// Frames for the client. One poll at a time reads it; a newer poll
    /// takes over once the older one has let go.
    outbound: tokio::sync::Mutex<mpsc::Receiver<OutFrame>>,
    state: Mutex<PollState>,
}

#[derive(Debug)]
struct PollState {
    liveness: Liveness,
    /// The poll in flight (its number and what cancels it), for a newer poll.
    current: Option<(u64, CancellationToken)>,
    /// Numbers polls, so a poll that ends clears only its own slot.
    polls: u64,
    /// The connection is over and everything it sent was delivered: the next
    /// poll gets 204.
    drained: bool,
}

/// When a long-polling connection counts as gone: no poll in flight for the
/// disconnect timeout (ASP.NET: `LastSeenTick` of an inactive connection).
#[derive(Debug, Clone, Copy)]
pub(super) struct Liveness {
    in_flight: u32,
    last_seen: Instant,
}

/// How a poll ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PollOutcome {
    /// 200 with these bytes: whole records.
    Data(Bytes),
    /// 200 with an empty body: poll again.
    TimedOut,
    /// 204: the transport is over (or this poll was superseded).
    Over,
}

// === the handlers ===

/// `GET /hubs/{tenant}/{hub}?id=...` without an upgrade or `Accept: text/event-stream`.
pub(super) async fn poll(
    node: Arc<TransportState>,
    caller: Caller<'_>,
) -> Result<Response, RequestError> {
    // The user is checked again on every poll (by `Caller`), so a revoked or
    // expired token ends the connection at its next poll.
    if let Some(connection) = node.http_connections.get(caller.id) {
        if connection.hub != caller.key {
            return Err(RequestError::UnknownConnection);
        }
        let Some(long_poll) = connection.long_poll.clone() else {
            return Err(RequestError::TransportMismatch);
        };
        connection.check_user(&caller.identity)?;
        let timeout = node.settings.long_poll_timeout;
        return Ok(respond(long_poll.next(&connection, timeout).await));
    }

    // The first poll starts the connection and returns at once.
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_FRAMES);
    let long_poll = Arc::new(LongPoll::new(out_rx));
    let started = start_http(
        &node,
        caller,
        TransportKind::LongPolling,
        Some(long_poll.clone()),
    );
    let (accepted, registration, inbound) = started?;
    let disconnect = node.settings.disconnect_timeout;
    let connections = node.connections.clone();
    tokio::spawn(async move {
        let run = connection::run(connections, accepted, inbound, PollSender::new(out_tx));
        supervise(registration, &long_poll, run, disconnect).await;
    });
    Ok(first_poll())
}

/// `DELETE /hubs/{tenant}/{hub}?id=...`: ends a long-polling connection; 202.
pub(super) async fn delete(
    node: Arc<TransportState>,
    caller: Caller<'_>,
) -> Result<Response, RequestError> {
    let id = caller.id;
    let connection = node
        .http_connections
        .get(id)
        .filter(|c| c.hub == caller.key)
        .ok_or(RequestError::UnknownConnection)?;
    if connection.kind != TransportKind::LongPolling {
        return Err(RequestError::DeleteNotLongPolling);
    }
    connection.check_user(&caller.identity)?;
    debug!(connection = %connection.connection_id, "long polling connection deleted");
    connection.end();
    // Gone from the table now, so the client's late Close POST gets a 404
    // (which it expects), while the connection finishes in the background.
    node.http_connections.remove(id, &connection);
    Ok((
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "text/plain")],
        "",
    )
        .into_response())
}

/// Runs the connection, ends it when the client stops polling, then keeps it
/// listed until its last frames are polled (or the client is gone for good).
async fn supervise(
    registration: Registration,
    long_poll: &LongPoll,
    run: impl Future<Output = ()>,
    disconnect: Duration,
) {
    let connection = registration.connection().clone();
    tokio::pin!(run);
    tokio::select! {
        () = &mut run => {}
        () = long_poll.idle(disconnect) => {
            debug!(
                connection = %connection.connection_id,
                timeout_secs = disconnect.as_secs(),
                "no poll within the disconnect timeout; closing",
            );
            connection.end();
            run.await;
        }
    }
    // What the connection sent last (a Close message) waits for a poll.
    tokio::select! {
        () = connection.ended().cancelled() => {}
        () = long_poll.idle(disconnect) => connection.end(),
    }
    drop(registration);
}

// === impl LongPoll ===

impl LongPoll {
    fn new(outbound: mpsc::Receiver<OutFrame>) -> LongPoll {
        LongPoll {
            outbound: tokio::sync::Mutex::new(outbound),
            state: Mutex::new(PollState {
                liveness: Liveness::new(Instant::now()),
                current: None,
                polls: 0,
                drained: false,
            }),
        }
    }

    /// A poll after the first: supersedes the poll in flight, then waits up
    /// to `timeout` for frames.
    async fn next(&self, connection: &HttpConnection, timeout: Duration) -> PollOutcome {
        let deadline = Instant::now() + timeout;
        let Some(active) = self.begin() else {
            // Over and drained: this 204 is the last answer.
            connection.end();
            return PollOutcome::Over;
        };
        let outcome = tokio::select! {
            biased;
            () = active.superseded.cancelled() => PollOutcome::Over,
            () = connection.ended().cancelled() => PollOutcome::Over,
            outcome = self.wait(deadline) => outcome,
        };
        if outcome == PollOutcome::Over && self.state.lock().drained {
            // The client stops polling after this 204: forget the connection.
            connection.end();
        }
        outcome
    }

    fn begin(&self) -> Option<ActivePoll<'_>> {
        let mut state = self.state.lock();
        if state.drained {
            return None;
        }
        let superseded = CancellationToken::new();
        state.polls += 1;
        let number = state.polls;
        if let Some((_, older)) = state.current.replace((number, superseded.clone())) {
            older.cancel();
        }
        state.liveness.poll_started();
        Some(ActivePoll {
            long_poll: self,
            number,
            superseded,
        })
    }

    /// Waits for the outbound queue (an older poll may still hold it), then
    /// for frames. Cancel-safe: once frames are taken it returns at once.
    async fn wait(&self, deadline: Instant) -> PollOutcome {
        let mut outbound = match tokio::time::timeout_at(deadline, self.outbound.lock()).await {
            Ok(outbound) => outbound,
            Err(_) => return PollOutcome::TimedOut,
        };
        let first = match tokio::time::timeout_at(deadline, outbound.recv()).await {
            Err(_) => return PollOutcome::TimedOut,
            Ok(Some(OutFrame::Data { data, .. })) => data,
            Ok(Some(OutFrame::Close) | None) => {
                self.state.lock().drained = true;
                return PollOutcome::Over;
            }
        };
        let (body, over) = drain(first, || outbound.try_recv(), MAX_POLL_BODY);
        if over {
            self.state.lock().drained = true;
        }
        PollOutcome::Data(body)
    }

    /// Resolves once no poll has been in flight for `timeout`.
    async fn idle(&self, timeout: Duration) {
        loop {
            let expires = self.state.lock().liveness.expires_at(timeout);
            match expires {
                Some(at) if at <= Instant::now() => return,
                Some(at) => tokio::time::sleep_until(at).await,
                // A poll is in flight; look again once it could have expired.
                None => tokio::time::sleep(timeout).await,
            }
        }
    }
}

/// A poll in flight; when dropped (answered, or the client went away) the
/// connection's liveness clock restarts.
struct ActivePoll<'a> {
    long_poll: &'a LongPoll,
    number: u64,
    superseded: CancellationToken,
}

impl Drop for ActivePoll<'_> {
    fn drop(&mut self) {
        let mut state = self.long_poll.state.lock();
        state.liveness.poll_ended(Instant::now());
        if state
            .current
            .as_ref()
            .is_some_and(|(n, _)| *n == self.number)
        {
            state.current = None;
        }
    }
}

// === impl Liveness ===

impl Liveness {
    pub(super) fn new(now: Instant) -> Liveness {
        Liveness {
            in_flight: 0,
            last_seen: now,
        }
    }

    pub(super) fn poll_started(&mut self) {
        self.in_flight += 1;
    }

    pub(super) fn poll_ended(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.last_seen = now;
    }

    /// When the connection counts as gone, if no poll comes; none while a
    /// poll is in flight.
    pub(super) fn expires_at(&self, timeout: Duration) -> Option<Instant> {
        (self.in_flight == 0).then(|| self.last_seen + timeout)
    }
}

// === pure helpers ===

/// Joins `first` and whatever else is queued already into one body, up to
/// about `max` bytes. True when the queue is over (closed, or a Close frame):
/// nothing will follow this body.
pub(super) fn drain(
    first: Bytes,
    mut next: impl FnMut() -> Result<OutFrame, TryRecvError>,
    max: usize,
) -> (Bytes, bool) {
    let mut body: Option<BytesMut> = None;
    let mut size = first.len();
    let mut over = false;
    while size < max {
        match next() {
            Ok(OutFrame::Data { data, .. }) => {
                size += data.len();
                body.get_or_insert_with(|| BytesMut::from(&first[..]))
                    .extend_from_slice(&data);
            }
            Ok(OutFrame::Close) | Err(TryRecvError::Disconnected) => {
                over = true;
                break;
            }
            Err(TryRecvError::Empty) => break,
        }
    }
    (body.map_or(first, BytesMut::freeze), over)
}

/// The response to a poll after the first (TransportProtocols.md; ASP.NET's
/// LongPollingServerTransport).
pub(super) fn respond(outcome: PollOutcome) -> Response {
    let (status, content_type, body) = match outcome {
        PollOutcome::Data(data) => (StatusCode::OK, "application/octet-stream", data),
        PollOutcome::TimedOut => (StatusCode::OK, "text/plain", Bytes::new()),
        PollOutcome::Over => (StatusCode::NO_CONTENT, "text/plain", Bytes::new()),
    };
    with_no_cache(status, content_type, Body::from(body))
}

/// The first poll: 200, empty, at once.
fn first_poll() -> Response {
    with_no_cache(StatusCode::OK, "application/octet-stream", Body::empty())
}

fn with_no_cache(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::EXPIRES,
        HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
    );
    response
}

#[cfg(test)]
mod tests;
