//! The floor under a durable connection's echo: what one JetStream round
//! trip costs on this machine, with the client the node uses. `--callers`
//! loops each publish a message to a file stream, wait for its ack, and wait
//! until an ordered consumer of the stream has read it back (as a node reads
//! back a durable completion before it sends it); round trips per second,
//! p50 and p99, as JSON. The durable bench (`tests/e2e/bench/durable.js`)
//! runs it against its own nats-server, so its echo can be read against it.
//!
//!   cargo run --release --example jetstream_floor -- NATS_URL [CALLERS] [SECONDS]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull, stream};
use futures_util::StreamExt as _;
use parking_lot::Mutex;
use tokio::sync::oneshot;

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .context("usage: jetstream_floor NATS_URL [CALLERS] [SECONDS]")?;
    let callers: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(5), |a| a.parse())?;
    let client = async_nats::connect(&url).await?;
    let js = jetstream::new(client);
    let name = format!("FLOOR_{:08x}", rand::random::<u32>());
    let subject = format!("floor.{name}");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            max_age: Duration::from_secs(60),
            ..Default::default()
        })
        .await?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let waiting: Waiting = Arc::default();
    let reader = {
        let waiting = waiting.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                let id = String::from_utf8_lossy(&message.payload).into_owned();
                if let Some(tx) = waiting.lock().remove(&id) {
                    let _ = tx.send(());
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut loops = Vec::new();
    for caller in 0..callers {
        let (js, waiting, subject) = (js.clone(), waiting.clone(), subject.clone());
        loops.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let id = format!("{caller}-{n}");
                n += 1;
                let (tx, rx) = oneshot::channel();
                waiting.lock().insert(id.clone(), tx);
                let t0 = Instant::now();
                js.publish(subject.clone(), id.into()).await?.await?;
                tokio::time::timeout(Duration::from_secs(10), rx).await??;
                latencies.push(t0.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for l in loops {
        latencies.extend(l.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    reader.abort();
    js.delete_stream(&name).await?;
    latencies.sort();
    let at = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{{\"per_second\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        (latencies.len() as f64 / elapsed).round(),
        at(0.5),
        at(0.99)
    );
    Ok(())
}
