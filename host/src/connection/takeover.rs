//! Durable resume's I/O (see `crate::durable`): the session a durable
//! connection's owner keeps in the cluster (written at connect, its
//! checkpoint moved as the client acknowledges, deleted when it ends), and
//! the claim of a node that takes a connection over when its resume lands
//! here and its owner does not answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use parking_lot::Mutex;
use tracing::{debug, info, warn};

use super::{ConnectionEnv, Negotiated};
use crate::address::HubKey;
use crate::backplane::nats::NatsBackplane;
use crate::backplane::{Backplane as _, Envelope, EnvelopeKind, PublishError};
use crate::durable::honest::{self, StreamState, Unrecoverable};
use crate::durable::session::{self, Checkpoint, Resume, Session};
use crate::durable::{Mark, Step};
use crate::outbound::{ConnectionHandle, ItemsStore, RequestInfo};
use crate::protocol::Protocol;
use crate::tenant::Identity;
use crate::tenant::Tenant;

/// Least time between two checkpoint writes of one connection.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Longest a taker may take to catch up with the stream.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new durable connection's session may take to be stored before
/// the connection goes on without one (and cannot be taken over).
const SESSION_STORE_DEADLINE: Duration = Duration::from_secs(3);

/// Runs `step` until it succeeds or [`SESSION_STORE_DEADLINE`] would pass,
/// pausing 50 ms, 100 ms, ... (at most 800 ms) between tries: a NATS cluster
/// electing a stream's leader (just started, or a server lost) answers "no
/// stream" for a moment, and a connection made then would otherwise never
/// resume on another node.
async fn until_stored<T, E, Fut>(mut step: impl FnMut() -> Fut) -> Result<T, E>
where
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + SESSION_STORE_DEADLINE;
    let mut pause = Duration::from_millis(50);
    loop {
        match step().await {
            Err(e) if tokio::time::Instant::now() + pause < deadline => {
                debug!(error = %e, "storing a new durable connection's session failed; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(800));
            }
            done => return done,
        }
    }
}

/// Counts a resume that failed honestly.
pub(super) fn count_unrecoverable(reason: Unrecoverable) {
    metrics::counter!(honest::METRIC, "reason" => reason.as_str()).increment(1);
}

/// A durable connection's session as its owner keeps it.
pub(super) struct SessionLink {
    cluster: Arc<NatsBackplane>,
    key: String,
    session: Mutex<Session>,
    /// The revision this owner wrote last; 0 once another node claimed it.
    revision: AtomicU64,
    writing: AtomicBool,
    last_write: Mutex<Instant>,
    /// One write of the session at a time (checkpoints, items), so each
    /// compares against the revision of the one before.
    gate: tokio::sync::Mutex<()>,
}

/// Why a durable connection's items were not stored.
#[derive(Debug, thiserror::Error)]
pub enum ItemsError {
    /// The session's revision moved on: another node took the connection over.
    #[error("the connection was taken over by another node")]
    TakenOver,
    /// The write to the cluster failed, or the session could not be encoded.
    #[error("the connection's items could not be stored in the cluster: {0}")]
    NotStored(String),
}

impl std::fmt::Debug for SessionLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLink").finish_non_exhaustive()
    }
}

impl SessionLink {
    /// Writes the session of a new durable connection, starting where the
    /// router registered it. None (logged) when the cluster did not store it
    /// within [`SESSION_STORE_DEADLINE`]: the connection still works, but
    /// cannot be taken over.
    pub(super) async fn open(
        env: &ConnectionEnv,
        handle: &ConnectionHandle,
        token: &str,
    ) -> Option<Arc<SessionLink>> {
        let cluster = env.cluster.clone()?;
        let partition = handle.durable_partition()?;
        let mark = handle.durable_mark()?;
        let stream = match until_stored(|| cluster.stream_info(partition)).await {
            Ok(info) => info.identity,
            Err(e) => {
                warn!(connection = %handle.id, error = %e, "cannot read the stream; the connection cannot be resumed elsewhere");
                return None;
            }
        };
        let session = Session {
            version: session::VERSION,
            connection: handle.id.to_string(),
            tenant: handle.hub.tenant.to_string(),
            hub: handle.hub.hub.to_string(),
            user: handle.user.as_deref().map(str::to_owned),
            protocol: handle.protocol.name().to_owned(),
            owner: cluster.node_id().to_owned(),
            epoch: handle.durable_epoch(),
            stream,
            checkpoint: Checkpoint::from(&mark),
            ended: false,
            request: session::SessionRequest {
                query: pairs(handle.request.query()),
                headers: handle.request.stored_headers().collect(),
            },
            items: handle.items(),
        };
        let key = session::key(token);
        let bytes = session::encode(&session).ok()?;
        let bytes = Bytes::from(bytes);
        match until_stored(|| cluster.session_write(&key, bytes.clone())).await {
            Ok(revision) => Some(Arc::new(SessionLink::new(cluster, key, session, revision))),
            Err(e) => {
                warn!(connection = %handle.id, error = %e, "session not stored; the connection cannot be resumed elsewhere");
                None
            }
        }
    }

