// REST API sends to a user on one node, received by the official client: sends per second
// (WINDOW requests in flight over node's fetch, keep-alive) and the latency from the POST to
// the client's receipt (one send at a time). Not part of the test suite. Prints one JSON line.
//
//   node tests/e2e/bench/rest.js [--seconds 5] [--window 8] [--senders 2] [--auth key|token] [--url http://127.0.0.1:5000]
//
// Without --url it starts its own server (SWITCHBOARD_BIN, default target/release/switchboard,
// built-in config: tenant `demo` and its public development API key) on 127.0.0.1 and stops it
// at the end. With --url the node must use the built-in config. Bounded in time and count.

import { createHmac } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { benchOptions } from '../lib/bench.js';
import { buildConnection } from '../lib/client.js';
import { hubUrl, mintToken, startServer, withTimeout } from '../lib/server.js';

const values = benchOptions({ seconds: 5, window: 8, auth: 'key', senders: 2, url: undefined });
const { seconds, window, senders } = values;
const MAX_SENDS = 5_000_000;
const DEMO_API_KEY = 'switchboard-demo-api-key-not-secret';
const USER = 'bench-user';

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const round = (x) => (x === null ? null : Math.round(x * 1000) / 1000);

/** An HS256 API token for `aud`, valid for a minute. */
function apiToken(aud) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ aud, exp: Math.floor(Date.now() / 1000) + 60 })}`;
  return `${body}.${createHmac('sha256', DEMO_API_KEY).update(body).digest('base64url')}`;
}

const server = values.url ? undefined : await startServer();
const base = values.url ?? server.url;
const sendUrl = `${base}/api/v1/tenants/demo/hubs/chat/users/${USER}/:send`;
const headers = { 'content-type': 'application/json' };
if (values.auth === 'token') headers.authorization = `Bearer ${apiToken(sendUrl)}`;
else headers['x-api-key'] = DEMO_API_KEY;

const connection = buildConnection(hubUrl({ url: base }, 'demo', 'chat'), {
  token: await mintToken({ user: USER }),
});
let received = 0;
const waiting = new Map(); // seq -> resolve
connection.on('tick', (seq) => {
  received++;
  const resolve = waiting.get(seq);
  if (resolve) {
    waiting.delete(seq);
    resolve(performance.now());
  }
});
let closedWith;
connection.onclose((error) => {
  closedWith = error?.message ?? 'closed';
});

async function post(seq) {
  const response = await fetch(sendUrl, {
    method: 'POST',
    headers,
    body: JSON.stringify({ target: 'tick', arguments: [seq, 'hello from the bench'] }),
    signal: AbortSignal.timeout(10_000),
  });
  await response.arrayBuffer();
  if (response.status !== 202) throw new Error(`POST answered ${response.status}`);
}

// A sender thread: WINDOW/SENDERS fetch loops until the deadline; posts back how many it sent.
const SENDER = `
const { parentPort, workerData: w } = require('node:worker_threads');
(async () => {
  let sent = 0;
  const deadline = Date.now() + w.ms;
  const loop = async () => {
    while (Date.now() < deadline && sent < w.max) {
      const seq = -1 - w.index - w.threads * sent++;
      const r = await fetch(w.url, { method: 'POST', headers: w.headers,
        body: JSON.stringify({ target: 'tick', arguments: [seq, 'hello from the bench'] }),
        signal: AbortSignal.timeout(10000) });
      await r.arrayBuffer();
      if (r.status !== 202) throw new Error('POST answered ' + r.status);
    }
  };
  await Promise.all(Array.from({ length: w.window }, loop));
  parentPort.postMessage(sent);
})().catch((e) => { parentPort.postMessage({ error: String(e) }); });
`;

/**
 * SENDERS threads with WINDOW requests in flight in all, posting until the deadline (the
 * receiving client has this thread to itself); then waits (bounded) for the client to get them all.
 */
async function throughput(forSeconds) {
  const before = received;
  const started = performance.now();
  const counts = await Promise.all(
    Array.from({ length: senders }, (_, index) => {
      const worker = new Worker(SENDER, {
        eval: true,
        workerData: {
          url: sendUrl,
          headers,
          ms: forSeconds * 1000,
          max: MAX_SENDS,
          index,
          threads: senders,
          window: Math.max(1, Math.round(window / senders)),
        },
      });
      return withTimeout(
        new Promise((resolve, reject) => {
          worker.once('message', (m) => (typeof m === 'number' ? resolve(m) : reject(new Error(m.error))));
          worker.once('error', reject);
        }),
        forSeconds * 1000 + 15_000,
        'sender thread',
      ).finally(() => worker.terminate());
    }),
  );
  const sent = counts.reduce((a, b) => a + b, 0);
  const postedIn = (performance.now() - started) / 1000;
  const drainDeadline = performance.now() + 10_000;
  while (received - before < sent && performance.now() < drainDeadline && !closedWith) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const allIn = (performance.now() - started) / 1000;
  return {
    sender_threads: senders,
    in_flight: Math.max(1, Math.round(window / senders)) * senders,
    sends: sent,
    received: received - before,
    seconds: round(postedIn),
    sends_per_second: Math.round(sent / postedIn),
    received_per_second: Math.round((received - before) / allIn),
  };
}

/** One send at a time: POST start to the client's receipt. */
async function latency(forSeconds) {
  const samples = [];
  const deadline = performance.now() + forSeconds * 1000;
  let seq = 0;
  while (performance.now() < deadline && seq < MAX_SENDS) {
    seq++;
    const got = new Promise((resolve) => waiting.set(seq, resolve));
    const t0 = performance.now();
    await post(seq);
    const t1 = await withTimeout(got, 5_000, `message ${seq}`);
    samples.push(t1 - t0);
  }
  samples.sort((a, b) => a - b);
  return {
    sends: samples.length,
    p50_ms: round(percentile(samples, 50)),
    p90_ms: round(percentile(samples, 90)),
    p99_ms: round(percentile(samples, 99)),
    max_ms: round(samples[samples.length - 1] ?? null),
  };
}

try {
  await withTimeout(connection.start(), 10_000, 'start');
  await throughput(Math.min(1, seconds)); // warm-up
  await latency(Math.min(1, seconds));
  const pipelined = await throughput(seconds);
  const sequential = await latency(seconds);
  console.log(
    JSON.stringify({
      bench: 'rest-send-to-user',
      auth: values.auth === 'token' ? 'bearer HS256 token' : 'X-Api-Key',
      http_client: `node ${process.version} fetch (keep-alive)`,
      receiver: '@microsoft/signalr over WebSockets, json',
      throughput: pipelined,
      latency_post_to_receipt: sequential,
      connection_closed: closedWith ?? null,
    }),
  );
} finally {
  await connection.stop();
  await server?.stop();
}
