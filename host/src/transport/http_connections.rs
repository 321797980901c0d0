//! The node's table of active connections, by the `id` their client puts in
//! transport URLs (the connection token for negotiate v1, the connection id
//! for v0), with what later requests of the same connection need: its
//! transport (so a request for another one is refused as ASP.NET refuses
//! it), the user who negotiated, the queue POST bodies go into, and, for long
//! polling, the outbound queue and liveness the polls use.
//!
//! A WebSocket connection is listed too, with no queues, so a POST or DELETE
//! to it, or an SSE or poll request for it, gets the right status code.

use std::sync::Arc;

use axum::body::Body;
use futures_util::{Stream, StreamExt, stream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::error::RequestError;
use super::long_polling::LongPoll;
use crate::address::HubKey;
use crate::connection::Inbound;
use crate::connection::listed::Listed;
use crate::tenant::Identity;

/// POST body chunks queued for a connection before the POST waits; the
/// connection's reader drains them, so a fast sender is slowed, not buffered.
const INBOUND_CHUNKS: usize = 8;

pub use crate::outbound::TransportKind;

/// Active connections by client `id`.
#[derive(Debug, Default)]
pub struct HttpConnections {
    by_key: Listed<HttpConnection>,
}

/// What requests after the first one need of an active connection.
#[derive(Debug)]
pub struct HttpConnection {
    pub kind: TransportKind,
    /// The hub it was negotiated for; a request on another hub's URL is a 404.
    pub hub: HubKey,
    /// The public connection id, for logs.
    pub connection_id: Arc<str>,
    /// Who negotiated; every later request must be the same user.
    user_id: Option<String>,
    /// Where POST bodies go, in order. The lock keeps one POST at a time, so
    /// two bodies never interleave (ASP.NET's write lock). None for WebSockets.
    inbound: tokio::sync::Mutex<Option<mpsc::Sender<Inbound>>>,
    /// Cancelled when the transport is over (the SSE response was dropped, a
    /// DELETE, the long poll went quiet): the connection reads `Closed` next,
    /// and polls still waiting end with 204.
    ended: CancellationToken,
    /// The outbound queue and liveness of a long-polling connection.
    pub(super) long_poll: Option<Arc<LongPoll>>,
}

/// Keeps a connection in the table until dropped.
#[derive(Debug)]
pub(super) struct Registration {
    table: Arc<HttpConnections>,
    key: String,
    connection: Arc<HttpConnection>,
}

// === impl HttpConnections ===

impl HttpConnections {
    /// An empty table.
    pub fn new() -> HttpConnections {
        HttpConnections::default()
    }

    /// The connection that `key` (the `id` a request carries) names, if it is live.
    pub fn get(&self, key: &str) -> Option<Arc<HttpConnection>> {
        self.by_key.get(key)
    }

    /// Adds a connection. False when the key is taken already.
    fn insert(&self, key: String, connection: Arc<HttpConnection>) -> bool {
        self.by_key.insert(key, connection)
    }

    /// Removes `connection`, if `key` still names it.
    pub fn remove(&self, key: &str, connection: &Arc<HttpConnection>) {
        self.by_key.remove(key, connection);
    }

    /// SSE and long-polling connections live on this node.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many SSE and long-polling connections each hub (tenant, hub) has.
    pub fn http_transports_by_hub(
        &self,
    ) -> std::collections::BTreeMap<(String, String), (usize, usize)> {
        let mut counts = std::collections::BTreeMap::<_, (usize, usize)>::new();
        self.by_key.for_each(|c| {
            let key = (c.hub.tenant.to_string(), c.hub.hub.to_string());
            match c.kind {
                TransportKind::WebSockets => {}
                TransportKind::ServerSentEvents => counts.entry(key).or_default().0 += 1,
                TransportKind::LongPolling => counts.entry(key).or_default().1 += 1,
            }
        });
        counts
    }
}

// === impl HttpConnection ===

impl HttpConnection {
    /// A WebSocket connection: listed only so that requests for another
    /// transport get the right error.
    pub fn websocket(hub: HubKey, connection_id: Arc<str>, user_id: Option<String>) -> Self {
        HttpConnection {
            kind: TransportKind::WebSockets,
            hub,
            connection_id,
            user_id,
            inbound: tokio::sync::Mutex::new(None),
            ended: CancellationToken::new(),
            long_poll: None,
        }
    }

    /// An SSE or long-polling connection, and the stream of what its POSTs
    /// carry, for `connection::run`. The stream ends with `Closed` when the
    /// transport is over.
    pub fn with_posts(
        kind: TransportKind,
        hub: HubKey,
        connection_id: Arc<str>,
        user_id: Option<String>,
        long_poll: Option<Arc<LongPoll>>,
        early: Vec<bytes::Bytes>,
    ) -> (
        HttpConnection,
        impl Stream<Item = Inbound> + Send + Unpin + 'static,
    ) {
        let (tx, rx) = mpsc::channel(INBOUND_CHUNKS);
        let ended = CancellationToken::new();
        let connection = HttpConnection {
            kind,
            hub,
            connection_id,
            user_id,
            inbound: tokio::sync::Mutex::new(Some(tx)),
            ended: ended.clone(),
            long_poll,
        };
        let early = stream::iter(early.into_iter().map(Inbound::Data));
        (connection, Box::pin(early.chain(posted(rx, ended))))
    }

    /// Refuses a request from anyone but the user who negotiated.
    pub fn check_user(&self, identity: &Identity) -> Result<(), RequestError> {
        if identity.user_id == self.user_id {
            Ok(())
        } else {
            Err(RequestError::Unauthorized)
        }
    }

    /// Ends the transport: the connection reads `Closed`, pending polls get 204.
    pub fn end(&self) {
        self.ended.cancel();
    }

    pub fn ended(&self) -> &CancellationToken {
        &self.ended
    }

    /// Hands a POST body to the connection, chunk by chunk as it arrives,
    /// waiting while the connection catches up. Records may span chunks and
    /// POSTs; the connection's parser joins them.
    pub async fn post(&self, body: Body) -> Result<(), RequestError> {
        let sender = self.inbound.lock().await;
        let Some(sender) = sender.as_ref() else {
            return Err(RequestError::PostToWebSocket);
        };
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    // The client went away mid-body; what arrived was handed on.
                    debug!(connection = %self.connection_id, error = %e, "POST body cut short");
                    return Ok(());
                }
            };
            if chunk.is_empty() {
                continue;
            }
            let sent = tokio::select! {
                sent = sender.send(Inbound::Data(chunk)) => sent.is_ok(),
                () = self.ended.cancelled() => false,
            };
            if !sent {
                // The connection ended while the body was arriving.
                return Err(RequestError::UnknownConnection);
            }
        }
        Ok(())
    }
}

