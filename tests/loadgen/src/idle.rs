//! `idle`: N connections opened and held, spread over 127.0.0.x source addresses so that more
//! than one address's ~28k ephemeral ports can be used; the server's RSS per connection is read
//! from /proc/<pid>/status before and after.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::client::{self, Target};
use crate::proto;
use crate::stats;

/// Idle-scenario settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub target: Target,
    pub connections: usize,
    /// Seconds to hold every connection after the last one opened.
    pub hold: f64,
    /// Connections per 127.0.0.x source address.
    pub per_source: usize,
    pub connect_concurrency: usize,
    /// Server process to read RSS from.
    pub server_pid: Option<u32>,
    /// Upper bound on the whole connect phase.
    pub connect_deadline: f64,
}

/// The one JSON line an idle run prints.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub proto: &'static str,
    pub url: String,
    pub connections: usize,
    pub connected: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub source_addresses: usize,
    pub connect_secs: f64,
    pub connects_per_sec: f64,
    pub still_open_at_end: usize,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_after_kib: Option<u64>,
    pub server_rss_per_conn_kib: Option<f64>,
}

/// Opens, holds and closes the connections.
pub async fn run(cfg: &Config) -> Result<Report> {
    let rss_before = cfg.server_pid.and_then(stats::rss_kib);
    let gate = Arc::new(Semaphore::new(cfg.connect_concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let per_source = cfg.per_source.max(1);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(cfg.connections);
    for i in 0..cfg.connections {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i / per_source) as u8));
        let (target, gate, done_tx, mut stop_rx) = (
            cfg.target.clone(),
            gate.clone(),
            done_tx.clone(),
            stop_rx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let conn = client::connect(&target, Some(source)).await;
            drop(permit);
            let (mut ws, _) = match conn {
                Ok(c) => {
                    done_tx.send(Ok(())).ok();
                    c
                }
                Err(e) => {
                    done_tx.send(Err(format!("{e:#}"))).ok();
                    return false;
                }
            };
            loop {
                tokio::select! {
                    msg = ws.next() => match msg {
                        Some(Ok(m)) => {
                            let reply = proto::frame_bytes(&m).and_then(|b| target.proto.control_reply(b));
                            if let Some(reply) = reply
                                && ws.send(reply).await.is_err()
                            {
                                return false;
                            }
                        }
                        _ => return false,
                    },
                    _ = stop_rx.changed() => break,
                }
            }
            ws.close(None).await.ok();
            true
        }));
    }
    drop(done_tx);
    let (mut connected, mut failed, mut first_error) = (0, 0, None);
    let deadline = tokio::time::sleep(Duration::from_secs_f64(cfg.connect_deadline));
    tokio::pin!(deadline);
    while connected + failed < cfg.connections {
        tokio::select! {
            r = done_rx.recv() => match r {
                Some(Ok(())) => connected += 1,
                Some(Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    let connect_secs = start.elapsed().as_secs_f64();
    // Let the server settle (allocations, GC) before reading its RSS.
    tokio::time::sleep(Duration::from_secs_f64(cfg.hold)).await;
    let rss_after = cfg.server_pid.and_then(stats::rss_kib);
    stop_tx.send(true).ok();
    let mut still_open = 0;
    for t in tasks {
        if tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .ok()
            .and_then(|r| r.ok())
            == Some(true)
        {
            still_open += 1;
        }
    }
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if connected > 0 => {
            Some(stats::round(a.saturating_sub(b) as f64 / connected as f64))
        }
        _ => None,
    };
    Ok(Report {
        scenario: "idle",
        proto: cfg.target.proto.name(),
        url: cfg.target.url.clone(),
        connections: cfg.connections,
        connected,
        failed,
        first_error,
        source_addresses: cfg.connections.div_ceil(per_source),
        connect_secs: stats::round(connect_secs),
        connects_per_sec: stats::round(connected as f64 / connect_secs.max(1e-9)),
        still_open_at_end: still_open,
        server_rss_before_kib: rss_before,
        server_rss_after_kib: rss_after,
        server_rss_per_conn_kib: per_conn,
    })
}
