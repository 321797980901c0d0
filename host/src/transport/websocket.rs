//! The WebSocket transport: each message in is a chunk of records; each
//! frame out is one WebSocket message of whole records, text for JSON and
//! binary for MessagePack.
//!
//! Inbound, text and binary messages are the same bytes to the connection,
//! as in ASP.NET (which pipes raw bytes from either): a binary message on a
//! JSON connection is parsed as JSON records, and one that holds no valid
//! record closes the connection with an error, as a text message would.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt, future};

use crate::connection::{self, Accepted, Inbound, OutFrame};
use crate::node::Node;

pub async fn serve(node: Arc<Node>, accepted: Accepted, socket: WebSocket) {
    let (sink, stream) = socket.split();
    let inbound = stream.filter_map(|message| {
        future::ready(match message {
            Ok(Message::Text(text)) => Some(Inbound::Data(text.into())),
            Ok(Message::Binary(data)) => Some(Inbound::Data(data)),
            Ok(Message::Close(_)) | Err(_) => Some(Inbound::Closed),
            Ok(Message::Ping(_) | Message::Pong(_)) => None,
        })
    });
    let outbound = sink.with(|frame: OutFrame| {
        future::ready(Ok::<_, axum::Error>(match frame {
            OutFrame::Data { data, binary: true } => Message::Binary(data),
            OutFrame::Data {
                data,
                binary: false,
            } => match Utf8Bytes::try_from(data.clone()) {
                Ok(text) => Message::Text(text),
                Err(e) => {
                    tracing::error!(error = %e, "a JSON frame was not UTF-8; sent as binary");
                    Message::Binary(data)
                }
            },
            OutFrame::Close => Message::Close(Some(CloseFrame {
                code: 1000,
                reason: Utf8Bytes::from_static(""),
            })),
        }))
    });
    connection::run(node, accepted, Box::pin(inbound), Box::pin(outbound)).await;
}
