//! The node-wide connection cap: a counted slot per TCP connection, held by
//! the socket itself ([`Held`]), so a WebSocket keeps its slot after the
//! upgrade and gives it back when the socket is dropped.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// At most `max` connections at once.
#[derive(Debug)]
pub struct Slots {
    open: AtomicUsize,
    max: usize,
    gauge: metrics::Gauge,
}

impl Slots {
    /// Slots for `max` connections; also records `max` in the metrics.
    pub fn new(max: usize) -> Arc<Slots> {
        metrics::gauge!(crate::metrics::HTTP_CONNECTIONS_MAX).set(max as f64);
        Arc::new(Slots {
            open: AtomicUsize::new(0),
            max,
            gauge: metrics::gauge!(crate::metrics::HTTP_CONNECTIONS),
        })
    }

    /// A slot, unless all `max` are taken.
    pub fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            });
        let open = taken.ok()? + 1;
        self.gauge.set(open as f64);
        Some(Slot(self.clone()))
    }

    /// Slots taken now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Slots in all.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// One taken slot; given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        let open = self.0.open.fetch_sub(1, Ordering::AcqRel) - 1;
        self.0.gauge.set(open as f64);
    }
}

/// A socket with what it holds for its whole life (its [`Slot`]). Reads and
/// writes go straight to the socket.
#[derive(Debug)]
pub struct Held<T, G> {
    io: T,
    _guard: G,
}

impl<T, G> Held<T, G> {
    /// `io` holding `guard` until it is dropped.
    pub fn new(io: T, guard: G) -> Held<T, G> {
        Held { io, _guard: guard }
    }

    /// The stream inside.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead + Unpin, G: Unpin> AsyncRead for Held<T, G> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin, G: Unpin> AsyncWrite for Held<T, G> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back_on_drop() {
        let slots = Slots::new(2);
        let a = slots.try_take().expect("first");
        let b = slots.try_take().expect("second");
        assert!(slots.try_take().is_none(), "the cap");
        assert_eq!(slots.open(), 2);
        drop(a);
        let c = slots.try_take().expect("a slot given back is taken again");
        drop((b, c));
        assert_eq!(slots.open(), 0);
    }

    #[tokio::test]
    async fn a_held_socket_keeps_its_slot_until_dropped() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let slots = Slots::new(1);
        let (client, server) = tokio::io::duplex(64);
        let mut held = Held::new(server, slots.try_take().expect("slot"));
        let mut client = client;
        client.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        held.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
        held.write_all(b"pong").await.expect("write");
        client.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"pong");
        assert!(slots.try_take().is_none());
        drop(held);
        assert!(slots.try_take().is_some());
    }
}