    fn new(
        cluster: Arc<NatsBackplane>,
        key: String,
        session: Session,
        revision: u64,
    ) -> SessionLink {
        SessionLink {
            cluster,
            key,
            session: Mutex::new(session),
            revision: AtomicU64::new(revision),
            writing: AtomicBool::new(false),
            last_write: Mutex::new(Instant::now()),
            gate: tokio::sync::Mutex::new(()),
        }
    }

    /// Stores the connection's `items` (all of them) in its session, before
    /// the plugin that changed them goes on: a node that takes the
    /// connection over then has them.
    pub(super) async fn store_items(&self, items: Vec<(String, String)>) -> Result<(), ItemsError> {
        let _gate = self.gate.lock().await;
        let revision = self.revision.load(Ordering::Acquire);
        if revision == 0 {
            return Err(ItemsError::TakenOver);
        }
        let bytes = {
            let mut next = self.session.lock().clone();
            next.items = items.clone();
            session::encode(&next).map_err(|e| ItemsError::NotStored(e.to_string()))?
        };
        match self
            .cluster
            .session_swap(&self.key, Bytes::from(bytes), revision)
            .await
        {
            Ok(Some(revision)) => {
                self.revision.store(revision, Ordering::Release);
                self.session.lock().items = items;
                Ok(())
            }
            Ok(None) => {
                self.revision.store(0, Ordering::Release);
                Err(ItemsError::TakenOver)
            }
            Err(e) => Err(ItemsError::NotStored(e.to_string())),
        }
    }

    /// The client acknowledged up to `acked`: stores the newest checkpoint at
    /// or below it, at most once a second, one write at a time, in the
    /// background. A write that finds the session changed (another node
    /// claimed it) stops them for good.
    pub(super) fn acknowledged(self: &Arc<Self>, handle: &ConnectionHandle, acked: u64) {
        if self.revision.load(Ordering::Relaxed) == 0
            || self.last_write.lock().elapsed() < CHECKPOINT_EVERY
            || self.writing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Some(mark) = handle.durable_checkpoint(acked) else {
            self.writing.store(false, Ordering::Release);
            return;
        };
        *self.last_write.lock() = Instant::now();
        let link = self.clone();
        let connection = handle.id.clone();
        tokio::spawn(async move {
            link.store(&mark, &connection).await;
            link.writing.store(false, Ordering::Release);
        });
    }

    async fn store(&self, mark: &Mark, connection: &str) {
        let _gate = self.gate.lock().await;
        let revision = self.revision.load(Ordering::Acquire);
        if revision == 0 {
            return;
        }
        let bytes = {
            let mut session = self.session.lock();
            if session.checkpoint.id >= mark.id && session.checkpoint.cursor >= mark.cursor {
                return;
            }
            session.checkpoint = Checkpoint::from(mark);
            match session::encode(&session) {
                Ok(bytes) => bytes,
                Err(_) => return,
            }
        };
        match self
            .cluster
            .session_swap(&self.key, Bytes::from(bytes), revision)
            .await
        {
            Ok(Some(revision)) => self.revision.store(revision, Ordering::Release),
            Ok(None) => {
                debug!(connection, "session claimed elsewhere; checkpoints stop");
                self.revision.store(0, Ordering::Release);
            }
            Err(e) => debug!(connection, error = %e, "checkpoint not stored"),
        }
    }

