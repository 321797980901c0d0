//! `loadgen`: load generator for Switchboard and its peers.
//!
//! Layout:
//! - `proto`: SignalR JSON / MessagePack and Engine.IO v4 framing, reduced to what is needed;
//! - `client`: connect (optionally from a chosen source address) and handshake;
//! - `fanout`: the `fanout` and `cluster` scenarios; `drive` searches the highest rate;
//! - `idle`, `rpc`: the other scenarios;
//! - `stats`: hdrhistogram latencies and /proc RSS.
//!
//! Every scenario is bounded in time and prints exactly one JSON line on stdout.

mod client;
mod fanout;
mod idle;
mod proto;
mod rpc;
mod stats;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::client::Target;
use crate::proto::Proto;

#[derive(Parser, Debug)]
#[command(
    about = "Load generator: SignalR JSON/MessagePack and Socket.IO (Engine.IO v4) over WebSocket"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// N subscribers, one publisher at a fixed rate; delivered msg/s, latency, lost, duplicated.
    Fanout(FanoutArgs),
    /// Fan-out with subscribers spread over several nodes (--url repeated), publisher on the first.
    Cluster(FanoutArgs),
    /// Finds the highest publish rate with p99 under --p99-ms and nothing lost (bounded search).
    Drive(DriveArgs),
    /// N idle connections held; server RSS per connection and connect rate.
    Idle(IdleArgs),
    /// N clients, each with one `echo` in flight; round trips/s and latency.
    Rpc(RpcArgs),
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Server URL: http://127.0.0.1:PORT/hubs/demo/chat for SignalR, http://127.0.0.1:PORT for
    /// Socket.IO. Repeat (or comma-separate) for several nodes.
    #[arg(long = "url", alias = "urls", required = true, value_delimiter = ',')]
    urls: Vec<String>,
    /// Wire protocol.
    #[arg(long, value_enum, default_value = "json")]
    proto: Proto,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
}

#[derive(Args, Debug, Clone)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Subscribers.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Publish rate, messages per second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Seconds to wait for stragglers after the last publish.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
}

#[derive(Args, Debug, Clone)]
struct DriveArgs {
    #[command(flatten)]
    fanout: FanoutArgs,
    /// Lowest rate tried.
    #[arg(long, default_value_t = 10)]
    min_rate: u64,
    /// Highest rate tried.
    #[arg(long, default_value_t = 20_000)]
    max_rate: u64,
    /// Maximum number of runs in the search.
    #[arg(long, default_value_t = 8)]
    steps: usize,
    /// p99 bound in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    p99_ms: f64,
    /// Runs a failed rate once more before counting it as failed: on a shared machine one
    /// stall of the machine (not of the server) otherwise ends the search. Applies to every
    /// server alike; both runs are reported. 0 turns it off.
    #[arg(long, default_value_t = 1)]
    retries: usize,
}

#[derive(Args, Debug, Clone)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Seconds to hold them after the last one opened (RSS is read at the end).
    #[arg(long, default_value_t = 5.0)]
    hold: f64,
    /// Connections per 127.0.0.x source address.
    #[arg(long, default_value_t = 25_000)]
    per_source: usize,
    /// Server process id, for RSS from /proc/<pid>/status.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Upper bound on the connect phase, seconds.
    #[arg(long, default_value_t = 120.0)]
    connect_deadline: f64,
}

#[derive(Args, Debug, Clone)]
struct RpcArgs {
    #[command(flatten)]
    common: Common,
    /// Clients, each with one echo in flight.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Seconds of calling.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let line = rt.block_on(run(cli.scenario))?;
    println!("{line}");
    Ok(())
}

async fn targets(common: &Common) -> Result<Vec<Target>> {
    let mut out = Vec::with_capacity(common.urls.len());
    for url in &common.urls {
        out.push(Target::resolve(url, common.proto).await?);
    }
    Ok(out)
}

async fn fanout_config(args: &FanoutArgs) -> Result<fanout::Config> {
    Ok(fanout::Config {
        targets: targets(&args.common).await?,
        subscribers: args.subscribers,
        rate: args.rate,
        seconds: args.seconds,
        payload: args.payload,
        drain: args.drain,
        connect_concurrency: args.common.connect_concurrency,
    })
}

