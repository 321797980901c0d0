//! `fanout` and `cluster`: N subscribers, one publisher calling `send(name, message)` at a fixed
//! rate. Every message carries `~~<seq>~<send time µs>~` padded to the payload size, so a
//! subscriber can find it in any protocol's frame without decoding it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use memchr::memmem;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::{MissedTickBehavior, sleep_until};

use crate::client::{self, Target};
use crate::proto;
use crate::stats::{self, Latency};

/// Upper bound on messages one run publishes (keeps the per-subscriber bitmaps small).
const MAX_MESSAGES: u64 = 5_000_000;

/// One fan-out run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Servers; subscribers are spread over them round-robin, the publisher uses the first.
    pub targets: Vec<Target>,
    /// Number of subscribers.
    pub subscribers: usize,
    /// Messages per second the publisher sends.
    pub rate: u64,
    /// How long the publisher sends.
    pub seconds: f64,
    /// Size of the message string in bytes.
    pub payload: usize,
    /// How long subscribers wait for stragglers after the publisher stops.
    pub drain: f64,
    /// Connects in flight at once.
    pub connect_concurrency: usize,
}

/// The one JSON line a fan-out run prints.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub proto: &'static str,
    pub urls: Vec<String>,
    pub subscribers: usize,
    pub rate: u64,
    pub seconds: f64,
    pub payload: usize,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub delivered_per_sec: f64,
    pub lost: u64,
    pub duplicated: u64,
    pub subscribers_failed: usize,
    pub latency_ms: Latency,
    /// Delivered per subscriber node (same order as `urls`).
    pub delivered_by_node: Vec<u64>,
    /// Load generator CPU use during the run (100 = one core busy); near the cores it may use,
    /// the figures are the load generator's limit rather than the server's.
    pub loadgen_cpu_pct: f64,
}

impl Report {
    /// Whether the run meets the driver's bar: nothing lost, p99 under `p99_ms`.
    pub fn passes(&self, p99_ms: f64) -> bool {
        self.lost == 0 && self.subscribers_failed == 0 && self.latency_ms.p99 < p99_ms
    }
}

struct Shared {
    epoch: Instant,
    sent: AtomicU64,
    done: AtomicBool,
    /// Every subscriber's latencies. One histogram rather than one per subscriber: a thousand
    /// of them (170 KB each) made recording a latency a cache and TLB miss, the load
    /// generator's largest cost after reading the frames (`perf`, fan-out at 1000 msg/s).
    hist: Mutex<Histogram<u64>>,
}

impl Shared {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            sent: AtomicU64::new(0),
            done: AtomicBool::new(false),
            hist: Mutex::new(stats::histogram()),
        }
    }
}

struct SubResult {
    node: usize,
    unique: u64,
    duplicated: u64,
}