    /// A connection taken over that cannot go on (its catch-up failed):
    /// its session is marked ended, by compare-and-set, before the client
    /// hears why, so that the client's next resume with the same token gets
    /// the 404 of a connection that is gone.
    pub(super) async fn end_unrecoverable(&self) {
        let _gate = self.gate.lock().await;
        let revision = self.revision.load(Ordering::Acquire);
        if revision == 0 {
            return;
        }
        let session = self.session.lock().clone();
        let ended = end_session(&self.cluster, &self.key, &session, revision).await;
        // Changed meanwhile, or now ended: this node writes it no more.
        self.revision.store(0, Ordering::Release);
        if !ended {
            debug!(connection = %session.connection, "the session changed before its failed takeover ended it");
        }
    }

    /// A connection taken over whose client never spoke: its session goes
    /// (unless changed meanwhile), as for a connection that ended.
    pub(super) fn abandon(self: Arc<Self>) {
        tokio::spawn(async move {
            let revision = self.revision.load(Ordering::Acquire);
            if revision != 0 {
                let _ = self.cluster.session_delete(&self.key, revision).await;
            }
        });
    }

    /// The connection ended here: its session goes, unless another node
    /// claimed it meanwhile (then the revision differs and it stays).
    pub(super) fn end(self: Arc<Self>, handle: &ConnectionHandle) {
        if handle.is_fenced() {
            return;
        }
        tokio::spawn(async move {
            // Let a checkpoint write in flight finish, bounded.
            for _ in 0..50 {
                if !self.writing.load(Ordering::Acquire) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _gate = tokio::time::timeout(Duration::from_secs(1), self.gate.lock()).await;
            let revision = self.revision.load(Ordering::Acquire);
            if revision != 0 {
                let _ = self.cluster.session_delete(&self.key, revision).await;
            }
        });
    }
}

impl ItemsStore for SessionLink {
    fn store_items(
        &self,
        items: Vec<(String, String)>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            SessionLink::store_items(self, items)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Owned copies of request info pairs.
fn pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// What a node that claimed a connection needs to serve it.
pub struct Taken {
    pub(super) link: Arc<SessionLink>,
    pub(super) session: Session,
    pub(super) negotiated: Negotiated,
    pub(super) tenant: Arc<Tenant>,
    pub(super) protocol: Protocol,
    pub(super) token: String,
    pub(super) partition: u32,
    /// The stream's last sequence when the claim was stored.
    pub(super) target: u64,
    /// The claim's own sequence: this node's writes for the connection are
    /// stored only while it is the connection's last claim.
    pub(super) last_claim: u64,
}

impl Taken {
    /// The public id of the connection taken over.
    pub fn connection_id(&self) -> Arc<str> {
        self.negotiated.connection_id.clone()
    }
}

impl std::fmt::Debug for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Taken")
            .field("connection", &self.session.connection)
            .finish_non_exhaustive()
    }
}

/// Why a resume was not taken over here.
#[derive(Debug)]
pub enum Refused {
    /// As for any unknown connection (404).
    NotFound,
    /// Its owner `node` is registered at `url`: the request goes there.
    Owner {
        /// The owner's node id.
        node: String,
        /// The URL the owner advertises, where the request is proxied.
        url: String,
    },
    /// It cannot be resumed: the client is told so in its protocol.
    Unrecoverable(Unrecoverable, Protocol),
}

/// Whether a resume of `token` this node does not hold may be a durable
/// connection of another node.
pub fn may_take_over(env: &ConnectionEnv, token: &str) -> bool {
    env.cluster.is_some()
        && env.settings.durable_resume
        && !env.pending.contains(token)
        && env.resumable.get(token).is_none()
}

/// Whether the durable connection `token` resumes, listed here, was claimed
/// by another node meanwhile (this node was paused or cut off and has not
/// read the claim yet): then the resume must not be served here, but by the
/// owner the session names. Every local resume of a durable connection reads
/// the session once for this; an unreadable session leaves it local.
pub async fn claimed_elsewhere(env: &ConnectionEnv, token: &str) -> bool {
    let Some(cluster) = env.cluster.as_ref() else {
        return false;
    };
    if !env.settings.durable_resume || env.resumable.get(token).is_none() {
        return false;
    }
    match cluster.session_read(&session::key(token)).await {
        Ok(Some((bytes, _))) => session::decode(&bytes).is_ok_and(|s| s.owner != cluster.node_id()),
        _ => false,
    }
}

/// Claims the durable connection `token` resumes, for a request on `hub` by
/// `identity`: reads its session, checks the stream still holds what the
/// client may have missed, takes ownership by compare-and-set (epoch + 1) and
/// stores a Claim in the stream that fences the old owner. `tried`: the node
/// the request was forwarded to in vain, if any; an owner not tried yet that
/// is registered gets the request instead ([`Refused::Owner`]).
pub async fn claim(
    env: &ConnectionEnv,
    tenant: Arc<Tenant>,
    hub: &HubKey,
    token: &str,
    identity: &Identity,
    tried: Option<&str>,
) -> Result<Taken, Refused> {
    let cluster = env.cluster.clone().ok_or(Refused::NotFound)?;
    let key = session::key(token);
    let (bytes, revision) = match cluster.session_read(&key).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(Refused::NotFound),
        Err(e) => {
            warn!(error = %e, "cannot read a resuming connection's session");
            return Err(Refused::NotFound);
        }
    };
    let session = match session::decode(&bytes) {
        Ok(session) => session,
        Err(e) => {
            warn!(error = %e, "a resuming connection's session cannot be used");
            count_unrecoverable(e.unrecoverable());
            return Err(Refused::NotFound);
        }
    };
    if *session.tenant != *hub.tenant || *session.hub != *hub.hub {
        return Err(Refused::NotFound);
    }
    let protocol = Protocol::from_name(&session.protocol).ok_or(Refused::NotFound)?;
    let me = cluster.node_id();
    let user = identity.user_id.as_deref();
    // The owner answers if a request can reach it: not when it was tried already.
    let owner_url = if tried == Some(session.owner.as_str()) || session.owner == me {
        None
    } else {
        cluster.node_url(&session.owner).await
    };
    let epoch = match session::decide(Ok(Some(&session)), me, user, owner_url.is_some()) {
        Resume::Claim { epoch } => epoch,
        Resume::Forward { owner } => {
            return Err(
                owner_url.map_or(Refused::NotFound, |url| Refused::Owner { node: owner, url })
            );
        }
        Resume::Fail(Unrecoverable::Ended) | Resume::Local | Resume::NotFound => {
            return Err(Refused::NotFound);
        }
        Resume::Fail(reason) => {
            count_unrecoverable(reason);
            return Err(Refused::Unrecoverable(reason, protocol));
        }
    };
    let partition = cluster.partition_of(hub);
    let info = cluster.stream_info(partition).await.map_err(|e| {
        warn!(error = %e, "cannot read the stream for a resume");
        Refused::NotFound
    })?;
    let state = StreamState {
        identity: &info.identity,
        first: info.first,
        last: info.last,
    };
    if let Err(reason) = honest::check_stream(&state, &session.stream, session.checkpoint.cursor) {
        info!(connection = %session.connection, reason = reason.as_str(), "resume cannot be served: the stream no longer holds what the client missed");
        // Ended before the client hears it: the official clients answer the
        // Close by resuming once more with the same token (their transport's
        // reconnect runs as it stops), and that attempt must get the 404 of a
        // connection that is gone, not a second goodbye on a socket they then
        // abandon and read as their next connection's handshake.
        if !end_session(&cluster, &key, &session, revision).await {
            return Err(Refused::NotFound);
        }
        count_unrecoverable(reason);
        return Err(Refused::Unrecoverable(reason, protocol));
    }
    let claimed = session.claimed(me, epoch);
    let encoded = session::encode(&claimed).map_err(|_| Refused::NotFound)?;
    let revision = won(
        cluster
            .session_swap(&key, Bytes::from(encoded), revision)
            .await,
        &session.connection,
        "another node claimed the connection first",
        "cannot claim a resuming connection",
    )?;
    let stored = env
        .router
        .backplane()
        .publish(Envelope::new(
            hub.clone(),
            EnvelopeKind::Claim {
                connection: claimed.connection.clone(),
                epoch,
            },
        ))
        .wait()
        .await;
    if let Err(e) = stored {
        warn!(error = %e, "the claim of a resuming connection was not stored");
        return Err(Refused::NotFound);
    }
    // Where the claim sits: the condition of every write from here on. A
    // later claim found instead means another node took it over meanwhile.
    let last_claim = won(
        own_claim(&cluster, hub, &claimed.connection, epoch).await,
        &claimed.connection,
        "another node claimed the connection meanwhile",
        "cannot read back the claim of a resuming connection",
    )?;
    // The claim is in the stream now: the catch-up reads at least up to it.
    let target = cluster
        .stream_info(partition)
        .await
        .map_or(info.last, |i| i.last);
    info!(connection = %claimed.connection, from = %session.owner, epoch, "taking a durable connection over");
    metrics::counter!(crate::metrics::RESUME_TAKEOVERS).increment(1);
    let negotiated = Negotiated {
        connection_id: Arc::from(claimed.connection.as_str()),
        hub: hub.clone(),
        identity: identity.clone(),
        negotiate_version: 1,
        stateful_reconnect: true,
        request: RequestInfo::from_pairs(&claimed.request.query, &claimed.request.headers),
        early: Vec::new(),
    };
    Ok(Taken {
        link: Arc::new(SessionLink::new(cluster, key, claimed.clone(), revision)),
        session: claimed,
        negotiated,
        tenant,
        protocol,
        token: token.to_owned(),
        partition,
        target,
        last_claim,
    })
}

