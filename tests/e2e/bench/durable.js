// What durable resume costs, measured in one run (a report, not a test): three `switchboard
// serve --nats` nodes on one nats-server, the chat hub loaded twice in the demo tenant: `chat`
// (durable resume on, the cluster's default) and `chatplain` (listed in
// `durable_resume_except`). Three kinds of client, each with the official JS client over
// WebSockets and JSON, spread over the three nodes:
//   - plain: no stateful reconnect;
//   - stateful: `withStatefulReconnect()` on `chatplain` (buffered and numbered, on one node);
//   - durable: `withStatefulReconnect()` on `chat` (resumes on any node).
//
//   node tests/e2e/bench/durable.js [--subscribers 90] [--messages 1000] [--window 50]
//     [--callers 12] [--seconds 5] [--idle 300] [--crowd 0]
//
// Fan-out: `--subscribers` clients of one kind; a plain sender on node 0 calls `send` (to all of
// their hub) `--messages` times, `--window` calls in flight; deliveries per second from the
// first call to the last delivery. Echo: `--callers` clients of one kind, each one `echo` at a
// time for `--seconds`; round trips per second, p50 and p99; `--crowd` idle durable clients of
// the same hub stay connected meanwhile (what a durable connection's own records cost as its
// hub holds more of them). Memory: `--idle` idle clients of
// one kind; the nodes' RSS growth per connection (after a settle). Floor: the same number of
// loops, each one JetStream round trip at a time on the cluster's nats-server (publish, ack,
// read back by an ordered consumer: what a durable completion waits for), measured by
// `host/examples/jetstream_floor.rs` when it is built (`cargo build --release --example
// jetstream_floor`); durable echo's p50 less plain echo's is then read against the floor's p50. Kinds run one after the other
// on the same nodes, each kind's clients stopped before the next; the ratios against plain are
// the figures to read (the clients share the machine with the nodes).
// Every wait is bounded; everything started is stopped at the end.

import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { benchOptions } from '../lib/bench.js';
import { startCluster } from '../lib/cluster.js';
import { REPO_ROOT, pluginWasm, withTimeout } from '../lib/server.js';

const {
  subscribers: SUBSCRIBERS,
  messages: MESSAGES,
  window: WINDOW,
  callers: CALLERS,
  seconds: SECONDS,
  idle: IDLE,
  crowd: CROWD,
} = benchOptions({ subscribers: 90, messages: 1000, window: 50, callers: 12, seconds: 5, idle: 300, crowd: 0 });
const WAIT_MS = 20_000;

const config = `
[tenants.demo]
allow_anonymous = true
durable_resume_except = ["chatplain"]

[nats]
partitions = 4
`;

const KINDS = {
  plain: { hub: 'chat', stateful: false },
  stateful: { hub: 'chatplain', stateful: true },
  durable: { hub: 'chat', stateful: true },
};

const rssOf = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : null);
const round = (x, digits = 2) => (x === null ? null : Number(x.toFixed(digits)));

async function client(node, kind, { stateful = KINDS[kind].stateful } = {}) {
  let builder = new HubConnectionBuilder()
    .withUrl(`${node.url}/hubs/demo/${KINDS[kind].hub}`, { transport: HttpTransportType.WebSockets })
    .configureLogging(LogLevel.None);
  if (stateful) builder = builder.withStatefulReconnect();
  const connection = builder.build();
  await withTimeout(connection.start(), WAIT_MS, `start a ${kind} client`);
  return connection;
}

