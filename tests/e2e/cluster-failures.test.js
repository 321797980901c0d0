// A cluster when things fail: one real nats-server with JetStream (its store in a temp folder)
// and `switchboard serve --nats` nodes, with the official client.
//
// - NATS restarts mid-run (same port, same store): nodes say not-ready, reconnect by
//   themselves; what was sent meanwhile waits and arrives once, in order.
// - A node cut off from NATS (a TCP proxy between it and NATS) catches up from the stream.
// - Messages that expired from the stream before a node came back are reported lost.
// - A node killed with SIGKILL: the others keep working, its registry entries expire.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, inbox, invoke, WAIT_MS } from './lib/client.js';
import { readyz, waitReadyz } from './lib/cluster.js';
import { startNats } from './lib/nats.js';
import { parsePrometheus, select } from './lib/prometheus.js';
import { startProxy } from './lib/proxy.js';
import { hubUrl, mintToken, startServer, unique, withTimeout } from './lib/server.js';

const KEY = 'cluster-failures-api-key-0123456789';
const CONFIRMED = "Here's the message for confirmation";
const MESSAGE = 'addNewMessageToPage';
const config = ({ prefix = 'sb', maxAgeSecs = 600 } = {}) => `
[tenants.demo]
allow_anonymous = true
signing_keys = ["switchboard-demo-development-key-not-secret"]
api_keys = ["${KEY}"]

[nats]
prefix = "${prefix}"
partitions = 4
registry_ttl_secs = 3
max_age_secs = ${maxAgeSecs}
`;

let nats;
let nodes = [];
const extra = [];
const proxies = [];

/** Starts a node on NATS at `url` (default: the test's nats-server); stopped after the file. */
async function startNode(options = {}, url = nats.url) {
  const node = await startServer({ config: config(options), args: ['--nats', url] });
  extra.push(node);
  return node;
}

/** A TCP proxy in front of NATS, so a test can cut one node off; closed after the file. */
async function natsProxy() {
  const proxy = await startProxy(nats.port);
  proxies.push(proxy);
  return { proxy, url: `nats://127.0.0.1:${proxy.port}` };
}

before(async () => {
  nats = await startNats();
  nodes = await Promise.all([0, 1, 2].map(() => startServer({ config: config(), args: ['--nats', nats.url] })));
  await Promise.all(nodes.map((n) => waitReady(n, true)));
});
after(async () => {
  await Promise.all([...nodes, ...extra].map((n) => n.stop()));
  await Promise.all(proxies.map((p) => p.close()));
  await nats?.close();
});

/** Waits (bounded) until the node's /readyz is 200 (`ready`) or 503. */
const waitReady = (node, ready, ms = 30_000) => waitReadyz(node, ready ? 200 : 503, ms);

/** Waits (bounded) until `check()` resolves truthy. */
async function eventually(what, check, ms = 20_000) {
  const poll = (async () => {
    while (!(await check())) await new Promise((r) => setTimeout(r, 100));
  })();
  await withTimeout(poll, ms, what);
}

/** The sum of a metric's samples on `node` whose labels include `labels`. */
async function metric(node, name, labels = {}) {
  const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(WAIT_MS) })).text();
  return select(parsePrometheus(text), name, labels).reduce((sum, s) => sum + s.value, 0);
}

/** A REST HEAD on `node`; resolves with the status. */
async function head(node, path) {
  const r = await fetch(`${node.url}/api/v1/tenants/demo/hubs/${path}`, {
    method: 'HEAD',
    headers: { 'x-api-key': KEY },
    signal: AbortSignal.timeout(WAIT_MS),
  });
  return r.status;
}

/** A chat client of user `user` on `node`, recording what it receives. */
async function chatUser(t, node, user) {
  const connection = await connect(t, hubUrl(node, 'demo', 'chat'), { token: await mintToken({ user }) });
  return { connection, box: inbox(connection, MESSAGE) };
}

/** The texts `box` received that start with `prefix`, in order. */
const texts = (box, prefix) => box.messages.map((m) => m[1]).filter((x) => x.startsWith(prefix));

/** Sends `name-0` ... `name-{n-1}` to `user`, one invocation at a time (each handed to the router). */
async function sendNumbered(sender, user, name, n) {
  const sent = [];
  for (let i = 0; i < n; i++) {
    await invoke(sender, 'sendToUser', user, `${name}-${i}`);
    sent.push(`${name}-${i}`);
  }
  return sent;
}

