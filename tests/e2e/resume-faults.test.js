// Durable resume under the faults the kill test (resume-kill.test.js) does not cover, each a
// run of the same harness (tests/e2e/lib/resume.js: nodes behind haproxy, official JS clients with
// `withStatefulReconnect()`, half JSON and half MessagePack, numbered streams from the REST API
// and from a hub sender on every node, echoes in flight):
//
// - a second node killed after the first takeover (connections fail over twice);
// - a node paused (SIGSTOP) instead of killed, then woken: it drops what was taken over
//   without a word and runs no disconnect for it;
// - the taker killed while it takes over: another node takes over again;
// - retention shorter than the clients' absence: every one of them is told so honestly;
// - a NATS restart mid-run, then a kill;
// - two resumes of one token racing on two nodes (a raw client: the official one makes one).
//
// CI-sized by default; RESUME_CLIENTS sets the number of clients (a full-size run).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { startProxy } from './lib/proxy.js';
import {
  MESSAGE,
  UNRECOVERABLE,
  checkResumed,
  connectionsByNode,
  metricSum,
  restSend,
  resumeConfig,
  startedRun,
  startResumeCluster,
  summary,
  verify,
  waitDelivered,
  waitResumed,
} from './lib/resume.js';
import { unique } from './lib/server.js';

const CLIENTS = Number(process.env.RESUME_CLIENTS ?? 24);
const TAKEOVERS = 'switchboard_resume_takeovers_total';
const FENCED = 'switchboard_resume_fenced_total';
const UNRECOVERABLE_METRIC = 'switchboard_resume_unrecoverable_total';

test('a second node killed after the first takeover: connections fail over again, nothing lost, twice or reordered', { timeout: 180_000 }, async (t) => {
  const { run, clients, traffic, victim, held } = await startedRun(t, { n: CLIENTS });
  await run.nodes[victim].kill('SIGKILL');
  assert.ok(await waitResumed(held), 'the first victims resumed');
  await sleep(2_000);
  // The survivor that took most of them over: its connections include ones whose id names the
  // node killed first, so their second resume is claimed from a session that names it.
  const survivors = run.nodes.map((n, k) => k).filter((k) => k !== victim);
  const taken = [];
  for (const k of survivors) taken.push([k, await metricSum([run.nodes[k]], TAKEOVERS)]);
  taken.sort((a, b) => b[1] - a[1]);
  const [second, tookOver] = taken[0];
  assert.equal(
    taken.reduce((sum, [, n]) => sum + n, 0),
    held.length,
    `each victim was taken over once: ${JSON.stringify(taken)}`,
  );
  assert.ok(tookOver > 0, 'the second victim had taken connections over');
  const dropsBefore = clients.map((c) => c.drops.length);
  await run.nodes[second].kill('SIGKILL');
  await sleep(8_000);
  await traffic.stop();
  await waitDelivered(traffic, clients);
  const r = checkResumed(t, traffic, clients, held);
  const again = clients.filter((c) => c.drops.length > dropsBefore[c.i]);
  const twice = again.filter((c) => dropsBefore[c.i] > 0);
  t.diagnostic(`second kill: ${again.length} clients resumed again, ${twice.length} of them for the second time`);
  // Every connection it had taken over failed over again (and a few more may have dropped with
  // it: a socket whose upgrade it had forwarded to another node went through it).
  assert.ok(twice.length >= tookOver, `every connection the second victim had taken over failed over again: ${twice.length} of ${tookOver}`);
  const last = survivors.find((k) => k !== second);
  const claimedLast = await metricSum([run.nodes[last]], TAKEOVERS);
  assert.ok(claimedLast >= tookOver, `the last node claimed the connections the second victim had taken over (${claimedLast})`);
  assert.ok(r.dropped >= held.length + again.length - twice.length, `${r.dropped} clients saw a drop`);
});

