// Cross-node delivery with the official client: three `switchboard serve --nats` nodes on one
// nats-server (loopback), next to one node alone. Not part of the test suite.
//
//   node tests/e2e/bench/cluster.js [--latency 2000] [--messages 20000]
//
// Latency: one message at a time, `sendToUser` from a client on node 1 to a user on node 2
// (alone: both on the one node); one-way time from send to receipt (one process, one clock).
// Throughput: `sendToUser` as fast as the sender can (at most 2000 unreceived), to a user with connections on nodes 2 and
// 3 (alone: two on the one node); deliveries per second. CPU: utime+stime from /proc of the
// switchboard processes (and of nats-server) over the throughput phase, per delivery.
// Forwarding: echo round trips over each transport through a round-robin balancer
// (lib/balancer.js) in front of one node (no forwarding) and in front of two (each request after
// negotiate alternates between the owner and a node that forwards it).
// Prints one JSON line per setup. Every wait is bounded; every process is stopped at the end.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { connect, inbox } from '../lib/client.js';
import { startBalancer } from '../lib/balancer.js';
import { connectHub } from '../lib/transports.js';
import { startNats } from '../lib/nats.js';
import { SWITCHBOARD_BIN, mintToken, withTimeout } from '../lib/server.js';

const { values } = parseArgs({
  options: { latency: { type: 'string', default: '2000' }, messages: { type: 'string', default: '20000' } },
});
const LATENCY = Number(values.latency);
const MESSAGES = Number(values.messages);
const TICKS = 100; // USER_HZ on Linux
const WINDOW = 1000;

const children = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

function startNode(args) {
  const child = spawn(SWITCHBOARD_BIN, ['serve', '--listen', '127.0.0.1:0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', RUST_LOG: 'warn,switchboard::server=info' },
  });
  children.push(child);
  let out = '';
  return withTimeout(
    new Promise((resolve) => {
      const onData = (d) => {
        out += d;
        const m = out.match(/listening\b.*?addr="?(127\.0\.0\.1:\d+)/);
        if (m) resolve({ url: `http://${m[1]}`, pid: child.pid });
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
    }),
    30_000,
    'node start',
  );
}

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const hub = (node) => `${node.url}/hubs/demo/chat`;
const t = { after: () => {} };

async function waitReady(node) {
  const poll = (async () => {
    while ((await fetch(`${node.url}/readyz`).then((r) => r.status, () => 0)) !== 200) await new Promise((r) => setTimeout(r, 50));
  })();
  await withTimeout(poll, 20_000, 'ready');
}

async function measure(label, senderNode, receiverNodes, pids, natsPid) {
  const user = `bench-${Math.random().toString(36).slice(2)}`;
  const token = await mintToken({ user });
  const receivers = [];
  for (const node of receiverNodes) {
    const c = await connect(t, hub(node), { token });
    receivers.push({ c, box: inbox(c, 'addNewMessageToPage') });
  }
  const sender = await connect(t, hub(senderNode));
  const first = receivers[0];

  // Warm-up, and a barrier: every receiver is reachable.
  await sender.invoke('sendToUser', user, 'warm');
  for (const r of receivers) await r.box.next((a) => a[1] === 'warm', 10_000);

  const lat = [];
  for (let i = 0; i < LATENCY; i++) {
    const before = first.box.messages.length;
    const t0 = performance.now();
    sender.send('sendToUser', user, `l${i}`);
    await first.box.next(() => first.box.messages.length > before, 10_000);
    lat.push(performance.now() - t0);
  }
  lat.sort((a, b) => a - b);

  for (const r of receivers) await r.box.next(() => r.box.messages.length >= 1 + LATENCY, 10_000);
  const counts = receivers.map((r) => r.box.messages.length);
  const cpu0 = pids.map(cpuTicks);
  const nats0 = natsPid ? cpuTicks(natsPid) : 0;
  const t0 = performance.now();
  // Windows of WINDOW messages in flight, so no receiver's queue (4096) overflows.
  for (let i = 0; i < MESSAGES; i++) {
    sender.send('sendToUser', user, `t${i}`);
    if ((i + 1) % WINDOW === 0) {
      const want = i + 1 - WINDOW;
      await Promise.all(receivers.map((r, k) => r.box.next(() => r.box.messages.length >= counts[k] + want, 60_000)));
    }
  }
  await Promise.all(
    receivers.map((r, k) => r.box.next(() => r.box.messages.length >= counts[k] + MESSAGES, 120_000)),
  );
  const secs = (performance.now() - t0) / 1000;
  const cpuMs = (pids.map(cpuTicks).reduce((a, b) => a + b, 0) - cpu0.reduce((a, b) => a + b, 0)) * (1000 / TICKS);
  const natsMs = natsPid ? (cpuTicks(natsPid) - nats0) * (1000 / TICKS) : 0;
  const deliveries = MESSAGES * receivers.length;
  // In order, no duplicates.
  for (const [k, r] of receivers.entries()) {
    const got = r.box.messages.slice(counts[k]).map((m) => m[1]);
    if (got.length !== MESSAGES || got.some((v, i) => v !== `t${i}`)) throw new Error(`${label}: out of order or duplicated`);
  }
  await Promise.all([sender, ...receivers.map((r) => r.c)].map((c) => c.stop()));
  return {
    setup: label,
    latency_ms: { p50: +pct(lat, 50).toFixed(3), p99: +pct(lat, 99).toFixed(3), samples: lat.length },
    throughput: { messages: MESSAGES, receivers: receivers.length, deliveries_per_s: Math.round(deliveries / secs) },
    cpu_us_per_delivery: { switchboard: +((cpuMs * 1000) / deliveries).toFixed(2), nats_server: +((natsMs * 1000) / deliveries).toFixed(2) },
  };
}

/** p50/p99 of `echo` round trips over `transport`, through a balancer in front of `nodes`. */
async function echoThrough(nodes, transport, n = 500) {
  const balancer = await startBalancer(nodes.map((node) => ({ port: Number(new URL(node.url).port) })));
  try {
    const c = await connectHub(t, `${balancer.url}/hubs/demo/chat`, { transport });
    const rtt = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await withTimeout(c.invoke('echo', i), 10_000, 'echo');
      rtt.push(performance.now() - t0);
    }
    await c.stop();
    rtt.sort((a, b) => a - b);
    return { p50: +pct(rtt, 50).toFixed(3), p99: +pct(rtt, 99).toFixed(3) };
  } finally {
    await balancer.close();
  }
}

const nats = await startNats();
try {
  const natsPid = nats.pid();
  const alone = await startNode([]);
  console.log(JSON.stringify(await measure('one node (memory backplane)', alone, [alone, alone], [alone.pid], 0)));
  const nodes = [];
  for (let i = 0; i < 3; i++) nodes.push(await startNode(['--nats', nats.url]));
  await Promise.all(nodes.map(waitReady));
  console.log(
    JSON.stringify(await measure('three nodes (NATS, 4 partitions)', nodes[0], [nodes[1], nodes[2]], nodes.map((n) => n.pid), natsPid)),
  );
  for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
    const direct = await echoThrough([nodes[0]], transport);
    const forwarded = await echoThrough([nodes[0], nodes[1]], transport);
    console.log(JSON.stringify({ setup: `echo via a round-robin balancer, ${transport}`, one_node_ms: direct, two_nodes_forwarding_ms: forwarded }));
  }
} finally {
  children.forEach((c) => c.kill('SIGTERM'));
  await nats.close();
}
process.exit(0);
