//! Reading request bodies with a size limit, without resetting the client.
//!
//! Refusing a body by closing the socket while the client is still sending
//! makes the kernel answer with RST, which can destroy the 413 response before
//! the client reads it (node's fetch then reports "fetch failed" instead of
//! the status). So a refused body is read to its end and dropped, up to
//! [`DRAIN_LIMIT`] bytes and [`DRAIN_TIME`]; past that the connection goes.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use bytes::BytesMut;
use futures_util::StreamExt;

/// How much of a refused body is read and dropped so the client sees the answer.
pub const DRAIN_LIMIT: usize = 16 << 20;
/// How long a refused body may take to arrive before the connection is dropped.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The body was larger than the limit (declared or sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body is larger than {limit} bytes")]
pub struct TooLarge {
    /// The limit that was passed, in bytes.
    pub limit: usize,
}

/// The `Content-Length` a request declares, if any.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The whole body, if it is at most `limit` bytes; otherwise what was sent is
/// drained and [`TooLarge`] returned.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, TooLarge> {
    if declared_length(headers).is_some_and(|n| n > limit as u64) {
        discard(body).await;
        return Err(TooLarge { limit });
    }
    let mut stream = body.into_data_stream();
    let mut collected = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        // A body that breaks off is treated as refused: nothing usable arrived.
        let Ok(chunk) = chunk else {
            return Err(TooLarge { limit });
        };
        if collected.len() + chunk.len() > limit {
            discard_stream(stream, collected.len() + chunk.len()).await;
            return Err(TooLarge { limit });
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected.freeze())
}

/// Reads and drops a body nobody will use (see the module comment).
pub async fn discard(body: Body) {
    discard_stream(body.into_data_stream(), 0).await;
}

async fn discard_stream(mut stream: axum::body::BodyDataStream, already: usize) {
    let mut seen = already;
    let drain = async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}