describe('a cluster when NATS or a node fails', { timeout: 180_000 }, () => {
  test('NATS restarts mid-run: nodes recover by themselves; sends made meanwhile wait and arrive once, in order', async (t) => {
    const user = unique('restart-');
    const receiver = await chatUser(t, nodes[2], user);
    const sender = await connect(t, hubUrl(nodes[1], 'demo', 'chat'));
    const local = await chatUser(t, nodes[1], unique('local-'));
    const notified = await connect(t, hubUrl(nodes[0], 'demo', 'notify'));
    const notifier = await connect(t, hubUrl(nodes[1], 'demo', 'notify'));
    const notes = inbox(notified, 'addMessage');
    const id = Math.floor(Math.random() * 1e9);
    await invoke(notified, 'registerClient', id);

    const before = await sendNumbered(sender, user, 'before', 20);
    await receiver.box.next((m) => m[1] === 'before-19', 10_000);
    const queued0 = await metric(nodes[1], 'switchboard_backplane_queued_disconnected_total');

    await nats.stop();
    await Promise.all(nodes.map((n) => waitReady(n, false)));
    // The node keeps serving its own connections at once; what should reach other nodes waits
    // for NATS (the invocations complete once it is stored), and the cluster's key-value store
    // says it is unavailable.
    const broadcast = withTimeout(local.connection.invoke('send', 'me', 'during the outage'), 60_000, 'broadcast');
    await local.box.next((m) => m[1] === 'during the outage');
    const outage = [];
    const calls = [];
    for (let i = 0; i < 20; i++) {
      outage.push(`outage-${i}`);
      calls.push(withTimeout(sender.invoke('sendToUser', user, `outage-${i}`), 60_000, `outage-${i}`));
    }
    await assert.rejects(invoke(notifier, 'registerClient', id + 1), /unavailable/);
    await eventually('envelopes wait for NATS', async () =>
      (await metric(nodes[1], 'switchboard_backplane_queued_disconnected_total')) - queued0 >= 2,
    );
    assert.equal(texts(receiver.box, 'outage').length, 0, 'nothing arrives while NATS is away');

    await nats.restart();
    // Every invocation made during the outage completes: its send is stored.
    await Promise.all([broadcast, ...calls]);
    await Promise.all(nodes.map((n) => waitReady(n, true)));
    const afterRestart = await sendNumbered(sender, user, 'after', 20);
    await receiver.box.next((m) => m[1] === 'after-19', 10_000);
    // A marker sent last arrives last: nothing else is on its way.
    await invoke(sender, 'sendToUser', user, 'end');
    await receiver.box.next((m) => m[1] === 'end', 10_000);
    assert.deepEqual(
      receiver.box.messages.map((m) => m[1]),
      [...before, 'during the outage', ...outage, ...afterRestart, 'end'],
      'everything arrived once, in order, what was sent during the outage (the broadcast first) included',
    );
    assert.ok((await metric(nodes[1], 'switchboard_backplane_published_late_total')) >= 2);
    assert.equal(await metric(nodes[1], 'switchboard_backplane_refused_total'), 0, 'nothing refused');
    assert.match(nodes[1].log(), /NATS is disconnected; envelopes for other nodes wait in the queue/);
    for (const node of nodes) {
      assert.match(node.log(), /NATS disconnected/);
      assert.equal(await metric(node, 'switchboard_backplane_lost_messages_total'), 0, 'no node missed a stored message');
    }
    // The registration made before the outage is still in the JetStream KV bucket.
    await invoke(notifier, 'notifyClient', id, 'Confirmed');
    assert.deepEqual(await notes.next(), [CONFIRMED]);
  });

  test('a node cut off from NATS catches up from the stream: nothing lost, nothing twice', async (t) => {
    const { proxy, url } = await natsProxy();
    const cutOff = await startNode({}, url);
    await waitReady(cutOff, true);
    const user = unique('catchup-');
    const receiver = await chatUser(t, cutOff, user);
    const sender = await connect(t, hubUrl(nodes[0], 'demo', 'chat'));

    const sent = await sendNumbered(sender, user, 'before', 5);
    await receiver.box.next((m) => m[1] === 'before-4', 10_000);

    proxy.hold();
    proxy.cut();
    await waitReady(cutOff, false);
    // Node 1 still reaches NATS: these are stored in the stream while the node cannot read it.
    sent.push(...(await sendNumbered(sender, user, 'while-cut-off', 20)));
    assert.equal(texts(receiver.box, 'while-cut-off').length, 0, 'nothing arrives while cut off');

    proxy.release();
    await waitReady(cutOff, true);
    await receiver.box.next((m) => m[1] === 'while-cut-off-19', 15_000);
    sent.push(...(await sendNumbered(sender, user, 'after', 5)));
    await receiver.box.next((m) => m[1] === 'after-4', 10_000);
    assert.deepEqual(receiver.box.messages.map((m) => m[1]), sent, 'every message once, in order');
    assert.match(cutOff.log(), /recovering backplane messages from the stream/);
    assert.equal(await metric(cutOff, 'switchboard_backplane_lost_messages_total'), 0);
    assert.ok((await metric(cutOff, 'switchboard_backplane_received_total')) >= sent.length);
  });

  test('messages that expired before a node came back are reported lost, in logs and metrics', async (t) => {
    // Streams of their own (another prefix) that keep messages for 2 s only.
    const options = { prefix: 'expiry', maxAgeSecs: 2 };
    const { proxy, url } = await natsProxy();
    const [sending, cutOff] = await Promise.all([startNode(options), startNode(options, url)]);
    await Promise.all([waitReady(sending, true), waitReady(cutOff, true)]);
    const user = unique('expired-');
    const receiver = await chatUser(t, cutOff, user);
    const sender = await connect(t, hubUrl(sending, 'demo', 'chat'));
    await sendNumbered(sender, user, 'before', 1);
    await receiver.box.next((m) => m[1] === 'before-0', 10_000);

    proxy.hold();
    proxy.cut();
    await waitReady(cutOff, false);
    await sendNumbered(sender, user, 'expiring', 10);
    // Twice the streams' max age: the 10 are gone from the stream before the node is back.
    await new Promise((r) => setTimeout(r, 4_000));
    proxy.release();
    await waitReady(cutOff, true);
    await sendNumbered(sender, user, 'after', 1);
    await receiver.box.next((m) => m[1] === 'after-0', 10_000);

    assert.deepEqual(receiver.box.messages.map((m) => m[1]), ['before-0', 'after-0']);
    assert.equal(await metric(cutOff, 'switchboard_backplane_lost_messages_total'), 10, 'the 10 are reported lost');
    assert.equal(await metric(cutOff, 'switchboard_backplane_gaps_total'), 1);
    assert.match(cutOff.log(), /backplane messages missed .*missed=10/);
  });

  test('kill one node (SIGKILL): the others keep working, its registry entries expire', async (t) => {
    const victim = await startNode();
    await waitReady(victim, true);
    const user = unique('doomed-');
    const doomed = await chatUser(t, victim, user);
    const id = doomed.connection.connectionId;
    // Another node sees the victim's connection and user through the cluster registry.
    await eventually('node 1 sees the connection on the victim', async () => (await head(nodes[0], `chat/connections/${encodeURIComponent(id)}`)) === 200);
    assert.equal(await head(nodes[0], `chat/users/${encodeURIComponent(user)}`), 200);
    assert.equal(await head(nodes[0], `chat/users/${unique('nobody-')}`), 404);

    await victim.kill('SIGKILL');
    // Requests for its connection that land elsewhere get the 404 of an unknown connection at
    // once, whether the node is still registered (it cannot be reached) or already expired.
    for (const node of nodes) {
      const url = `${hubUrl(node, 'demo', 'chat')}?id=${encodeURIComponent(id)}`;
      for (const [method, init] of [['GET', {}], ['GET', { headers: { accept: 'text/event-stream' } }], ['POST', { body: 'x' }]]) {
        const r = await fetch(url, { method, ...init, signal: AbortSignal.timeout(WAIT_MS) });
        assert.equal(r.status, 404, `${method} ${JSON.stringify(init)} on ${node.url}`);
      }
    }
    // The others keep working.
    const [a, b] = await Promise.all([connect(t, hubUrl(nodes[0], 'demo', 'notify')), connect(t, hubUrl(nodes[1], 'demo', 'notify'))]);
    const box = inbox(a, 'addMessage');
    const nid = Math.floor(Math.random() * 1e9);
    await invoke(a, 'registerClient', nid);
    await invoke(b, 'notifyClient', nid, 'Confirmed');
    assert.deepEqual(await box.next(), [CONFIRMED]);
    assert.equal(await readyz(nodes[0]), 200);
    // Within the registry TTL (3 s) and a refresh, the dead node's entries are gone.
    await eventually('the dead node\'s connection expires', async () => (await head(nodes[1], `chat/connections/${encodeURIComponent(id)}`)) === 404);
    await eventually('its user is no longer connected', async () => (await head(nodes[1], `chat/users/${encodeURIComponent(user)}`)) === 404);
  });
});