/// Runs one fan-out and returns its report.
pub async fn run(cfg: &Config, scenario: &'static str) -> Result<Report> {
    if cfg.targets.is_empty() {
        bail!("no server URL");
    }
    let cpu_start = (Instant::now(), stats::self_cpu_secs());
    let max_msgs = ((cfg.rate as f64 * cfg.seconds).ceil() as u64 + 1).min(MAX_MESSAGES);
    let shared = Arc::new(Shared::new());

    // Connect every subscriber before the publisher starts.
    let gate = Arc::new(Semaphore::new(cfg.connect_concurrency.max(1)));
    let mut connecting = Vec::with_capacity(cfg.subscribers);
    for i in 0..cfg.subscribers {
        let node = i % cfg.targets.len();
        let target = cfg.targets[node].clone();
        let gate = gate.clone();
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            client::connect(&target, None).await
        }));
    }
    let mut subs = Vec::with_capacity(cfg.subscribers);
    for (i, handle) in connecting.into_iter().enumerate() {
        let (ws, leftover) = handle
            .await?
            .with_context(|| format!("subscriber {i} failed to connect"))?;
        subs.push((i % cfg.targets.len(), ws, leftover));
    }

    let publish_end = Instant::now() + Duration::from_secs_f64(cfg.seconds);
    let hard_end = publish_end + Duration::from_secs_f64(cfg.drain);
    let mut tasks = Vec::with_capacity(subs.len());
    for (node, ws, leftover) in subs {
        let shared = shared.clone();
        let proto = cfg.targets[node].proto;
        tasks.push(tokio::spawn(subscriber(
            node, ws, leftover, proto, shared, max_msgs, hard_end,
        )));
    }

    let (publish_secs, publisher_conn) = spawn_publisher(publish(
        cfg.targets[0].clone(),
        cfg.rate,
        cfg.payload,
        max_msgs,
        publish_end,
        hard_end,
        shared.clone(),
    ))
    .await?;

    let mut delivered = 0;
    let mut duplicated = 0;
    let mut failed = 0;
    let mut by_node = vec![0u64; cfg.targets.len()];
    for task in tasks {
        match task.await? {
            Ok(r) => {
                delivered += r.unique;
                duplicated += r.duplicated;
                by_node[r.node] += r.unique;
            }
            Err(_) => failed += 1,
        }
    }
    drop(publisher_conn);
    let sent = shared.sent.load(Ordering::Relaxed);
    let expected = sent * cfg.subscribers as u64;
    Ok(Report {
        scenario,
        proto: cfg.targets[0].proto.name(),
        urls: cfg.targets.iter().map(|t| t.url.clone()).collect(),
        subscribers: cfg.subscribers,
        rate: cfg.rate,
        seconds: cfg.seconds,
        payload: cfg.payload,
        sent,
        expected,
        delivered,
        delivered_per_sec: stats::round(delivered as f64 / publish_secs.max(1e-9)),
        lost: expected.saturating_sub(delivered),
        duplicated,
        subscribers_failed: failed,
        latency_ms: Latency::from(&*shared.hist.lock().unwrap_or_else(|e| e.into_inner())),
        delivered_by_node: by_node,
        loadgen_cpu_pct: stats::round(
            100.0 * (stats::self_cpu_secs() - cpu_start.1) / cpu_start.0.elapsed().as_secs_f64(),
        ),
    })
}

/// Runs `publisher` (the future of [`publish`]) on a thread of its own, so that it publishes on
/// time however busy the subscribers keep the load generator: on the subscribers' runtime its
/// ticks wait behind their reads, and it then sends what fell due in one burst, so the server's
/// input would depend on how much work its frames make for the subscribers. Returns the seconds
/// spent publishing and a guard that keeps the publisher's connection open until dropped.
async fn spawn_publisher(
    publisher: impl Future<Output = Result<(f64, tokio::task::JoinHandle<()>)>> + Send + 'static,
) -> Result<(f64, tokio::sync::oneshot::Sender<()>)> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    done_tx.send(Err(anyhow::Error::from(e))).ok();
                    return;
                }
            };
            rt.block_on(async move {
                match publisher.await {
                    Ok((secs, conn)) => {
                        done_tx.send(Ok(secs)).ok();
                        // Held open (and read) until the subscribers are done.
                        tokio::select! {
                            _ = conn => {}
                            _ = close_rx => {}
                        }
                    }
                    Err(e) => {
                        done_tx.send(Err(e)).ok();
                    }
                }
            });
        })?;
    let secs = done_rx.await.context("publisher thread ended")??;
    Ok((secs, close_tx))
}

/// Sends `rate` messages a second until `publish_end`, draining (and ignoring) what the server
/// sends back to the publisher's own connection. Returns the seconds spent publishing and a task
/// that holds the connection open until the drain deadline (abort it to close earlier).
async fn publish(
    target: Target,
    rate: u64,
    payload: usize,
    max_msgs: u64,
    publish_end: Instant,
    hard_end: Instant,
    shared: Arc<Shared>,
) -> Result<(f64, tokio::task::JoinHandle<()>)> {
    let (ws, _) = client::connect(&target, None).await.context("publisher")?;
    let (mut tx, mut rx) = ws.split();
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel(16);
    let proto = target.proto;
    // The publisher receives its own broadcasts; read them so its socket never stalls.
    let reader = tokio::spawn(async move {
        let deadline = tokio::time::Instant::from_std(hard_end);
        loop {
            tokio::select! {
                msg = rx.next() => match msg {
                    Some(Ok(m)) => {
                        if let Some(reply) = proto::frame_bytes(&m).and_then(|b| proto.control_reply(b)) {
                            pong_tx.send(reply).await.ok();
                        }
                    }
                    _ => break,
                },
                _ = sleep_until(deadline) => break,
            }
        }
    });
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut seq = 0u64;
    let mut msg = String::with_capacity(payload + 32);
    while Instant::now() < publish_end && seq < max_msgs {
        tick.tick().await;
        while let Ok(reply) = pong_rx.try_recv() {
            tx.feed(reply).await?;
        }
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(max_msgs);
        if due <= seq {
            continue;
        }
        while seq < due {
            msg.clear();
            let ts = shared.epoch.elapsed().as_micros();
            use std::fmt::Write as _;
            write!(msg, "~~{seq}~{ts}~").ok();
            while msg.len() < payload {
                msg.push('x');
            }
            tx.feed(proto.send("pub", &msg)).await?;
            seq += 1;
        }
        tx.flush().await?;
        shared.sent.store(seq, Ordering::Relaxed);
    }
    let elapsed = start.elapsed().as_secs_f64();
    shared.sent.store(seq, Ordering::Relaxed);
    shared.done.store(true, Ordering::Release);
    // Keep the connection open (and read) until the subscribers are done; the caller aborts it.
    let holder = tokio::spawn(async move {
        reader.await.ok();
        tx.close().await.ok();
    });
    Ok((elapsed, holder))
}