async fn run(scenario: Scenario) -> Result<String> {
    Ok(match scenario {
        Scenario::Fanout(args) => {
            let cfg = fanout_config(&args).await?;
            serde_json::to_string(&fanout::run(&cfg, "fanout").await?)?
        }
        Scenario::Cluster(args) => {
            if args.common.urls.len() < 2 {
                bail!("cluster needs two or more --url");
            }
            let cfg = fanout_config(&args).await?;
            serde_json::to_string(&fanout::run(&cfg, "cluster").await?)?
        }
        Scenario::Drive(args) => serde_json::to_string(&drive(&args).await?)?,
        Scenario::Idle(args) => {
            let target = targets(&args.common).await?.remove(0);
            let cfg = idle::Config {
                target,
                connections: args.connections,
                hold: args.hold,
                per_source: args.per_source,
                connect_concurrency: args.common.connect_concurrency,
                server_pid: args.server_pid,
                connect_deadline: args.connect_deadline,
            };
            serde_json::to_string(&idle::run(&cfg).await?)?
        }
        Scenario::Rpc(args) => {
            let target = targets(&args.common).await?.remove(0);
            let report = rpc::run(
                &target,
                args.clients,
                args.seconds,
                args.common.connect_concurrency,
            )
            .await?;
            serde_json::to_string(&report)?
        }
    })
}

/// One step of the search, as reported.
#[derive(Debug, Serialize)]
struct Step {
    rate: u64,
    pass: bool,
    delivered_per_sec: f64,
    p99_ms: f64,
    lost: u64,
    loadgen_cpu_pct: f64,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct DriveReport {
    scenario: &'static str,
    proto: &'static str,
    urls: Vec<String>,
    subscribers: usize,
    payload: usize,
    seconds_per_step: f64,
    p99_bound_ms: f64,
    /// Highest publish rate that passed (0 if none did).
    best_rate: u64,
    /// Delivered msg/s at that rate (the headline figure).
    best_delivered_per_sec: f64,
    best_p99_ms: f64,
    /// Load generator CPU use at that rate (100 = one core busy).
    best_loadgen_cpu_pct: f64,
    /// Whether some step failed; if not, `best_rate` is only a lower bound (the search ran out of
    /// steps or reached --max-rate first).
    limit_found: bool,
    steps: Vec<Step>,
}

/// Doubles the rate from --min-rate until a run fails (or --max-rate), then bisects between the
/// last pass and the first failure; at most --steps runs in all. A rate fails when --retries + 1
/// runs in a row fail at it.
async fn drive(args: &DriveArgs) -> Result<DriveReport> {
    let mut cfg = fanout_config(&args.fanout).await?;
    let mut steps = Vec::new();
    let (mut lo, mut hi): (u64, Option<u64>) = (0, None);
    let mut best: Option<(u64, f64, f64, f64)> = None;
    let mut rate = args.min_rate.max(1);
    let mut retried = 0;
    for _ in 0..args.steps.max(1) {
        cfg.rate = rate;
        let step = match fanout::run(&cfg, "fanout").await {
            Ok(r) => {
                let pass = r.passes(args.p99_ms);
                if pass && best.is_none_or(|b| rate > b.0) {
                    best = Some((
                        rate,
                        r.delivered_per_sec,
                        r.latency_ms.p99,
                        r.loadgen_cpu_pct,
                    ));
                }
                Step {
                    rate,
                    pass,
                    delivered_per_sec: r.delivered_per_sec,
                    p99_ms: r.latency_ms.p99,
                    lost: r.lost,
                    loadgen_cpu_pct: r.loadgen_cpu_pct,
                    error: None,
                }
            }
            Err(e) => Step {
                rate,
                pass: false,
                delivered_per_sec: 0.0,
                p99_ms: 0.0,
                lost: 0,
                loadgen_cpu_pct: 0.0,
                error: Some(format!("{e:#}")),
            },
        };
        if !step.pass && retried < args.retries {
            retried += 1;
            steps.push(step);
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        }
        retried = 0;
        let pass = step.pass;
        steps.push(step);
        if pass {
            lo = rate;
        } else {
            hi = Some(rate);
        }
        // Let the server drain before the next step.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let next = match hi {
            None if rate >= args.max_rate => break,
            None => (rate * 2).min(args.max_rate),
            Some(h) => {
                if h <= lo + (lo / 20).max(1) {
                    break; // within 5%: good enough
                }
                (lo + h) / 2
            }
        };
        if next == 0 {
            break;
        }
        rate = next;
    }
    let (best_rate, best_delivered, best_p99, best_cpu) = best.unwrap_or((0, 0.0, 0.0, 0.0));
    Ok(DriveReport {
        scenario: "drive",
        proto: cfg.targets[0].proto.name(),
        urls: cfg.targets.iter().map(|t| t.url.clone()).collect(),
        subscribers: cfg.subscribers,
        payload: cfg.payload,
        seconds_per_step: cfg.seconds,
        p99_bound_ms: args.p99_ms,
        best_rate,
        best_delivered_per_sec: best_delivered,
        best_p99_ms: best_p99,
        best_loadgen_cpu_pct: best_cpu,
        limit_found: hi.is_some(),
        steps,
    })
}
