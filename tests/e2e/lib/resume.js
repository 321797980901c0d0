// The harness of the durable-resume runs (tests/e2e/resume-kill.test.js and
// tests/e2e/bench/resume-kill.js): a cluster behind a real balancer, official JS clients with
// `withStatefulReconnect()` (half JSON, half MessagePack), each in a group of its own, numbered
// streams to every group from the REST API (through the balancer) and from hub senders pinned
// to each node, and invocations in flight; then checks of what every client received.
//
// A message is `addNewMessageToPage(src, "n|t")`: `src` names the stream ('rest', 'hub0', ...),
// `n` counts per (stream, client) from 1, `t` is when it was sent (ms). A send is *acked* when
// the REST API answered 202 or the hub invocation completed; only acked sends must arrive.

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';
import { WAIT_MS } from './client.js';
import { metricSum, startCluster } from './cluster.js';
import { BALANCERS } from './lb.js';
import { unique, withTimeout } from './server.js';

export const MESSAGE = 'addNewMessageToPage';
export const API_KEY = 'resume-api-key-0123456789';
/** The start of the error of an invocation that was running on a node that died. */
export const OUTCOME_UNKNOWN = 'Invocation outcome unknown';
/** The start of the Close error of a connection that could not be resumed. */
export const UNRECOVERABLE = 'The connection could not be resumed';
/** How long one invocation may take before it counts as hung. */
export const SETTLE_MS = 10_000;

/**
 * The nodes' config: the demo tenant with an API key, a 15 s disconnect timeout, a Ping every
 * 2 s (the clients' server timeout is 8 s, so a paused node is noticed), a 5 s registry
 * TTL, durable resume on (the default; off when `durable` is false). `maxAgeSecs` is the backplane streams' retention; `extra` more TOML
 * for `[nats]`.
 */
export function resumeConfig({ maxAgeSecs = 600, replicas = 1, durable = true, extra = '' } = {}) {
  return `
disconnect_timeout_secs = 15
keep_alive_secs = 2

[tenants.demo]
allow_anonymous = true
api_keys = ["${API_KEY}"]

[nats]
partitions = 4
registry_ttl_secs = 5
replicas = ${replicas}
max_age_secs = ${maxAgeSecs}
durable_resume = ${durable}
${extra}
`;
}

/**
 * A WebSocket client of the hub at `url` with stateful reconnect (and automatic reconnect after
 * 0, 200, 500 and 1000 ms should a resume fail), stopped after test `t`; `reconnecting()` counts
 * its onreconnecting events, each a resume that did not succeed.
 */
export function statefulReceiver(t, url) {
  const connection = new HubConnectionBuilder()
    .withUrl(url, { transport: HttpTransportType.WebSockets })
    .withStatefulReconnect()
    .withAutomaticReconnect([0, 200, 500, 1000])
    .configureLogging(LogLevel.None)
    .build();
  let reconnecting = 0;
  connection.onreconnecting(() => reconnecting++);
  t.after(() => withTimeout(connection.stop(), WAIT_MS, 'stop receiver'));
  return { connection, reconnecting: () => reconnecting };
}

/** The node tag of a connection id or token (`….{node}`). */
export const tagOf = (id) => id.slice(id.lastIndexOf('.') + 1);

/**
 * NATS (`natsServers`), `size` nodes with `config`, and `balancer` ('haproxy' or 'nginx') in
 * front of them (started with `balancerOptions`).
 */