/// The stream sequence of the claim of `epoch`, stored just now, when it is
/// the connection's last; None when another node's claim is (or none is).
/// The outcome of a step of a claim that another node may win (None): the
/// value, else the resume is refused as for an unknown connection, with
/// `lost` (a race lost, debug) or `failed` (the cluster, a warning) logged.
fn won<T>(
    step: Result<Option<T>, crate::backplane::nats::durable::DurableError>,
    connection: &str,
    lost: &str,
    failed: &str,
) -> Result<T, Refused> {
    match step {
        Ok(Some(value)) => Ok(value),
        Ok(None) => {
            debug!(connection, "{lost}");
            Err(Refused::NotFound)
        }
        Err(e) => {
            warn!(connection, error = %e, "{failed}");
            Err(Refused::NotFound)
        }
    }
}

async fn own_claim(
    cluster: &NatsBackplane,
    hub: &HubKey,
    connection: &str,
    epoch: u64,
) -> Result<Option<u64>, crate::backplane::nats::durable::DurableError> {
    let last = cluster.last_claim(hub, connection).await?;
    Ok(last.and_then(|(sequence, found)| (found == epoch).then_some(sequence)))
}

/// Keeps the claim of a connection this node took over in the stream for as
/// long as it serves it: the stream's retention (`max_age`) would drop it,
/// and its writes, conditional on the claim being the last, would then be
/// refused. A renewal is itself a claim written under the last one, so it
/// fails, and the connection is dropped here, if another node claimed it.
/// Each round waits between half and all of `every`: connections taken over
/// together (a node died) do not renew together, and a renewal holds back
/// its partition's publishing for one round trip (see `ClaimMark`).
pub(super) fn renew_claims(
    cluster: Arc<NatsBackplane>,
    handle: Arc<ConnectionHandle>,
    epoch: u64,
    every: Duration,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = handle.closing_token().cancelled() => return,
                () = tokio::time::sleep(every.mul_f64(rand::random_range(0.5..=1.0))) => {}
            }
            let claim = EnvelopeKind::Claim {
                connection: handle.id.to_string(),
                epoch,
            };
            let stored = cluster
                .publish(Envelope::new(handle.hub.clone(), claim).fenced(handle.durable_fence()))
                .wait()
                .await;
            // Stored, the publisher moved the connection's fence to it before
            // it sent any later write (see `ClaimMark`).
            match stored {
                Ok(()) => {}
                Err(PublishError::Fenced) => {
                    warn!(connection = %handle.id, epoch, "another node took the connection over; dropping it here");
                    handle.fence();
                    return;
                }
                Err(e) => {
                    // The next round tries again. (A renewal not confirmed in
                    // time may still be stored; the fence then moves to it.)
                    warn!(connection = %handle.id, error = %e, "cannot renew the claim of a connection taken over");
                }
            }
        }
    });
}

