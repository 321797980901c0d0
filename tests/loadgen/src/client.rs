//! Opening a connection: TCP (optionally from a chosen 127.0.0.x source address), the WebSocket
//! upgrade, and the protocol handshake.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpSocket, TcpStream, lookup_host};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::proto::{self, Proto};

/// A connected, handshaken client.
pub type Ws = WebSocketStream<TcpStream>;

/// How long one connect plus handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Target {
    /// WebSocket URL (`ws://...`).
    pub url: String,
    /// Resolved server address.
    pub addr: SocketAddr,
    /// Protocol spoken on the connection.
    pub proto: Proto,
}

impl Target {
    /// Resolves a base URL from the command line.
    pub async fn resolve(base: &str, proto: Proto) -> Result<Self> {
        let url = proto.ws_url(base);
        let authority = url["ws://".len()..]
            .split('/')
            .next()
            .context("URL without host")?
            .to_string();
        let addr = lookup_host(authority.as_str())
            .await?
            .next()
            .with_context(|| format!("cannot resolve {authority}"))?;
        Ok(Self { url, addr, proto })
    }
}

/// Small buffers, so that thousands of idle clients stay cheap in the load generator.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Connects and handshakes. Returns the stream and any data that arrived with the handshake
/// answer (SignalR may append records to it).
pub async fn connect(target: &Target, source: Option<IpAddr>) -> Result<(Ws, Vec<u8>)> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(target, source))
        .await
        .context("connect timed out")?
}

async fn connect_inner(target: &Target, source: Option<IpAddr>) -> Result<(Ws, Vec<u8>)> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("bind {ip}"))?;
    }
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(target.url.as_str(), stream, Some(config()))
            .await?;
    let leftover = match target.proto {
        Proto::Json | Proto::Msgpack => {
            if let Some(hs) = target.proto.handshake() {
                ws.send(hs).await?;
            }
            let answer = next_data(&mut ws).await?;
            proto::check_signalr_handshake(&answer)?.to_vec()
        }
        Proto::Socketio => {
            let open = next_data(&mut ws).await?;
            if open.first() != Some(&b'0') {
                bail!("expected an Engine.IO open packet");
            }
            ws.send(Message::text("40")).await?;
            loop {
                let frame = next_data(&mut ws).await?;
                if let Some(reply) = target.proto.control_reply(&frame) {
                    ws.send(reply).await?;
                } else if frame.starts_with(b"40") {
                    break;
                } else if frame.starts_with(b"44") {
                    bail!(
                        "Socket.IO connect refused: {}",
                        String::from_utf8_lossy(&frame).into_owned()
                    );
                }
            }
            Vec::new()
        }
    };
    Ok((ws, leftover))
}

/// The next text or binary frame.
async fn next_data(ws: &mut Ws) -> Result<Vec<u8>> {
    loop {
        match ws.next().await {
            Some(Ok(msg)) => {
                if let Some(bytes) = proto::frame_bytes(&msg) {
                    return Ok(bytes.to_vec());
                }
                if let Message::Close(frame) = msg {
                    bail!("closed during handshake: {frame:?}");
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed during handshake"),
        }
    }
}
