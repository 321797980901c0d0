//! One partition's publisher: envelopes go out in the order they were
//! queued, over one connection, so JetStream stores them in that order.
//! Acknowledgements are awaited concurrently (a bounded window), and every
//! envelope that is not stored is counted and logged, never retried (a
//! retry could reorder or duplicate).

use std::sync::Arc;

use async_nats::HeaderMap;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tracing::warn;

use super::stats::bump;
use super::{NODE_HEADER, Outgoing, Shared};

/// Envelopes published but not yet acknowledged, per partition.
const MAX_IN_FLIGHT: usize = 1024;

pub(super) async fn run(shared: Arc<Shared>, partition: u32, mut queue: mpsc::Receiver<Outgoing>) {
    let stats = shared.stats.clone();
    let Some(metrics) = shared.metrics.get(partition as usize).cloned() else {
        return;
    };
    let mut acks = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return,
            Some(ack) = acks.next(), if !acks.is_empty() => {
                match ack {
                    Ok(_) => {
                        stats.published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        metrics.published.increment(1);
                    }
                    Err(e) => {
                        metrics.undeliverable_failed.increment(1);
                        if bump(&stats.publish_failed) {
                            warn!(error = %e, lost = stats.snapshot().publish_failed,
                                "JetStream did not store an envelope; it is lost");
                        }
                    }
                }
            }
            next = queue.recv(), if acks.len() < MAX_IN_FLIGHT => {
                let Some((partition, subject, payload)) = next else { return };
                if !shared.is_connected() {
                    metrics.undeliverable_disconnected.increment(1);
                    if bump(&stats.dropped_disconnected) {
                        warn!(partition, lost = stats.snapshot().dropped_disconnected,
                            "NATS is disconnected; envelope for other nodes dropped");
                    }
                    continue;
                }
                let mut headers = HeaderMap::new();
                headers.insert(NODE_HEADER, shared.node_id.as_str());
                match shared.js.publish_with_headers(subject, headers, payload).await {
                    Ok(ack) => acks.push(ack.into_future()),
                    Err(e) => {
                        metrics.undeliverable_failed.increment(1);
                        if bump(&stats.publish_failed) {
                            warn!(partition, error = %e, lost = stats.snapshot().publish_failed,
                                "cannot publish envelope; it is lost");
                        }
                    }
                }
            }
        }
    }
}