/// POST bodies, then `Closed` once the transport is over or every sender is gone.
fn posted(
    rx: mpsc::Receiver<Inbound>,
    ended: CancellationToken,
) -> impl Stream<Item = Inbound> + Send + 'static {
    stream::unfold(Some((rx, ended)), |state| async move {
        let (mut rx, ended) = state?;
        tokio::select! {
            biased;
            item = rx.recv() => match item {
                Some(item) => Some((item, Some((rx, ended)))),
                None => Some((Inbound::Closed, None)),
            },
            () = ended.cancelled() => Some((Inbound::Closed, None)),
        }
    })
}

// === impl Registration ===

impl Registration {
    /// Lists `connection` under `key` until the registration is dropped.
    /// None when `key` is listed already.
    pub(super) fn new(
        table: &Arc<HttpConnections>,
        key: String,
        connection: Arc<HttpConnection>,
    ) -> Option<Self> {
        table
            .insert(key.clone(), connection.clone())
            .then_some(Registration {
                table: table.clone(),
                key,
                connection,
            })
    }

    pub(super) fn connection(&self) -> &Arc<HttpConnection> {
        &self.connection
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.table.remove(&self.key, &self.connection);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    fn http() -> (HttpConnection, impl Stream<Item = Inbound> + Unpin) {
        HttpConnection::with_posts(
            TransportKind::ServerSentEvents,
            HubKey::new("t", "h"),
            Arc::from("c"),
            Some("alice".into()),
            None,
            Vec::new(),
        )
    }

    async fn next(inbound: &mut (impl Stream<Item = Inbound> + Unpin)) -> Option<Inbound> {
        tokio::time::timeout(Duration::from_secs(1), inbound.next())
            .await
            .expect("the inbound stream answered within a second")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn posts_arrive_in_order_then_closed_when_ended() {
        let (connection, mut inbound) = http();
        connection
            .post(Body::from("{\"type\":6}\u{1e}"))
            .await
            .expect("posted");
        connection.post(Body::from("")).await.expect("empty post");
        connection.post(Body::from("x")).await.expect("posted");
        assert!(
            matches!(next(&mut inbound).await, Some(Inbound::Data(d)) if d == Bytes::from_static(b"{\"type\":6}\x1e"))
        );
        assert!(matches!(next(&mut inbound).await, Some(Inbound::Data(d)) if &d[..] == b"x"));
        connection.end();
        assert!(matches!(next(&mut inbound).await, Some(Inbound::Closed)));
        assert!(next(&mut inbound).await.is_none());
        assert_eq!(
            connection.post(Body::from("late")).await,
            Err(RequestError::UnknownConnection),
            "a POST after the end is refused"
        );
    }

    #[test]
    fn only_the_negotiating_user() {
        let (connection, _inbound) = http();
        let mut who = Identity::anonymous();
        assert_eq!(connection.check_user(&who), Err(RequestError::Unauthorized));
        who.user_id = Some("alice".into());
        assert_eq!(connection.check_user(&who), Ok(()));
        who.user_id = Some("bob".into());
        assert_eq!(connection.check_user(&who), Err(RequestError::Unauthorized));
    }

    #[test]
    fn table_removes_only_the_same_connection() {
        let table = HttpConnections::new();
        let (a, _) = http();
        let (b, _) = http();
        let (a, b) = (Arc::new(a), Arc::new(b));
        assert!(table.insert("k".into(), a.clone()));
        assert!(!table.insert("k".into(), b.clone()), "a key is listed once");
        table.remove("k", &b);
        assert_eq!(table.len(), 1, "another connection's removal is ignored");
        table.remove("k", &a);
        assert!(table.is_empty());
    }
}