/// Marks a session that cannot be resumed as ended, by compare-and-set of
/// the revision read; false when another node changed it first (then that
/// node's view stands).
async fn end_session(cluster: &NatsBackplane, key: &str, session: &Session, revision: u64) -> bool {
    let ended = Session {
        ended: true,
        ..session.clone()
    };
    let Ok(bytes) = session::encode(&ended) else {
        return false;
    };
    match cluster
        .session_swap(key, Bytes::from(bytes), revision)
        .await
    {
        Ok(Some(_)) => true,
        Ok(None) => {
            debug!(connection = %session.connection, "the session changed while its resume failed");
            false
        }
        Err(e) => {
            // The goodbye is still honest; a second attempt may get it again.
            warn!(connection = %session.connection, error = %e, "cannot mark an unrecoverable session ended");
            true
        }
    }
}

/// Counts invocations that ended with [`honest::OUTCOME_UNKNOWN`].
pub const OUTCOME_UNKNOWN: &str = "switchboard_resume_outcome_unknown_total";

/// Ends every client invocation of a connection just taken over that was
/// running on its old owner (stored, not completed, after the catch-up) with
/// an error Completion: it will never complete otherwise, since a late
/// Completion of the old owner is fenced. Each goes through the stream as a
/// direct record that completes its id, so it takes the same sequence id
/// whichever node sends it, and a later takeover does not send it again.
pub(super) async fn end_unknown_outcomes(handle: &ConnectionHandle) {
    for invocation_id in handle.durable_open() {
        debug!(connection = %handle.id, invocation = %invocation_id, "invocation outcome unknown after a takeover");
        let completion = crate::protocol::HubMessage::Completion {
            invocation_id,
            outcome: crate::protocol::CompletionOutcome::Error(honest::OUTCOME_UNKNOWN.to_owned()),
            headers: Vec::new(),
        };
        if handle.send_message(&completion).await.is_err() {
            // Not stored: the connection is closed (with a reconnect allowed),
            // and the next takeover finds the invocation still open.
            return;
        }
        metrics::counter!(OUTCOME_UNKNOWN).increment(1);
    }
}

