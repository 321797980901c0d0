//! `rpc`: N clients, each with exactly one `echo(value)` in flight, for a fixed time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::client::{self, Target};
use crate::proto;
use crate::stats::{self, Latency};

/// The value every client echoes (about the size of a small chat message).
const VALUE: &str = r#"{"n":1,"text":"hello from the load generator"}"#;

/// How long one echo may take before the client gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The one JSON line an rpc run prints.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub proto: &'static str,
    pub url: String,
    pub clients: usize,
    pub seconds: f64,
    pub round_trips: u64,
    pub round_trips_per_sec: f64,
    pub clients_failed: usize,
    pub latency_ms: Latency,
    /// Load generator CPU use while calling (100 = one core busy).
    pub loadgen_cpu_pct: f64,
}

/// Runs `clients` echo loops against `target` for `seconds`.
pub async fn run(
    target: &Target,
    clients: usize,
    seconds: f64,
    connect_concurrency: usize,
) -> Result<Report> {
    let gate = Arc::new(Semaphore::new(connect_concurrency.max(1)));
    let mut connecting = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (target, gate) = (target.clone(), gate.clone());
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            client::connect(&target, None).await
        }));
    }
    let mut conns = Vec::with_capacity(clients);
    for (i, h) in connecting.into_iter().enumerate() {
        conns.push(
            h.await?
                .with_context(|| format!("client {i} failed to connect"))?
                .0,
        );
    }
    let start = Instant::now();
    let cpu_start = stats::self_cpu_secs();
    let end = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|ws| tokio::spawn(echo_loop(ws, target.proto, end)))
        .collect();
    let mut hist = stats::histogram();
    let mut failed = 0;
    for t in tasks {
        match t.await? {
            Ok(h) => {
                hist.add(&h).ok();
            }
            Err(_) => failed += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Report {
        scenario: "rpc",
        proto: target.proto.name(),
        url: target.url.clone(),
        clients,
        seconds,
        round_trips: hist.len(),
        round_trips_per_sec: stats::round(hist.len() as f64 / elapsed),
        clients_failed: failed,
        latency_ms: Latency::from(&hist),
        loadgen_cpu_pct: stats::round(100.0 * (stats::self_cpu_secs() - cpu_start) / elapsed),
    })
}

async fn echo_loop(
    mut ws: client::Ws,
    proto: proto::Proto,
    end: Instant,
) -> Result<Histogram<u64>> {
    let mut hist = stats::histogram();
    let mut id = 0u64;
    while Instant::now() < end {
        id += 1;
        let sent = Instant::now();
        ws.send(proto.echo(id, VALUE)?).await?;
        let answered = tokio::time::timeout(CALL_TIMEOUT, async {
            loop {
                match ws.next().await {
                    Some(Ok(m)) => {
                        if let Some(bytes) = proto::frame_bytes(&m) {
                            if let Some(reply) = proto.control_reply(bytes) {
                                ws.send(reply).await?;
                            } else if proto.is_completion(bytes) {
                                return Ok(());
                            }
                        }
                    }
                    Some(Err(e)) => return Err(anyhow::Error::from(e)),
                    None => bail!("closed by server"),
                }
            }
        })
        .await;
        answered.context("echo timed out")??;
        hist.saturating_record((sent.elapsed().as_micros() as u64).max(1));
    }
    ws.close(None).await.ok();
    Ok(hist)
}
