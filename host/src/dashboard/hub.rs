//! The built-in admin hub at `/dashboard/hub`: SignalR over WebSockets with
//! the JSON protocol, served by the host itself (no plugin). It calls
//! `snapshot(data)` on its clients once a second and has no methods.
//!
//! Only holders of an admin key (the config's `[admin] keys`) connect: the
//! negotiate checks `Authorization: Bearer KEY`, the WebSocket checks the
//! `access_token` query parameter, which is how browser SignalR clients send
//! their token (a browser cannot set headers on a WebSocket). A refusal is
//! the admin API's own 401/403 JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use serde_json::Value;
use tracing::debug;

use super::feed::Feed;
use crate::api::admin;
use crate::node::Node;
use crate::protocol::handshake::{error_response, parse_handshake, success_response};
use crate::protocol::negotiate::{TransportInfo, negotiate_response};
use crate::transport::{QueryList, query_param};

/// Largest message a dashboard may send (its handshake, pings, a close).
pub const MAX_MESSAGE_BYTES: usize = 16 << 10;
/// Time a new socket has to send its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that sends nothing this long is gone (the JS client pings every 15 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// A write that takes longer than this closes the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// `POST /dashboard/hub/negotiate`: WebSockets only, for admins only.
pub async fn negotiate(State(node): State<Arc<Node>>, headers: HeaderMap) -> Response {
    if let Err(e) = admin::authorize(&node, &headers) {
        return e.into_response();
    }
    let id = format!("{:032x}", rand::random::<u128>());
    let body = negotiate_response(1, &id, &id, &[TransportInfo::WEB_SOCKETS], false);
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

/// `GET /dashboard/hub` (a WebSocket upgrade) with `access_token=KEY`.
pub async fn connect(
    State(node): State<Arc<Node>>,
    State(feed): State<Arc<Feed>>,
    Query(query): QueryList,
    mut headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some(token) = query_param(&query, "access_token")
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        headers.insert(AUTHORIZATION, value);
    }
    if let Err(e) = admin::authorize(&node, &headers) {
        return e.into_response();
    }
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(node, feed, socket))
}

async fn serve(node: Arc<Node>, feed: Arc<Feed>, mut socket: WebSocket) {
    match handshake(&mut socket).await {
        Ok(()) => {}
        Err(why) => {
            debug!(why, "dashboard handshake failed");
            return;
        }
    }
    let mut feed = feed.subscribe(&node);
    let draining = node.draining.clone();
    // The latest snapshot at once, if the feed has one: the page draws without waiting a tick.
    let mut pending = feed.borrow_and_update().clone();
    let mut heard = tokio::time::Instant::now();
    loop {
        if let Some(record) = pending.take() {
            let text = String::from_utf8_lossy(&record).into_owned();
            match tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::Text(text.into()))).await
            {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        tokio::select! {
            changed = feed.changed() => {
                if changed.is_err() {
                    return;
                }
                pending = feed.borrow_and_update().clone();
            }
            message = tokio::time::timeout_at(heard + CLIENT_TIMEOUT, socket.recv()) => {
                let Ok(Some(Ok(message))) = message else { return };
                heard = tokio::time::Instant::now();
                match message {
                    Message::Text(text) => {
                        if let Some(reply) = answer(text.as_bytes()) {
                            pending = Some(reply.into());
                        }
                        if closes(text.as_bytes()) {
                            return;
                        }
                    }
                    Message::Close(_) => return,
                    _ => {}
                }
            }
            () = draining.cancelled() => {
                let close = b"{\"type\":7,\"error\":\"Server is shutting down.\",\"allowReconnect\":true}\x1e";
                let text = String::from_utf8_lossy(close).into_owned();
                let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::Text(text.into()))).await;
                return;
            }
        }
    }
}

/// Reads the handshake (JSON protocol only) and answers it.
async fn handshake(socket: &mut WebSocket) -> Result<(), &'static str> {
    let mut buf = BytesMut::new();
    let request = loop {
        let message = tokio::time::timeout(HANDSHAKE_TIMEOUT, socket.recv())
            .await
            .map_err(|_| "no handshake in time")?;
        match message {
            Some(Ok(Message::Text(t))) => buf.extend_from_slice(t.as_bytes()),
            Some(Ok(Message::Binary(b))) => buf.extend_from_slice(&b),
            Some(Ok(_)) => continue,
            _ => return Err("closed before the handshake"),
        }
        match parse_handshake(&mut buf, MAX_MESSAGE_BYTES) {
            Ok(Some(request)) => break request,
            Ok(None) => continue,
            Err(e) => {
                send_raw(socket, &error_response(&e.to_string())).await;
                return Err("bad handshake");
            }
        }
    };
    if request.protocol != "json" {
        let msg = format!(
            "The protocol '{}' is not supported by the dashboard hub; use json.",
            request.protocol
        );
        send_raw(socket, &error_response(&msg)).await;
        return Err("not json");
    }
    send_raw(socket, success_response()).await;
    Ok(())
}

async fn send_raw(socket: &mut WebSocket, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::Text(text.into()))).await;
}

/// The records of a text message, as JSON values (malformed ones skipped).
fn records(text: &[u8]) -> impl Iterator<Item = Value> + '_ {
    text.split(|&b| b == 0x1e)
        .filter(|r| !r.is_empty())
        .filter_map(|r| serde_json::from_slice(r).ok())
}

/// A completion with an error for each invocation that expects one (the hub has no methods).
fn answer(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for record in records(text) {
        if record["type"] == 1
            && let Some(id) = record["invocationId"].as_str()
        {
            let completion = serde_json::json!({
                "type": 3,
                "invocationId": id,
                "error": "The dashboard hub has no methods; it only sends snapshot.",
            });
            out.extend(serde_json::to_vec(&completion).unwrap_or_default());
            out.push(0x1e);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Whether the client sent a Close record.
fn closes(text: &[u8]) -> bool {
    records(text).any(|r| r["type"] == 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocations_get_an_error_and_close_is_seen() {
        let reply = answer(b"{\"type\":6}\x1e{\"type\":1,\"invocationId\":\"7\",\"target\":\"x\",\"arguments\":[]}\x1e")
            .expect("a completion");
        let text = String::from_utf8(reply).expect("utf-8");
        assert!(text.starts_with("{\"") && text.ends_with('\x1e'), "{text}");
        assert!(
            text.contains("\"invocationId\":\"7\"") && text.contains("no methods"),
            "{text}"
        );
        assert!(answer(b"{\"type\":6}\x1e").is_none());
        assert!(
            answer(b"{\"type\":1,\"target\":\"x\",\"arguments\":[]}\x1e").is_none(),
            "fire and forget"
        );
        assert!(closes(b"{\"type\":6}\x1e{\"type\":7}\x1e"));
        assert!(!closes(b"{\"type\":6}\x1e"));
    }
}