/// Replays the stream from the checkpoint into `handle` (as the owner
/// applied it, so with the same sequence ids) until it has applied at least
/// `target` and the router has applied no more: then the router goes on.
pub(super) async fn catch_up(
    env: &ConnectionEnv,
    handle: &Arc<ConnectionHandle>,
    partition: u32,
    from: u64,
    target: u64,
) -> Result<(), Unrecoverable> {
    let cluster = env.cluster.clone().ok_or(Unrecoverable::Missing)?;
    let deadline = tokio::time::Instant::now() + CATCH_UP_TIMEOUT;
    let mut replay = cluster.replay(partition, from + 1).await.map_err(|e| {
        warn!(error = %e, "cannot replay the stream for a resume");
        Unrecoverable::Missing
    })?;
    let mut cursor = from;
    let mut first = true;
    let mut records = 0u64;
    loop {
        if cursor >= target && env.router.join_durable(handle, cursor) {
            debug!(connection = %handle.id, records, cursor, "caught up");
            metrics::histogram!("switchboard_resume_replayed_records").record(records as f64);
            return Ok(());
        }
        let envelope = match tokio::time::timeout_at(deadline, replay.next()).await {
            Ok(Some(Ok(envelope))) => envelope,
            Ok(Some(Err(e))) => {
                warn!(error = %e, "the replay of a resume failed");
                return Err(Unrecoverable::Missing);
            }
            Ok(None) | Err(_) => return Err(Unrecoverable::Missing),
        };
        let Some(at) = envelope.cursor else { continue };
        if std::mem::take(&mut first) && at.sequence > from + 1 {
            return Err(Unrecoverable::Retention);
        }
        if at.sequence <= cursor {
            continue;
        }
        cursor = at.sequence;
        records += 1;
        if envelope.hub != handle.hub {
            continue;
        }
        match handle.apply_durable(cursor, &envelope.kind) {
            Step::Close { reason } => {
                match reason.filter(|r| !r.is_empty()) {
                    Some(reason) => handle.abort(&reason),
                    None => handle.close(),
                }
                return Ok(());
            }
            Step::Claimed { epoch } if epoch > handle.durable_epoch() => {
                handle.fence();
                return Ok(());
            }
            Step::Inconsistent => return Err(Unrecoverable::Inconsistent),
            _ => {}
        }
    }
}
