//! `floor`: a bare tokio-tungstenite broadcast server, the floor Switchboard's fan-out must reach.
//!
//! It speaks just enough of the SignalR JSON hub protocol for `loadgen --proto json`: it answers
//! the handshake with `{}\x1e`; an Invocation of `send(name, message)` is encoded once as
//! `addNewMessageToPage(name, message)` and the same bytes go to every connection through a
//! `tokio::sync::broadcast` channel; `echo(value)` answers with a Completion. Nothing else: no
//! negotiate, no pings, no groups. Each connection's writer sends what is queued and flushes once
//! per batch.
//!
//! ```sh
//! floor --listen 127.0.0.1:0     # logs `listening addr=IP:PORT` to stderr
//! floor --read-buffer-size 4096  # tungstenite's per-connection read buffer (default 128 KiB)
//! ```

use std::net::SocketAddr;

use anyhow::Result;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Messages a slow connection may fall behind before it loses some (it is told nothing: the
/// load generator counts them as lost).
const QUEUE: usize = 8192;

#[derive(Deserialize)]
struct Invocation<'a> {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(rename = "invocationId")]
    invocation_id: Option<&'a str>,
    target: Option<&'a str>,
    #[serde(borrow)]
    arguments: Option<Vec<&'a RawValue>>,
}

fn main() -> Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let mut config = WebSocketConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or_default().parse()?,
            "--read-buffer-size" => {
                config = config.read_buffer_size(args.next().unwrap_or_default().parse()?)
            }
            "-h" | "--help" => {
                println!("floor [--listen 127.0.0.1:0] [--read-buffer-size BYTES]");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, config))
}

async fn serve(listen: SocketAddr, config: WebSocketConfig) -> Result<()> {
    let listener = TcpListener::bind(listen).await?;
    eprintln!("listening addr={}", listener.local_addr()?);
    let (hub, _) = broadcast::channel::<Utf8Bytes>(QUEUE);
    loop {
        let (stream, _) = listener.accept().await?;
        let hub = hub.clone();
        tokio::spawn(async move {
            connection(stream, hub, config).await.ok();
        });
    }
}

async fn connection(
    stream: TcpStream,
    hub: broadcast::Sender<Utf8Bytes>,
    config: WebSocketConfig,
) -> Result<()> {
    stream.set_nodelay(true)?;
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let (mut tx, mut rx) = ws.split();
    // Handshake: the first record, whatever it says, gets `{}`.
    match rx.next().await {
        Some(Ok(_)) => tx.send(Message::text("{}\u{1e}")).await?,
        _ => return Ok(()),
    }
    let mut all = hub.subscribe();
    let (own_tx, mut own_rx) = mpsc::channel::<Utf8Bytes>(64);
    let writer = tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                m = all.recv() => match m {
                    Ok(m) => m,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                m = own_rx.recv() => match m { Some(m) => m, None => break },
            };
            if tx.feed(Message::Text(first)).await.is_err() {
                break;
            }
            // Batch what is already queued into one flush.
            let mut batched = 0;
            while batched < 256 {
                match all.try_recv() {
                    Ok(m) => {
                        if tx.feed(Message::Text(m)).await.is_err() {
                            return;
                        }
                        batched += 1;
                    }
                    Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
            if tx.flush().await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(msg)) = rx.next().await {
        let Message::Text(text) = msg else {
            if msg.is_close() {
                break;
            }
            continue;
        };
        for record in text.as_str().split('\u{1e}').filter(|r| !r.is_empty()) {
            let Ok(inv) = serde_json::from_str::<Invocation<'_>>(record) else {
                continue;
            };
            if inv.kind != 1 {
                continue;
            }
            let args = inv.arguments.unwrap_or_default();
            match (inv.target, inv.invocation_id) {
                (Some("send"), _) if args.len() == 2 => {
                    let out = format!(
                        "{{\"type\":1,\"target\":\"addNewMessageToPage\",\"arguments\":[{},{}]}}\u{1e}",
                        args[0].get(),
                        args[1].get()
                    );
                    hub.send(Utf8Bytes::from(out)).ok();
                }
                (Some("echo"), Some(id)) if args.len() == 1 => {
                    let out = format!(
                        "{{\"type\":3,\"invocationId\":{},\"result\":{}}}\u{1e}",
                        serde_json::Value::String(id.to_string()),
                        args[0].get()
                    );
                    if own_tx.send(Utf8Bytes::from(out)).await.is_err() {
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    writer.abort();
    Ok(())
}