async fn subscriber(
    node: usize,
    ws: client::Ws,
    leftover: Vec<u8>,
    proto: proto::Proto,
    shared: Arc<Shared>,
    max_msgs: u64,
    hard_end: Instant,
) -> Result<SubResult> {
    let (mut tx, mut rx) = ws.split();
    let mut seen = vec![0u64; max_msgs.div_ceil(64) as usize];
    let mut res = SubResult {
        node,
        unique: 0,
        duplicated: 0,
    };
    scan(&leftover, &shared, &mut seen, &mut res);
    // One timer for the run, not a new one per frame.
    let deadline = sleep_until(tokio::time::Instant::from_std(hard_end));
    tokio::pin!(deadline);
    let mut check = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(m)) => {
                    if let Some(bytes) = proto::frame_bytes(&m) {
                        if let Some(reply) = proto.control_reply(bytes) {
                            tx.send(reply).await?;
                        } else {
                            scan(bytes, &shared, &mut seen, &mut res);
                        }
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => bail!("closed by server"),
            },
            _ = check.tick() => {}
            _ = &mut deadline => break,
        }
        if shared.done.load(Ordering::Acquire) && res.unique >= shared.sent.load(Ordering::Relaxed)
        {
            break;
        }
    }
    tx.close().await.ok();
    Ok(res)
}

/// Finds every `~~seq~ts~` marker in a frame and records it.
fn scan(frame: &[u8], shared: &Shared, seen: &mut [u64], res: &mut SubResult) {
    let now = shared.epoch.elapsed().as_micros() as u64;
    let mut hist = shared.hist.lock().unwrap_or_else(|e| e.into_inner());
    static MARKERS: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"~~"));
    let markers = &*MARKERS;
    let mut i = 0;
    // Found with memmem (SIMD): a byte-at-a-time loop over the frames was a quarter of the
    // load generator's time at 700,000 deliveries a second.
    while let Some(found) = frame.get(i..).and_then(|rest| markers.find(rest)) {
        i += found;
        let (seq, after_seq) = digits(frame, i + 2);
        let (ts, after_ts) = digits(frame, after_seq + 1);
        if after_seq > i + 2 && after_ts > after_seq + 1 {
            let (word, bit) = ((seq / 64) as usize, seq % 64);
            if let Some(w) = seen.get_mut(word) {
                if *w & (1 << bit) != 0 {
                    res.duplicated += 1;
                } else {
                    *w |= 1 << bit;
                    res.unique += 1;
                    hist.saturating_record(now.saturating_sub(ts).max(1));
                }
            }
            i = after_ts;
            continue;
        }
        i += 1;
    }
}

fn digits(buf: &[u8], mut i: usize) -> (u64, usize) {
    let mut n = 0u64;
    while let Some(&b) = buf.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.wrapping_mul(10).wrapping_add((b - b'0') as u64);
        i += 1;
    }
    (n, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_markers() {
        let shared = Shared::new();
        let mut seen = vec![0u64; 1];
        let mut res = SubResult {
            node: 0,
            unique: 0,
            duplicated: 0,
        };
        scan(
            b"{\"arguments\":[\"pub\",\"~~3~0~xx\"]}\x1e{\"arguments\":[\"pub\",\"~~3~0~\"]}\x1e~~5~1~",
            &shared,
            &mut seen,
            &mut res,
        );
        assert_eq!((res.unique, res.duplicated), (2, 1));
        assert_eq!(shared.hist.lock().expect("not poisoned").len(), 2);
    }
}
