//! An upgraded WebSocket: frames in through [`FrameReader`], messages out
//! through tokio-tungstenite, on one socket.
//!
//! The outbound half is tokio-tungstenite's writer, as before; only its
//! reading is bypassed: this type reads the socket itself, so that a
//! message's payload reaches the connection as it arrives instead of after
//! tungstenite has assembled the whole message. Pings are answered and
//! protocol violations closed here, through the same writer.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{Sink, Stream};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};
use tracing::{debug, info};

use super::frames::{Event, FrameReader};
use crate::connection::Inbound;

/// How long a socket closed by the server keeps reading (and discarding)
/// what the client still sends, and how much of it at most.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// One WebSocket, both ways.
pub(crate) struct Socket {
    /// None only once dropped, when a lingering close takes it.
    ws: Option<Ws>,
    frames: FrameReader,
    /// Bytes read and not yet made events: a header or control frame cut
    /// across reads; data is split off it as it comes.
    buf: BytesMut,
    /// Bytes to read at a time.
    read_size: usize,
    /// A Pong or Close the reader owes the client, not yet taken by the writer.
    control: Option<Message>,
    /// The reader wrote a control frame that is not flushed yet.
    flushing: bool,
    /// The writer's waker, woken too when the reader waits on the writer.
    writer: Option<Waker>,
    /// The reader gave its last item.
    ended: bool,
    /// The client's side of the TCP stream ended.
    eof: bool,
    /// For logs.
    connection: Arc<str>,
}

impl Socket {
    pub(crate) fn new(ws: Ws, read_size: usize, connection: Arc<str>) -> Self {
        Socket {
            ws: Some(ws),
            frames: FrameReader::new(),
            buf: BytesMut::new(),
            read_size,
            control: None,
            flushing: false,
            writer: None,
            ended: false,
            eof: false,
            connection,
        }
    }

    /// Writes and flushes the control frame the reader owes, as far as the
    /// socket takes it now. Waits (wakes) as both reader and writer, which
    /// share tungstenite's single write waker.
    fn push_control(&mut self, cx: &mut Context<'_>) {
        if self.control.is_none() && !self.flushing {
            return;
        }
        let waker = match &self.writer {
            Some(writer) if !writer.will_wake(cx.waker()) => {
                Waker::from(Arc::new(Both(cx.waker().clone(), writer.clone())))
            }
            _ => cx.waker().clone(),
        };
        let mut cx = Context::from_waker(&waker);
        self.send_control(&mut cx);
        if self.flushing
            && let Some(ws) = self.ws.as_mut()
            && Pin::new(ws).poll_flush(&mut cx).is_ready()
        {
            self.flushing = false;
        }
    }

    /// Hands the owed control frame to tungstenite if it has room.
    fn send_control(&mut self, cx: &mut Context<'_>) {
        let Some(ws) = self.ws.as_mut().filter(|_| self.control.is_some()) else {
            return;
        };
        match Pin::new(&mut *ws).poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                if let Some(message) = self.control.take() {
                    // An error: the socket is closing or gone; nothing to answer.
                    let _ = Pin::new(ws).start_send(message);
                    self.flushing = true;
                }
            }
            Poll::Ready(Err(_)) => self.control = None,
            Poll::Pending => {}
        }
    }
}

impl Stream for Socket {
    type Item = Inbound;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            this.push_control(cx);
            match this.frames.next(&mut this.buf) {
                Ok(Some(Event::Data(data))) => return Poll::Ready(Some(Inbound::Data(data))),
                Ok(Some(Event::Ping(payload))) => {
                    // A newer Ping's Pong replaces one not sent yet (RFC 6455 5.5.3).
                    this.control = Some(Message::Pong(payload));
                    continue;
                }
                Ok(Some(Event::Pong)) => continue,
                Ok(Some(Event::Close(code))) => {
                    debug!(connection = %this.connection, ?code, "the client closed the WebSocket");
                    this.ended = true;
                    return Poll::Ready(Some(Inbound::Closed));
                }
                Err(violation) => {
                    let code = violation.code();
                    info!(
                        connection = %this.connection,
                        code,
                        error = %violation,
                        "WebSocket protocol violation; closing"
                    );
                    this.control = Some(Message::Close(Some(CloseFrame {
                        code: CloseCode::from(code),
                        reason: violation.to_string().into(),
                    })));
                    this.push_control(cx);
                    this.ended = true;
                    return Poll::Ready(Some(Inbound::Closed));
                }
                Ok(None) => {}
            }
            if this.buf.capacity() - this.buf.len() < this.read_size / 2 {
                this.buf.reserve(this.read_size);
            }
            let Some(ws) = this.ws.as_mut() else {
                return Poll::Ready(None);
            };
            match tokio_util::io::poll_read_buf(Pin::new(ws.get_mut()), cx, &mut this.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    this.ended = true;
                    // Nothing more will come: no need to linger on close.
                    this.eof = true;
                    return Poll::Ready(Some(Inbound::Dropped));
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }
}

impl Sink<Message> for Socket {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.remember_writer(cx);
        // A Pong or Close the reader could not send goes first.
        self.send_control(cx);
        match self.ws.as_mut() {
            Some(ws) => Pin::new(ws).poll_ready(cx),
            None => Poll::Ready(Err(Error::AlreadyClosed)),
        }
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        match self.ws.as_mut() {
            Some(ws) => Pin::new(ws).start_send(item),
            None => Err(Error::AlreadyClosed),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.remember_writer(cx);
        let flushed = match self.ws.as_mut() {
            Some(ws) => Pin::new(ws).poll_flush(cx),
            None => Poll::Ready(Err(Error::AlreadyClosed)),
        };
        if flushed.is_ready() {
            self.flushing = false;
        }
        flushed
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.remember_writer(cx);
        match self.ws.as_mut() {
            Some(ws) => Pin::new(ws).poll_close(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl Socket {
    fn remember_writer(&mut self, cx: &Context<'_>) {
        match &mut self.writer {
            Some(waker) => waker.clone_from(cx.waker()),
            None => self.writer = Some(cx.waker().clone()),
        }
    }
}

/// Wakes two tasks.
struct Both(Waker, Waker);

impl Wake for Both {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake_by_ref();
        self.1.wake_by_ref();
    }
}

impl Drop for Socket {
    /// A socket the server closes while the client still sends would be
    /// reset by the kernel for the unread bytes, and the reset can destroy
    /// the Close message and frame in flight to the client. So the socket
    /// first ends its side and reads, discarding, until the client ends its
    /// own, for at most [`LINGER`] and [`LINGER_BYTES`] (a lingering close).
    fn drop(&mut self) {
        let Some(ws) = self.ws.take().filter(|_| !self.eof) else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(ws));
        }
    }
}

async fn linger(mut ws: Ws) {
    // No flush: the writer flushed its Close; what it did not (a client too
    // slow to read) is not worth sending.
    let _ = tokio::time::timeout(LINGER, async {
        let io = ws.get_mut();
        let _ = io.shutdown().await;
        let mut scratch = [0u8; 4096];
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            match io.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}