test('a paused node (SIGSTOP), then woken: its clients resume elsewhere and it drops them without a word', { timeout: 180_000 }, async (t) => {
  // haproxy cuts the connections of a node it marks down, and a node that forwarded a WebSocket
  // to it cuts that one once it hears nothing for three keep-alive intervals: without that, a
  // hung node's clients only notice through their own server timeout (the official client's
  // default, 30 s, here), after which the official client gives stateful reconnect up and starts
  // a new connection.
  const { run, clients, traffic, victim, held } = await startedRun(t, {
    n: CLIENTS,
    balancerOptions: { shutdownSessions: true },
    clientOptions: { serverTimeoutMs: 30_000 },
  });
  const zombie = run.nodes[victim];
  process.kill(zombie.pid, 'SIGSTOP');
  let stopped = true;
  t.after(() => {
    if (stopped) process.kill(zombie.pid, 'SIGCONT');
  });
  assert.ok(await waitResumed(held, 25_000), `the paused node's ${held.length} clients resumed elsewhere`);
  const others = run.nodes.filter((n, k) => k !== victim);
  assert.equal(await metricSum(others, TAKEOVERS), held.length, 'each was claimed once');
  process.kill(zombie.pid, 'SIGCONT');
  stopped = false;
  // Awake, it reads the claims in the stream and drops every connection taken from it; the
  // traffic goes on (its own hub sender included) while the clients stay where they are.
  const deadline = Date.now() + 15_000;
  let fenced = 0;
  while (Date.now() < deadline) {
    fenced = await metricSum([zombie], FENCED).catch(() => 0);
    if (fenced >= held.length) break;
    await sleep(200);
  }
  const about = (id) => zombie.log().split('\n').filter((line) => line.includes(id)).slice(-6).join('\n');
  assert.equal(fenced, held.length, `the woken node dropped each connection another node claimed:\n${held.map((c) => about(c.id)).join('\n--\n')}`);
  await sleep(4_000);
  const heldAfterWake = (await connectionsByNode([zombie]))[0];
  await traffic.stop();
  await waitDelivered(traffic, clients);
  checkResumed(t, traffic, clients, held);
  // It holds none of them: only its own hub sender is left on it.
  assert.ok(heldAfterWake <= 1, `the woken node holds no client connection (${heldAfterWake})`);
  for (const c of held) assert.equal(c.drops.length, 1, `victim ${c.i} resumed once, and nothing from the woken node made it drop again`);
});

// Two of the four nodes are dead at once until haproxy's health checks mark them down: a resume
// whose connects are refused is redispatched round robin, so haproxy gets more retries than
// nodes (with 3, a resume could meet dead nodes on all 4 tries, get a 503 and start over).
test('the taker killed while it takes over: a third node takes over again, nothing lost, twice or reordered', { timeout: 180_000 }, async (t) => {
  const { run, clients, traffic, victim, held } = await startedRun(t, { n: CLIENTS, size: 4, balancerOptions: { retries: 8 } });
  // The first node to log a claim is killed at once: between its claim and the end of its
  // catch-up, or soon after.
  const survivors = run.nodes.filter((n, k) => k !== victim);
  const claim = /taking a durable connection over/;
  const seen = survivors.map((n) => (n.log().match(new RegExp(claim, 'g')) ?? []).length);
  await run.nodes[victim].kill('SIGKILL');
  let taker = null;
  const deadline = Date.now() + 15_000;
  while (!taker && Date.now() < deadline) {
    taker = survivors.find((n, k) => (n.log().match(new RegExp(claim, 'g')) ?? []).length > seen[k]) ?? null;
    if (!taker) await sleep(2);
  }
  assert.ok(taker, 'a survivor claimed a connection');
  await taker.kill('SIGKILL');
  await sleep(10_000);
  await traffic.stop();
  await waitDelivered(traffic, clients);
  checkResumed(t, traffic, clients, held);
  const left = survivors.filter((n) => n !== taker);
  const claims = await metricSum(left, TAKEOVERS);
  assert.ok(claims >= held.length, `the nodes left claimed every victim (some twice): ${claims}`);
});