export async function startResumeCluster({ balancer = 'haproxy', natsServers = 1, size = 3, config = resumeConfig(), balancerOptions = {} } = {}) {
  const cluster = await startCluster({ size, config, natsServers });
  let lb;
  try {
    lb = await BALANCERS[balancer](cluster.nodes, balancerOptions);
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return {
    ...cluster,
    lb,
    hubUrl: `${lb.url}/hubs/demo/chat`,
    async close() {
      await lb.close();
      await cluster.close();
    },
  };
}

/** POSTs `args` to group `group` through `baseUrl`; resolves with the status (0: no answer). */
export async function restSend(baseUrl, group, args) {
  try {
    const response = await fetch(`${baseUrl}/api/v1/tenants/demo/hubs/chat/groups/${group}/:send`, {
      method: 'POST',
      headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ target: MESSAGE, arguments: args }),
      signal: AbortSignal.timeout(SETTLE_MS),
    });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

/**
 * A started stateful client in a group of its own, recording what it receives per stream, its
 * socket drops (from the client's trace log) and its connection events. `serverTimeoutMs`: how
 * long it waits for anything from the server before it gives the connection up.
 */
export async function startClient(hubUrl, i, { serverTimeoutMs = 8_000 } = {}) {
  const protocol = i % 2 === 0 ? 'json' : 'messagepack';
  const c = {
    i,
    protocol,
    group: unique(`resume-${i}-`),
    streams: new Map(), // src -> [{ n, t, at }]
    drops: [], // when the socket dropped (ms)
    connects: [], // when a WebSocket opened (ms)
    reconnecting: [],
    reconnected: 0,
    closed: [],
    echoes: { ok: 0, unknown: 0, failed: [], hung: 0, pending: 0 },
  };
  const logger = {
    log(level, message) {
      if (message === '(WebSockets transport) socket closed.') c.drops.push(Date.now());
      else if (message.startsWith('WebSocket connected to')) c.connects.push(Date.now());
    },
  };
  let builder = new HubConnectionBuilder()
    .withUrl(hubUrl, { transport: HttpTransportType.WebSockets })
    .withStatefulReconnect()
    .withAutomaticReconnect([0, 500, 1000, 2000])
    .configureLogging(logger);
  if (protocol === 'messagepack') builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  connection.serverTimeoutInMilliseconds = serverTimeoutMs;
  c.connection = connection;
  connection.onreconnecting((err) => c.reconnecting.push(String(err?.message ?? err)));
  connection.onreconnected(() => c.reconnected++);
  connection.onclose((err) => c.closed.push(String(err?.message ?? err)));
  connection.on(MESSAGE, (src, body, tRest) => {
    let n;
    let t;
    if (src === 'rest') {
      n = Number(body);
      t = Number(tRest);
    } else {
      [n, t] = String(body).split('|').map(Number);
    }
    let list = c.streams.get(src);
    if (!list) c.streams.set(src, (list = []));
    list.push({ n, t, at: Date.now() });
  });
  await withTimeout(connection.start(), SETTLE_MS, `start client ${i}`);
  c.id = connection.connectionId;
  await withTimeout(connection.invoke('joinGroup', c.group), SETTLE_MS, `client ${i} joins its group`);
  return c;
}

/** Starts `n` clients through `hubUrl`, `parallel` at a time (`options` as for startClient). */
export async function startClients(hubUrl, n, parallel = 20, options = {}) {
  const clients = [];
  for (let i = 0; i < n; i += parallel) {
    const batch = Array.from({ length: Math.min(parallel, n - i) }, (_, k) => startClient(hubUrl, i + k, options));
    clients.push(...(await Promise.all(batch)));
  }
  return clients;
}

/** A plain (not stateful) hub connection to one node, for sending. */
async function startSender(url) {
  const connection = new HubConnectionBuilder()
    .withUrl(url, { transport: HttpTransportType.WebSockets })
    .configureLogging(LogLevel.None)
    .build();
  await withTimeout(connection.start(), SETTLE_MS, `start a sender on ${url}`);
  return connection;
}

/**
 * Runs the traffic until `stop()`: per client, a REST stream through the balancer at `restRate`
 * per second; from a sender pinned to each node, a stream per client at `hubRate` per second;
 * an `echo` invocation per client every `echoEveryMs` (not awaited, each bounded by SETTLE_MS).
 * Returns `{ senders, acked, unknown, stop }`; `acked`/`unknown` map `src` -> client index ->
 * Set of n. `senders[k].tag` is node k's tag.
 */
export async function startTraffic(run, clients, { restRate = 4, hubRate = 2, echoEveryMs = 500 } = {}) {
  const acked = new Map();
  const unknown = new Map();
  const note = (map, src, i, n) => {
    if (!map.has(src)) map.set(src, new Map());
    const byClient = map.get(src);
    if (!byClient.has(i)) byClient.set(i, new Set());
    byClient.get(i).add(n);
  };
  const senders = [];
  for (const [k, node] of run.nodes.entries()) {
    const connection = await startSender(`${node.url}/hubs/demo/chat`);
    senders.push({ k, connection, tag: tagOf(connection.connectionId) });
  }
  let stopped = false;
  const loops = [];
  const paced = async (ratePerSec, body) => {
    const period = 1000 / ratePerSec;
    for (let n = 1; !stopped; n++) {
      const started = Date.now();
      if (!(await body(n))) return;
      const wait = period - (Date.now() - started);
      if (wait > 0) await sleep(wait);
    }
  };
  for (const c of clients) {
    loops.push(
      paced(restRate, async (n) => {
        const status = await restSend(run.lb.url, c.group, ['rest', n, Date.now()]);
        note(status === 202 ? acked : unknown, 'rest', c.i, n);
        return true;
      }),
    );
    for (const s of senders) {
      const src = `hub${s.k}`;
      loops.push(
        paced(hubRate, async (n) => {
          if (s.connection.state !== 'Connected') return false;
          try {
            await withTimeout(s.connection.invoke('sendToGroup', c.group, src, `${n}|${Date.now()}`), SETTLE_MS, 'send');
            note(acked, src, c.i, n);
          } catch {
            note(unknown, src, c.i, n);
          }
          return true;
        }),
      );
    }
  }
  const echoes = [];
  let echoed = 0;
  const echoTimer = setInterval(() => {
    for (const c of clients) {
      if (c.connection.state !== 'Connected') continue;
      const k = ++echoed;
      c.echoes.pending++;
      echoes.push(
        withTimeout(c.connection.invoke('echo', k), SETTLE_MS, 'echo')
          .then(
            (v) => {
              if (v === k) c.echoes.ok++;
              else c.echoes.failed.push(`echo returned ${JSON.stringify(v)} for ${k}`);
            },
            (err) => {
              const text = String(err?.message ?? err);
              if (text.startsWith('timed out')) c.echoes.hung++;
              else if (text.includes(OUTCOME_UNKNOWN)) c.echoes.unknown++;
              else c.echoes.failed.push(text);
            },
          )
          .finally(() => c.echoes.pending--),
      );
    }
  }, echoEveryMs);
  return {
    senders,
    acked,
    unknown,
    async stop() {
      stopped = true;
      clearInterval(echoTimer);
      await withTimeout(Promise.all(loops), 2 * SETTLE_MS, 'the senders to stop');
      await withTimeout(Promise.all(echoes), 2 * SETTLE_MS, 'the echoes to settle');
      await Promise.all(senders.map((s) => withTimeout(s.connection.stop(), SETTLE_MS, 'stop a sender').catch(() => {})));
    },
  };
}

/** The node index (into `run.nodes`) holding most clients, by their connection ids' tags. */
export function busiestNode(traffic, clients, among = traffic.senders.map((s) => s.k)) {
  const count = new Map(among.map((k) => [k, 0]));
  for (const c of clients) {
    const s = traffic.senders.find((x) => x.tag === tagOf(c.id));
    if (s && count.has(s.k)) count.set(s.k, count.get(s.k) + 1);
  }
  return [...count.entries()].sort((a, b) => b[1] - a[1])[0][0];
}

/** Waits (bounded) until every client (but those in `except`, by index) has received every acked message. */
export async function waitDelivered(traffic, clients, timeoutMs = 15_000, except = new Set()) {
  const missing = () => {
    let total = 0;
    for (const [src, byClient] of traffic.acked) {
      for (const [i, ns] of byClient) {
        if (except.has(i)) continue;
        const got = new Set((clients[i].streams.get(src) ?? []).map((m) => m.n));
        for (const n of ns) if (!got.has(n)) total++;
      }
    }
    return total;
  };
  const deadline = Date.now() + timeoutMs;
  while (missing() > 0 && Date.now() < deadline) await sleep(100);
  return missing();
}

/** Percentile `p` (0..1) of `values` (null when empty). */
export function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/**
 * What every client saw: per (stream, client) acked-but-lost, duplicates and out-of-order
 * messages; clients whose connection changed, that went through onreconnecting (with or
 * without the documented honest error) or closed; echo outcomes; resume times (socket drop to
 * first message after it) and messages received in the first second after each resume that
 * were sent before the drop (replayed or late).
 */
export function verify(traffic, clients) {
  const r = {
    clients: clients.length,
    acked: 0,
    lost: [],
    duplicates: [],
    reordered: [],
    changedId: [],
    reconnecting: [],
    honest: [],
    closed: [],
    dropped: 0,
    echoes: { ok: 0, unknown: 0, failed: [], hung: 0 },
    resumeMs: [],
    replayed: [],
  };
  for (const c of clients) {
    for (const [src, list] of c.streams) {
      // A send the sender gave up waiting for (no answer in time) may still land, late: order
      // is promised among the acked ones.
      const unacked = traffic.unknown.get(src)?.get(c.i) ?? new Set();
      const seen = new Set();
      let last = 0;
      for (const { n } of list) {
        if (seen.has(n)) r.duplicates.push(`${src} → client ${c.i}: ${n}`);
        else if (n < last && !unacked.has(n)) r.reordered.push(`${src} → client ${c.i}: ${n} after ${last}`);
        seen.add(n);
        if (!unacked.has(n)) last = Math.max(last, n);
      }
    }
    const honest = c.reconnecting.filter((e) => e.includes(UNRECOVERABLE));
    if (honest.length > 0) r.honest.push(c.i);
    else {
      if (c.connection.connectionId !== c.id) r.changedId.push(c.i);
      if (c.reconnecting.length > 0) r.reconnecting.push(`client ${c.i}: ${c.reconnecting.join('; ')}`);
    }
    if (c.closed.length > 0) r.closed.push(`client ${c.i}: ${c.closed.join('; ')}`);
    r.echoes.ok += c.echoes.ok;
    r.echoes.unknown += c.echoes.unknown;
    r.echoes.hung += c.echoes.hung;
    r.echoes.failed.push(...c.echoes.failed.map((e) => `client ${c.i}: ${e}`));
    if (c.drops.length > 0) r.dropped++;
    const all = [...c.streams.values()].flat().sort((a, b) => a.at - b.at);
    for (const drop of c.drops) {
      const first = all.find((m) => m.at > drop);
      if (first) r.resumeMs.push(first.at - drop);
      r.replayed.push(all.filter((m) => m.at > drop && m.at < drop + 1000 && m.t < drop).length);
    }
  }
  for (const [src, byClient] of traffic.acked) {
    for (const [i, ns] of byClient) {
      if (r.honest.includes(i)) continue; // told honestly; they start over
      r.acked += ns.size;
      const got = new Set((clients[i].streams.get(src) ?? []).map((m) => m.n));
      for (const n of ns) if (!got.has(n)) r.lost.push(`${src} → client ${i}: ${n}`);
    }
  }
  return r;
}

/** A short summary of `verify`'s result for logs and assertion messages. */
export function summary(r) {
  const cap = (list) => (list.length > 5 ? [...list.slice(0, 5), `… ${list.length - 5} more`] : list);
  return JSON.stringify(
    {
      clients: r.clients,
      acked: r.acked,
      lost: r.lost.length,
      lostSample: cap(r.lost),
      duplicates: cap(r.duplicates),
      reordered: cap(r.reordered),
      changedId: r.changedId.length,
      reconnecting: cap(r.reconnecting),
      honest: r.honest.length,
      closed: cap(r.closed),
      dropped: r.dropped,
      echoes: { ...r.echoes, failed: cap(r.echoes.failed) },
      resumeMs: { p50: percentile(r.resumeMs, 0.5), p99: percentile(r.resumeMs, 0.99), n: r.resumeMs.length },
    },
    null,
    1,
  );
}

/**
 * The checks every resume run makes of what the clients saw (the test context `t` gets a
 * summary): nothing lost, twice or reordered, every client on its first connection, every echo
 * settled, and each of `held` (the victims' clients) dropped and resumed with its id. Returns
 * verify's result.
 */
export function checkResumed(t, traffic, clients, held) {
  const r = verify(traffic, clients);
  const text = summary(r);
  t.diagnostic(`victims ${held.length}: ${text}`);
  assert.ok(r.acked > clients.length * 20, `enough acked sends to mean something: ${r.acked}`);
  assert.equal(r.honest.length, 0, `no honest failures: ${text}`);
  assert.deepEqual(r.changedId, [], `every client kept its connection: ${text}`);
  assert.deepEqual(r.reconnecting, [], `no client fell back to a new connection: ${text}`);
  assert.deepEqual(r.closed, [], `no client closed: ${text}`);
  assert.deepEqual(r.lost, [], `no acked message lost: ${text}`);
  assert.deepEqual(r.duplicates, [], `no message twice: ${text}`);
  assert.deepEqual(r.reordered, [], `no message out of order: ${text}`);
  assert.equal(r.echoes.hung, 0, `every echo settled: ${text}`);
  assert.deepEqual(r.echoes.failed, [], `no echo failed otherwise: ${text}`);
  for (const c of held) {
    assert.ok(c.drops.length > 0, `victim ${c.i} saw its socket drop`);
    assert.equal(c.connection.state, 'Connected', `victim ${c.i} is connected`);
    assert.equal(c.connection.connectionId, c.id, `victim ${c.i} kept its id`);
  }
  return r;
}

/**
 * A resume cluster behind `balancer` (`config` for the nodes) with `n` clients through
 * `clientUrl(run)` (the balancer by default; `clientOptions` for startClient) and traffic
 * running for a few seconds; stopped when the test ends. Resolves with `{ run, clients,
 * traffic, victim, held }`: `victim` is the index of the node holding most clients, `held` its
 * clients.
 */
export async function startedRun(t, { balancer = 'haproxy', config, size = 3, natsServers = 1, balancerOptions, n = 24, clientUrl, clientOptions, before } = {}) {
  const run = await startResumeCluster({ balancer, size, natsServers, balancerOptions, ...(config ? { config } : {}) });
  const state = { run, clients: [] };
  t.after(async () => {
    await Promise.all(state.clients.map((c) => withTimeout(c.connection.stop(), 5_000, 'stop').catch(() => {})));
    await state.traffic?.stop().catch(() => {});
    await state.cleanup?.();
    await run.close();
  });
  if (before) state.cleanup = await before(run);
  const url = clientUrl ? clientUrl(run) : run.hubUrl;
  state.clients = await startClients(url, n, 20, clientOptions);
  state.traffic = await startTraffic(run, state.clients);
  await sleep(4_000);
  state.victim = busiestNode(state.traffic, state.clients);
  state.held = state.clients.filter((c) => tagOf(c.id) === state.traffic.senders[state.victim].tag);
  assert.ok(state.held.length > 0, 'the busiest node holds clients');
  return state;
}

/** Connections each of `nodes` holds now (its `switchboard_connections`; null: not running). */
export async function connectionsByNode(nodes) {
  const counts = [];
  for (const node of nodes) counts.push(node.running() ? await metricSum([node], 'switchboard_connections') : null);
  return counts;
}

/** Waits (bounded) until each of `clients` is connected again after a socket drop. */
export async function waitResumed(clients, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  const settled = () => clients.every((c) => c.drops.length > 0 && c.connection.state === 'Connected' && c.connects.at(-1) > c.drops.at(-1));
  while (!settled() && Date.now() < deadline) await sleep(100);
  return settled();
}

export { metricSum };