async function clients(nodes, kind, n) {
  const out = [];
  for (let i = 0; i < n; i += 20) {
    const batch = Array.from({ length: Math.min(20, n - i) }, (_, k) => client(nodes[(i + k) % nodes.length], kind));
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

const stopAll = (list) => Promise.all(list.map((c) => withTimeout(c.stop(), WAIT_MS, 'stop').catch(() => {})));

async function fanOut(nodes, kind) {
  const subs = await clients(nodes, kind, SUBSCRIBERS);
  let got = 0;
  let last = 0;
  for (const s of subs) {
    s.on('addNewMessageToPage', () => {
      got++;
      last = performance.now();
    });
  }
  // A plain sender on the subscribers' hub.
  const sender = await client(nodes[0], kind, { stateful: false });
  const send = (m) => withTimeout(sender.invoke('send', 'bench', `m${m}`), WAIT_MS, 'send');
  // Warm-up: plugin instances, the JIT.
  for (let m = 0; m < 20; m++) await send(m);
  const warm = SUBSCRIBERS * 20;
  const deadline = Date.now() + WAIT_MS;
  while (got < warm && Date.now() < deadline) await sleep(20);
  got = 0;
  const expected = SUBSCRIBERS * MESSAGES;
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: WINDOW }, async () => {
      while (next < MESSAGES) await send(next++);
    }),
  );
  const end = Date.now() + 60_000;
  while (got < expected && Date.now() < end) await sleep(20);
  const seconds = (last - started) / 1000;
  await stopAll([...subs, sender]);
  return { deliveries: got, expected, seconds: round(seconds, 3), per_second: Math.round(got / seconds) };
}

async function echo(nodes, kind) {
  const callers = await clients(nodes, kind, CALLERS);
  for (const c of callers) for (let i = 0; i < 5; i++) await withTimeout(c.invoke('echo', 'warm'), WAIT_MS, 'echo');
  const latencies = [];
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  await Promise.all(
    callers.map(async (c) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        await withTimeout(c.invoke('echo', 'x'), WAIT_MS, 'echo');
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  await stopAll(callers);
  return {
    per_second: Math.round(latencies.length / seconds),
    p50_ms: round(percentile(latencies, 0.5), 3),
    p99_ms: round(percentile(latencies, 0.99), 3),
  };
}

async function memory(nodes, kind) {
  const before = nodes.reduce((s, n) => s + rssOf(n.pid), 0);
  const idle = await clients(nodes, kind, IDLE);
  await sleep(2_000);
  const after = nodes.reduce((s, n) => s + rssOf(n.pid), 0);
  await stopAll(idle);
  await sleep(1_000);
  return { connections: IDLE, bytes_per_connection: Math.round((after - before) / IDLE) };
}

const FLOOR_BIN = path.join(REPO_ROOT, 'target', 'release', 'examples', 'jetstream_floor');

/** The JetStream round-trip floor on `natsUrl` (null when the example is not built). */
function floor(natsUrl) {
  if (!existsSync(FLOOR_BIN)) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    execFile(FLOOR_BIN, [natsUrl, String(CALLERS), String(SECONDS)], { timeout: (SECONDS + 30) * 1000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`jetstream_floor: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

const wasm = pluginWasm('chat');
const cluster = await startCluster({ size: 3, config, serverOptions: { plugins: { 'demo/chatplain.wasm': wasm } } });
try {
  const results = {};
  for (const kind of Object.keys(KINDS)) results[kind] = { fan_out: await fanOut(cluster.nodes, kind) };
  const crowd = await clients(cluster.nodes, 'durable', CROWD);
  for (const kind of Object.keys(KINDS)) results[kind].echo = await echo(cluster.nodes, kind);
  await stopAll(crowd);
  const jetstream = await floor(cluster.nats.url);
  for (const kind of Object.keys(KINDS)) results[kind].memory = await memory(cluster.nodes, kind);
  const ratio = (kind, key) => round(results[kind][key].per_second / results.plain[key].per_second);
  console.log(
    JSON.stringify(
      {
        bench: 'durable',
        setup: { nodes: 3, nats_servers: 1, subscribers: SUBSCRIBERS, messages: MESSAGES, window: WINDOW, callers: CALLERS, seconds: SECONDS, idle: IDLE, crowd: CROWD, node: process.version },
        results,
        jetstream_floor: jetstream,
        durable_echo_p50_over_plain_vs_floor: jetstream && round((results.durable.echo.p50_ms - results.plain.echo.p50_ms) / jetstream.p50_ms),
        ratios_to_plain: {
          stateful: { fan_out: ratio('stateful', 'fan_out'), echo: ratio('stateful', 'echo') },
          durable: { fan_out: ratio('durable', 'fan_out'), echo: ratio('durable', 'echo') },
        },
      },
      null,
      1,
    ),
  );
} finally {
  await cluster.close();
}
