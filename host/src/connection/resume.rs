//! Connections that use stateful reconnect, by the token their client resumes with, so that a
//! new WebSocket carrying the same `id` can take over from the one that dropped.
//!
//! A connection is listed for its whole life, not only while its transport is down: a client
//! may reconnect before the server has noticed that the old socket is dead (a half-open TCP
//! connection), and then the new socket simply replaces the old one, as ASP.NET does.
//!
//! Only negotiate v1 connections are listed: their `id` is the secret connection token. A v0
//! client puts its public connection id in `id=`, which other clients may know, so resuming
//! by it would let them take the connection over.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Sink, Stream};
use tokio::sync::mpsc;

use super::listed::Listed;
use super::{Inbound, OutFrame};
use crate::address::HubKey;

/// The transport's inbound half, whatever carries it.
pub type BoxInbound = Pin<Box<dyn Stream<Item = Inbound> + Send>>;
/// The transport's outbound half, whatever carries it.
pub type BoxOutbound = Pin<Box<dyn Sink<OutFrame, Error = TransportGone> + Send>>;

/// The transport can no longer carry frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the transport is gone")]
pub struct TransportGone;

/// A transport's sink with every error made [`TransportGone`], as often as
/// it fails, and (with [`GoneOnError::mapping`]) each item made what the sink
/// takes. Not `SinkExt::with` and `sink_map_err`: the latter maps one error
/// only and panics on the next ("polled MapErr after completion"), and a
/// socket the client closed fails both the Close frame and the close after
/// it. On a worker thread the panic's backtrace stalled every connection for
/// 200 ms (fan-out bench). One type rather than two adapters also keeps the
/// writer's path to the socket short: it goes through it for every frame.
#[derive(Debug)]
pub struct GoneOnError<S, F> {
    sink: S,
    map: F,
}

impl<S, T> GoneOnError<S, fn(T) -> T> {
    /// `sink` taking items as they are.
    pub fn new(sink: S) -> Self {
        GoneOnError {
            sink,
            map: std::convert::identity,
        }
    }
}

impl<S, F> GoneOnError<S, F> {
    /// `sink` taking what `map` makes of each item.
    pub fn mapping(sink: S, map: F) -> Self {
        GoneOnError { sink, map }
    }
}

impl<S, F, T, U> Sink<T> for GoneOnError<S, F>
where
    S: Sink<U> + Unpin,
    F: FnMut(T) -> U + Unpin,
{
    type Error = TransportGone;

    fn poll_ready(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), TransportGone>> {
        Pin::new(&mut self.sink)
            .poll_ready(cx)
            .map_err(|_| TransportGone)
    }

    fn start_send(mut self: Pin<&mut Self>, item: T) -> Result<(), TransportGone> {
        let item = (self.map)(item);
        Pin::new(&mut self.sink)
            .start_send(item)
            .map_err(|_| TransportGone)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), TransportGone>> {
        Pin::new(&mut self.sink)
            .poll_flush(cx)
            .map_err(|_| TransportGone)
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), TransportGone>> {
        Pin::new(&mut self.sink)
            .poll_close(cx)
            .map_err(|_| TransportGone)
    }
}

/// Both halves of one transport (one WebSocket).
pub struct Transport {
    /// What the client sends, record chunks and the end of the transport.
    pub inbound: BoxInbound,
    /// Where the connection writes its frames.
    pub outbound: BoxOutbound,
    /// The close code its outbound half ends with.
    pub close_code: CloseCode,
}

/// The close code a transport ends with, which the reader may change: a
/// WebSocket closed because a record was over the size limit ends with 1009
/// (RFC 6455 7.4.1), after the hub protocol's Close message. Transports
/// without close codes have none (no allocation).
#[derive(Debug, Clone, Default)]
pub struct CloseCode(Option<Arc<std::sync::atomic::AtomicU16>>);

impl CloseCode {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// A message (here: a record) too big to process.
    pub const TOO_BIG: u16 = 1009;

    /// A code for a transport that has them, [`Self::NORMAL`] until set.
    pub fn new() -> Self {
        CloseCode(Some(Arc::new(Self::NORMAL.into())))
    }