test('retention shorter than the absence: every client away too long is told so (Close with allowReconnect), none resumes with a gap', { timeout: 180_000 }, async (t) => {
  // The clients reach the balancer through a proxy that can hold their new connections: their
  // resume waits there while the stream (3 s retention) drops what they missed.
  let proxy;
  const { run, clients, traffic, victim, held } = await startedRun(t, {
    n: CLIENTS,
    config: resumeConfig({ maxAgeSecs: 3 }),
    before: async (run) => {
      proxy = await startProxy(run.lb.port);
      return () => proxy.close();
    },
    clientUrl: () => `${proxy.url}/hubs/demo/chat`,
    // Longer than the hold: a client whose server timeout fires gives stateful reconnect up.
    clientOptions: { serverTimeoutMs: 30_000 },
  });
  proxy.hold();
  await run.nodes[victim].kill('SIGKILL');
  await sleep(8_000);
  proxy.release();
  const deadline = Date.now() + 20_000;
  const settled = () => held.every((c) => c.reconnecting.length > 0 && c.reconnected > 0 && c.connection.state === 'Connected');
  while (!settled() && Date.now() < deadline) await sleep(100);
  await traffic.stop();
  const victims = new Set(held.map((c) => c.i));
  await waitDelivered(traffic, clients, 15_000, victims);
  const r = verify(traffic, clients);
  const text = summary(r);
  t.diagnostic(`victims ${held.length}: ${text}`);
  assert.deepEqual([...r.honest].sort((a, b) => a - b), [...victims].sort((a, b) => a - b), `every victim, and only they, were told honestly: ${text}`);
  for (const c of held) {
    assert.ok(c.reconnecting[0].includes(UNRECOVERABLE), `victim ${c.i} was told why: ${c.reconnecting.join('; ')}`);
    assert.equal(c.reconnecting.length, 1, `victim ${c.i} started over once, on its first try: ${c.reconnecting.join('; ')}`);
    assert.equal(c.connection.state, 'Connected', `victim ${c.i} is connected again`);
    assert.notEqual(c.connection.connectionId, c.id, `victim ${c.i} is on a new connection`);
  }
  const unrecoverable = await metricSum(run.nodes, UNRECOVERABLE_METRIC, { reason: 'retention' });
  assert.equal(unrecoverable, held.length, 'each honest failure is counted once');
  assert.equal(await metricSum(run.nodes, TAKEOVERS), 0, 'no connection was taken over with a gap');
  // Everyone else went on untouched.
  assert.deepEqual(r.changedId, [], text);
  assert.deepEqual(r.reconnecting, [], text);
  assert.deepEqual(r.closed, [], text);
  assert.deepEqual(r.lost, [], text);
  assert.deepEqual(r.duplicates, [], text);
  assert.deepEqual(r.reordered, [], text);
  const othersFailed = r.echoes.failed.filter((e) => !held.some((c) => e.startsWith(`client ${c.i}:`)));
  assert.deepEqual(othersFailed, [], text);
});

test('a NATS restart mid-run, then a kill: nothing acked lost, twice or reordered, every client resumes with its id', { timeout: 180_000 }, async (t) => {
  const { run, clients, traffic, victim, held } = await startedRun(t, { n: CLIENTS });
  await run.nats.restart();
  // The nodes reconnect and read on from where they were; then the usual kill.
  await sleep(4_000);
  await run.nodes[victim].kill('SIGKILL');
  await sleep(8_000);
  await traffic.stop();
  await waitDelivered(traffic, clients);
  checkResumed(t, traffic, clients, held);
});

/** Frames of the JSON hub protocol. */
const RS = '\x1e';
const frame = (message) => JSON.stringify(message) + RS;
const TRACKABLE = new Set([1, 2, 3, 4, 5]);

/**
 * A raw stateful-reconnect client (JSON) that keeps its receiving state across sockets as the
 * official client does: each socket starts with the server's `Sequence`, which sets the id of the
 * next message; a message whose id is at or below the last one handled is a repeat and dropped.
 */
class RawStateful {
  constructor() {
    this.latest = 0; // highest message id handled
    this.got = []; // n of each handled message, in order
    this.sockets = [];
  }

  /** Opens a socket to `url` (a node's hub URL) with `token`; resolves with it, or its refusal. */
  open(url, token, { handshake = false, sequence = 1 } = {}) {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}?id=${encodeURIComponent(token)}`);
    // A new connection numbers from 1; a resumed socket waits for the server's Sequence.
    const s = { ws, next: handshake ? 1 : null, frames: 0, status: null, closed: false };
    this.sockets.push(s);
    let buffer = '';
    ws.on('message', (data) => {
      buffer += data.toString('utf8');
      const parts = buffer.split(RS);
      buffer = parts.pop();
      for (const text of parts) {
        s.frames++;
        const m = JSON.parse(text);
        if (handshake && s.frames === 1) continue; // the handshake answer
        if (m.type === 9) s.next = m.sequenceId;
        else if (TRACKABLE.has(m.type) && s.next !== null) {
          const id = s.next++;
          if (id <= this.latest) continue;
          this.latest = id;
          if (m.type === 1 && m.target === MESSAGE) this.got.push(Number(m.arguments[1]));
        }
      }
    });
    ws.on('close', () => (s.closed = true));
    return new Promise((resolve) => {
      ws.once('open', () => {
        s.status = 101;
        if (handshake) ws.send(frame({ protocol: 'json', version: 2 }));
        else ws.send(frame({ type: 9, sequenceId: sequence }));
        resolve(s);
      });
      ws.once('unexpected-response', (req, res) => {
        s.status = res.statusCode;
        s.closed = true;
        res.resume();
        resolve(s);
      });
      ws.once('error', () => {
        s.status ??= 0;
        s.closed = true;
        resolve(s);
      });
    });
  }

  /** Acknowledges what it handled, on `s`. */
  ack(s) {
    if (s.ws.readyState === WebSocket.OPEN) s.ws.send(frame({ type: 8, sequenceId: this.latest }));
  }
}

test('two resumes of one token racing on two nodes: exactly one node claims it, the other attempt is refused or handed to it, nothing twice', { timeout: 120_000 }, async (t) => {
  const run = await startResumeCluster();
  t.after(() => run.close());
  const [owner, a, b] = run.nodes;
  const hub = (node) => `${node.url}/hubs/demo/chat`;
  const negotiated = await fetch(`${hub(owner)}/negotiate?negotiateVersion=1&useStatefulReconnect=true`, {
    method: 'POST',
    signal: AbortSignal.timeout(10_000),
  }).then((r) => r.json());
  assert.equal(negotiated.useStatefulReconnect, true, 'stateful reconnect agreed');
  const token = negotiated.connectionToken;
  const client = new RawStateful();
  const first = await client.open(hub(owner), token, { handshake: true });
  assert.equal(first.status, 101);
  const group = unique('race-');
  first.ws.send(frame({ type: 1, invocationId: '1', target: 'joinGroup', arguments: [group] }));
  // The join took effect once a send to the group arrives.
  const acked = [];
  let n = 0;
  const sendOne = async () => {
    n++;
    const me = n;
    if ((await restSend(run.lb.url, group, ['rest', me, Date.now()])) === 202) acked.push(me);
  };
  const joined = Date.now() + 10_000;
  while (client.got.length === 0 && Date.now() < joined) {
    await sendOne();
    await sleep(100);
  }
  assert.ok(client.got.length > 0, 'the raw client receives its group');
  for (let i = 0; i < 20; i++) {
    await sendOne();
    await sleep(25);
  }
  await sleep(300);
  client.ack(first);
  // The checkpoint follows the Ack at most once a second.
  await sleep(1_500);
  client.ack(first);
  await sleep(300);
  await owner.kill('SIGKILL');
  // Sent while the client is away.
  for (let i = 0; i < 20; i++) await sendOne();
  // Both at once, on the two survivors; the client's own messages: the joinGroup (id 1) was
  // answered, so it resumes from 2.
  const [sa, sb] = await Promise.all([client.open(hub(a), token, { sequence: 2 }), client.open(hub(b), token, { sequence: 2 })]);
  t.diagnostic(`statuses: ${sa.status} ${sb.status}`);
  for (let i = 0; i < 20; i++) {
    await sendOne();
    await sleep(25);
  }
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !acked.every((m) => client.got.includes(m))) await sleep(100);
  const claims = await metricSum([a, b], TAKEOVERS);
  assert.equal(claims, 1, 'exactly one node claimed the connection');
  const served = [sa, sb].filter((s) => s.status === 101 && !s.closed);
  assert.equal(served.length, 1, `one socket serves the connection: ${[sa, sb].map((s) => `${s.status}${s.closed ? ' closed' : ''}`).join(', ')}`);
  for (const s of [sa, sb]) assert.ok(s.status === 101 || s.status === 404, `an attempt is served or refused as unknown (404): ${s.status}`);
  const seen = new Set();
  const twice = client.got.filter((m) => seen.has(m) || !seen.add(m));
  assert.deepEqual(twice, [], 'no message twice');
  assert.deepEqual(client.got, [...client.got].sort((x, y) => x - y), 'in order');
  // Sends before the join took effect reach nobody.
  const lost = acked.filter((m) => m >= client.got[0] && !seen.has(m));
  assert.deepEqual(lost, [], 'no acked message lost');
  for (const s of client.sockets) s.ws.terminate();
});