    /// The code the transport closes with; no effect for transports without codes.
    pub fn set(&self, code: u16) {
        if let Some(cell) = &self.0 {
            cell.store(code, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The code set last; [`Self::NORMAL`] if none was, or the transport has none.
    pub fn get(&self) -> u16 {
        self.0.as_ref().map_or(Self::NORMAL, |cell| {
            cell.load(std::sync::atomic::Ordering::Relaxed)
        })
    }
}

debug_fields!(Transport {});

/// What a resuming request needs of a live stateful connection.
#[derive(Debug)]
pub struct ResumeLink {
    /// The hub it was negotiated for; a request on another hub's URL is a 404.
    pub hub: HubKey,
    /// Who negotiated; only the same user may resume.
    pub user_id: Option<String>,
    /// The public connection id, for logs.
    pub connection_id: Arc<str>,
    transports: mpsc::Sender<Transport>,
}

impl ResumeLink {
    /// Hands a new transport to the connection. Gives it back when the connection has ended
    /// meanwhile.
    pub async fn resume(&self, transport: Transport) -> Result<(), Transport> {
        self.transports.send(transport).await.map_err(|e| e.0)
    }
}

/// Live stateful connections by client `id` (the connection token).
#[derive(Debug, Default)]
pub struct ResumableConnections {
    by_token: Listed<ResumeLink>,
}

impl ResumableConnections {
    /// An empty table.
    pub fn new() -> ResumableConnections {
        ResumableConnections::default()
    }

    /// The connection `token` names, if it lives and uses stateful reconnect.
    pub fn get(&self, token: &str) -> Option<Arc<ResumeLink>> {
        self.by_token.get(token)
    }

    /// Lists a connection; new transports for it arrive on the returned receiver. None when
    /// the token is listed already (tokens are random, so never in practice).
    pub(super) fn insert(
        &self,
        token: String,
        hub: HubKey,
        user_id: Option<String>,
        connection_id: Arc<str>,
    ) -> Option<(Arc<ResumeLink>, mpsc::Receiver<Transport>)> {
        let (tx, rx) = mpsc::channel(1);
        let link = Arc::new(ResumeLink {
            hub,
            user_id,
            connection_id,
            transports: tx,
        });
        self.by_token
            .insert(token, link.clone())
            .then_some((link, rx))
    }

    /// Unlists `link`, if `token` still names it.
    pub(super) fn remove(&self, token: &str, link: &Arc<ResumeLink>) {
        self.by_token.remove(token, link);
    }

    /// Stateful connections listed.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Whether none is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_once_and_removed_only_by_its_own_link() {
        let table = ResumableConnections::new();
        let hub = HubKey::new("t", "h");
        let (a, _rx) = table
            .insert("tok".into(), hub.clone(), None, Arc::from("c1"))
            .expect("listed");
        assert!(
            table
                .insert("tok".into(), hub.clone(), None, Arc::from("c2"))
                .is_none(),
            "a token is listed once"
        );
        assert_eq!(
            table.get("tok").map(|l| l.connection_id.clone()),
            Some(Arc::from("c1"))
        );
        table.remove("tok", &a);
        assert!(table.is_empty());
        let (b, _rx) = table
            .insert("tok".into(), hub, None, Arc::from("c3"))
            .expect("listed again");
        table.remove("tok", &a);
        assert_eq!(table.len(), 1, "an old link does not remove a new one");
        table.remove("tok", &b);
        assert!(table.is_empty());
    }
}

#[cfg(test)]
mod gone_tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_util::{Sink, SinkExt};

    use super::{GoneOnError, TransportGone};

    /// A sink that fails every call, as a WebSocket the client closed does.
    struct Closed;

    impl Sink<u8> for Closed {
        type Error = std::io::Error;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
        }
        fn start_send(self: Pin<&mut Self>, _: u8) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
        }
    }

    #[tokio::test]
    async fn every_failure_is_transport_gone_however_often() {
        let mut sink = GoneOnError::new(Closed);
        assert_eq!(sink.send(1).await, Err(TransportGone));
        assert_eq!(sink.send(2).await, Err(TransportGone));
        assert_eq!(sink.close().await, Err(TransportGone));
    }
}
