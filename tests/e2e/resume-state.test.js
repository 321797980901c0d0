// Durable resume keeps what a connection carries, not only its messages: three nodes and a
// real nats-server behind haproxy (round robin, no stickiness), official JS clients with
// `withStatefulReconnect()` on the `testhub` plugin. A client signed in as a user, opened with a
// query string, sets connection items and joins a group; then its node is killed with kill -9.
// On the node that takes it over, the same connection still has its items, its request's query,
// its group and its user (sends to each reach it), and new items are kept there too. A hub the
// tenant lists in `durable_resume_except` is plain: its client on the dead node starts over as a
// new connection. The items and group names of a durable connection are bounded (they travel in
// its session). An invocation running on the dead node ends with "outcome unknown" and runs on no
// other node; invocations sent while the node was dead run exactly once. A node paused instead of
// killed cannot send or write KV for an invocation it was running once another node took the
// connection over. A durable connection's clean end still runs the hub's disconnect handler, whose
// KV writes land; a node paused past a connection's grace period that another node took over
// does not run it when it wakes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';
import { clusterConfig, metricSum, startCluster } from './lib/cluster.js';
import { startHaproxy } from './lib/lb.js';
import { mintToken, pluginWasm, unique, withTimeout } from './lib/server.js';
import { RawSocket, openSession, record } from './lib/raw.js';

const WAIT_MS = 10_000;
const config = clusterConfig({
  top: 'disconnect_timeout_secs = 15\nkeep_alive_secs = 2',
  demo: 'durable_resume_except = ["plainhub"]',
  ttl: 5,
});

const tagOf = (id) => id.slice(id.lastIndexOf('.') + 1);

/** A started stateful client of `url`, recording its reconnects and what it receives. */
async function statefulClient(url, { token, messagePack = false, serverTimeoutMs = 8_000 } = {}) {
  let builder = new HubConnectionBuilder()
    .withUrl(url, { transport: HttpTransportType.WebSockets, ...(token ? { accessTokenFactory: () => token } : {}) })
    .withStatefulReconnect()
    .withAutomaticReconnect([0, 500, 1000])
    .configureLogging(LogLevel.None);
  if (messagePack) builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  connection.serverTimeoutInMilliseconds = serverTimeoutMs;
  const c = { connection, reconnecting: [], received: [] };
  connection.onreconnecting((err) => c.reconnecting.push(String(err?.message ?? err)));
  connection.on('message', (value) => c.received.push(value));
  await withTimeout(connection.start(), WAIT_MS, `start ${url}`);
  c.id = connection.connectionId;
  return c;
}

/** Each node by the tag its connection ids carry (learnt from a plain connection to it). */
async function nodeTags(nodes) {
  const tags = new Map();
  for (const node of nodes) {
    const c = new HubConnectionBuilder()
      .withUrl(`${node.url}/hubs/demo/testhub`, { transport: HttpTransportType.WebSockets })
      .configureLogging(LogLevel.None)
      .build();
    await withTimeout(c.start(), WAIT_MS, `connect to ${node.url}`);
    tags.set(tagOf(c.connectionId), node);
    await withTimeout(c.stop(), WAIT_MS, 'stop');
  }
  return tags;
}

const call = (c, method, ...args) => withTimeout(c.connection.invoke(method, ...args), WAIT_MS, method);

/** Waits (bounded) until `c` has received `value`. */
async function received(c, value, what) {
  const deadline = Date.now() + WAIT_MS;
  while (!c.received.includes(value) && Date.now() < deadline) await sleep(50);
  assert.ok(c.received.includes(value), `${what}: got ${JSON.stringify(c.received)}`);
}

test('kill -9: items, query, group and user of a durable connection survive the takeover; an excepted hub starts over', { timeout: 120_000 }, async (t) => {
  const wasm = pluginWasm('testhub');
  const cluster = await startCluster({
    size: 3,
    config,
    serverOptions: { plugins: { 'demo/testhub.wasm': wasm, 'demo/plainhub.wasm': wasm } },
  });
  const clients = [];
  let lb;
  t.after(async () => {
    await Promise.all(clients.map((c) => withTimeout(c.connection.stop(), 5_000, 'stop').catch(() => {})));
    await lb?.close();
    await cluster.close();
  });
  lb = await startHaproxy(cluster.nodes);
  const user = unique('ann-');
  const token = await mintToken({ user });
  const durable = await statefulClient(`${lb.url}/hubs/demo/testhub?room=7`, { token, messagePack: true });
  clients.push(durable);
  const victimTag = tagOf(durable.id);
  const victim = (await nodeTags(cluster.nodes)).get(victimTag);
  assert.ok(victim, `the node tagged ${victimTag} is one of the cluster's`);

  await call(durable, 'setItem', 'nick', 'ann');
  await call(durable, 'setItem', 'theme', 'dark');
  await call(durable, 'setItem', 'theme', 'light');
  const group = unique('g-');
  await call(durable, 'joinGroup', group);
  // Items travel in the session: bounded, and refused with a clear error beyond the bound.
  await assert.rejects(call(durable, 'setItem', 'big', 'x'.repeat(20_000)), /can resume on another node may hold at most 16384 bytes/);
  assert.equal(await call(durable, 'getItem', 'big'), null, 'a refused item is not kept');

  // A plain (excepted) client on the same node: placement is round robin, so connect until one lands there.
  let plain;
  for (let i = 0; i < 30 && !plain; i++) {
    const c = await statefulClient(`${lb.url}/hubs/demo/plainhub`);
    clients.push(c);
    if (tagOf(c.id) === victimTag) plain = c;
  }
  assert.ok(plain, 'a plainhub client on the victim node');
  // The excepted hub's items are not bounded by the session's size.
  await call(plain, 'setItem', 'big', 'x'.repeat(20_000));

  // Its group names are bounded in bytes too (its memberships travel in its checkpoint): a join
  // past the bound fails with a clear error instead of being lost when the checkpoint is written.
  const big = (i) => `${i}-${'x'.repeat(1000)}`;
  let joined = 0;
  let refused;
  for (let i = 0; i < 40 && !refused; i++) {
    try {
      await call(durable, 'joinGroup', big(i));
      joined++;
    } catch (err) {
      refused = err;
    }
  }
  assert.match(String(refused?.message), /can resume on another node may hold at most 16384 bytes/, 'the join past the bound is refused');
  assert.ok(joined >= 10 && joined < 17, `the joins within the bound succeed (${joined})`);

  // An invocation running on the node when it dies: it must end with "outcome unknown" on the
  // node that takes over, never hang and never run again there (the client resends it when the
  // dead node had not acknowledged it yet; the taker knows it was stored and running).
  const running = durable.connection.invoke('waitUntilCancelled');
  const outcome = running.then(() => 'completed', (err) => String(err?.message ?? err));
  await sleep(500);
  await victim.kill('SIGKILL');
  // Sent while the node is dead: the client keeps them and resends them after the resume; each
  // must run exactly once.
  const whileDead = [1, 2, 3].map((i) => durable.connection.invoke('sendToGroup', group, `while-dead-${i}`));
  // The durable client resumes elsewhere within its single attempt; the plain one starts over.
  const deadline = Date.now() + 30_000;
  const moved = async () => {
    try {
      return (await durable.connection.invoke('context')).connectionId === durable.id;
    } catch {
      return false;
    }
  };
  while (Date.now() < deadline && !(await moved())) await sleep(200);
  assert.equal(durable.connection.connectionId, durable.id, 'the durable client kept its connection id');
  assert.deepEqual(durable.reconnecting, [], 'the durable client never fell back to a new connection');

  assert.match(await withTimeout(outcome, WAIT_MS, 'the running invocation settles'), /Invocation outcome unknown/, 'the invocation running on the dead node ends with outcome unknown');
  await withTimeout(Promise.all(whileDead), WAIT_MS, 'the sends made while the node was dead');
  for (const i of [1, 2, 3]) await received(durable, `while-dead-${i}`, 'a send made while the node was dead');
  await sleep(500);
  for (const i of [1, 2, 3]) {
    const times = durable.received.filter((v) => v === `while-dead-${i}`).length;
    assert.equal(times, 1, `the send made while the node was dead ran once (${i})`);
  }
  assert.equal((await call(durable, 'context')).connectionId, durable.id);
  assert.equal(await call(durable, 'getItem', 'nick'), 'ann', 'items survive the takeover');
  assert.equal(await call(durable, 'getItem', 'theme'), 'light', 'the last value of an item survives');
  const ctx = await call(durable, 'context');
  assert.equal(ctx.connectionId, durable.id);
  assert.equal(ctx.userId, user, 'the user survives');
  assert.equal(ctx.query.room, '7', 'the request query survives');
  assert.ok(!('id' in ctx.query), 'the reconnect token is still hidden from plugins');

  // Group and user routing reach it on its new node, from a client elsewhere.
  const other = await statefulClient(`${lb.url}/hubs/demo/testhub`);
  clients.push(other);
  await call(other, 'sendToGroup', group, 'to-group');
  await received(durable, 'to-group', 'a group send after the takeover');
  await call(other, 'sendToUser', user, 'to-user');
  await received(durable, 'to-user', 'a user send after the takeover');

  // Items set on the new owner are kept in the session too (a later takeover would have them).
  await call(durable, 'setItem', 'after', 'yes');
  assert.equal(await call(durable, 'getItem', 'after'), 'yes');

  // The excepted hub's client on the dead node became a new connection, as without durable resume.
  const plainDeadline = Date.now() + 30_000;
  while (Date.now() < plainDeadline && plain.connection.connectionId === plain.id) await sleep(200);
  assert.notEqual(plain.connection.connectionId, plain.id, 'the plainhub client started over');
  assert.ok(plain.reconnecting.length > 0, 'through onreconnecting');
  assert.equal(await call(plain, 'getItem', 'big'), null, 'a new connection has no items');

  // The invocation that was running on the dead node did not run again on the taker: had it,
  // it would have stored what it saw when its connection ended.
  await withTimeout(durable.connection.stop(), WAIT_MS, 'stop the durable client');
  await sleep(1_000);
  assert.equal(await call(other, 'kvGet', `waited:${durable.id}`), null, 'the running invocation ran on no other node');
});

// A paused node is not dead: when it wakes, an invocation it was running goes on, and a plugin
// need not honour cancellation. Its send must not reach anyone: the node that took the
// connection over has already told the client the outcome is unknown, and the client may retry.
test('a paused owner (SIGSTOP) whose invocations send and write KV after it wakes: no one receives that send, the KV write does not land, the callers hear "outcome unknown"', { timeout: 120_000 }, async (t) => {
  const cluster = await startCluster({ size: 3, config, serverOptions: { plugins: { 'demo/testhub.wasm': pluginWasm('testhub') } } });
  const clients = [];
  let lb;
  let paused;
  t.after(async () => {
    if (paused) process.kill(paused.pid, 'SIGCONT');
    await Promise.all(clients.map((c) => withTimeout(c.connection.stop(), 5_000, 'stop').catch(() => {})));
    await lb?.close();
    await cluster.close();
  });
  // haproxy cuts the sessions of a node it marks down, so the client sees its socket close and
  // resumes; its own server timeout (raised here) would make it start over instead.
  lb = await startHaproxy(cluster.nodes, { shutdownSessions: true });
  const durable = await statefulClient(`${lb.url}/hubs/demo/testhub`, { serverTimeoutMs: 30_000 });
  clients.push(durable);
  const owner = (await nodeTags(cluster.nodes)).get(tagOf(durable.id));
  assert.ok(owner, 'the durable client is on one of the nodes');
  // A second durable client on the same node, for a write outside the message stream (KV).
  let writer;
  for (let i = 0; i < 30 && !writer; i++) {
    const c = await statefulClient(`${lb.url}/hubs/demo/testhub`, { serverTimeoutMs: 30_000 });
    clients.push(c);
    if (tagOf(c.id) === tagOf(durable.id)) writer = c;
  }
  assert.ok(writer, 'a second durable client on the same node');
  const group = unique('g-');
  const key = unique('late-');
  await call(durable, 'joinGroup', group);
  const listener = await statefulClient(`${cluster.nodes.find((n) => n !== owner).url}/hubs/demo/testhub`);
  clients.push(listener);
  await call(listener, 'joinGroup', group);
  await call(listener, 'sendToGroup', group, 'before');
  await received(durable, 'before', 'the durable client hears its group');
  await received(listener, 'before', 'the listener hears its group');

  // Sleeping on the owner when it is paused; the sleeps are long over when it wakes.
  const settled = (p) => p.then(() => 'completed', (err) => String(err?.message ?? err));
  const sent = settled(durable.connection.invoke('sendToGroupAfter', 1_500, group, 'late'));
  const written = settled(writer.connection.invoke('kvSetAfter', 1_500, key, 'late'));
  await sleep(300);
  process.kill(owner.pid, 'SIGSTOP');
  paused = owner;
  for (const [c, outcome, what] of [[durable, sent, 'send'], [writer, written, 'KV write']]) {
    assert.match(await withTimeout(outcome, 30_000, `the paused ${what} settles`), /Invocation outcome unknown/, `the node that took the connection over ends the ${what} with outcome unknown`);
    assert.equal(c.connection.connectionId, c.id, 'the durable client kept its connection id');
    assert.deepEqual(c.reconnecting, [], 'the durable client never fell back to a new connection');
  }

  process.kill(owner.pid, 'SIGCONT');
  paused = undefined;
  const deadline = Date.now() + 15_000;
  let fenced = 0;
  while (Date.now() < deadline && fenced < 2) {
    fenced = await metricSum([owner], 'switchboard_resume_fenced_total').catch(() => 0);
    if (fenced < 2) await sleep(200);
  }
  assert.equal(fenced, 2, 'the woken node learnt that both connections were taken from it');
  // Time for the woken invocation to finish, and for anything it stored to travel.
  await sleep(2_000);
  await call(listener, 'sendToGroup', group, 'after');
  await received(durable, 'after', 'the durable client, on its new node, still hears its group');
  await received(listener, 'after', 'the listener still hears its group');
  assert.ok(!listener.received.includes('late'), `the woken invocation's send reached no one: ${JSON.stringify(listener.received)}`);
  assert.ok(!durable.received.includes('late'), `nor its own caller: ${JSON.stringify(durable.received)}`);
  assert.equal(await call(listener, 'kvGet', key), null, "the woken invocation's KV write did not land");
});

// The hub's disconnect handler runs once the connection is closed and gone from the router: for
// a durable connection too, its KV writes must land (the versioned fixture deletes the key its
// on-connected wrote), even when the client's last message was not yet stored when it left.
test("a durable connection's clean end runs the hub's disconnect handler, whose KV write lands", { timeout: 60_000 }, async (t) => {
  const cluster = await startCluster({
    size: 2,
    config,
    serverOptions: { plugins: { 'demo/testhub.wasm': pluginWasm('testhub'), 'demo/versioned.wasm': pluginWasm('versioned_v1') } },
  });
  t.after(() => cluster.close());
  const url = (hub) => `${cluster.nodes[0].url}/hubs/demo/${hub}`;
  const reader = await statefulClient(url('testhub'));
  t.after(() => withTimeout(reader.connection.stop(), 5_000, 'stop').catch(() => {}));
  for (let i = 0; i < 5; i++) {
    const c = await statefulClient(url('versioned'));
    const key = `connected:${c.id}`;
    assert.equal(await call(c, 'recall'), 'versioned-v1', 'on-connected stored its key');
    assert.equal(await call(reader, 'kvGet', key), 'versioned-v1');
    // A message whose receipt may still be on its way when the client leaves.
    c.connection.send('echo', i).catch(() => {});
    await withTimeout(c.connection.stop(), WAIT_MS, 'stop');
    const deadline = Date.now() + WAIT_MS;
    while (Date.now() < deadline && (await call(reader, 'kvGet', key)) !== null) await sleep(100);
    assert.equal(await call(reader, 'kvGet', key), null, `on-disconnected deleted ${key}`);
  }
});

// The old owner saw the socket drop and started the grace period, then was paused past it while
// the client resumed on another node. Woken, its grace timer fires at once, before it has read
// the other node's claim: the store, asked first, says the connection is not its own, so the
// hub's disconnect handler (which deletes the key its connect handler wrote) does not run there.
test('a node woken past the grace period of a connection another node took over does not run its disconnect handler', { timeout: 60_000 }, async (t) => {
  const shortGrace = clusterConfig({ top: 'disconnect_timeout_secs = 2\nkeep_alive_secs = 2', ttl: 5 });
  const cluster = await startCluster({
    size: 2,
    config: shortGrace,
    serverOptions: { plugins: { 'demo/testhub.wasm': pluginWasm('testhub'), 'demo/versioned.wasm': pluginWasm('versioned_v1') } },
  });
  const [owner, taker] = cluster.nodes;
  let paused;
  t.after(async () => {
    if (paused) process.kill(paused.pid, 'SIGCONT');
    await cluster.close();
  });
  const reader = await statefulClient(`${taker.url}/hubs/demo/testhub`);
  t.after(() => withTimeout(reader.connection.stop(), 5_000, 'stop').catch(() => {}));
  const first = await openSession(t, `${owner.url}/hubs/demo/versioned`, { stateful: true });
  const { connectionId: id, connectionToken: token } = first.negotiated;
  const key = `connected:${id}`;
  // The connect handler runs once the handshake is answered.
  const stored = Date.now() + WAIT_MS;
  while (Date.now() < stored && (await call(reader, 'kvGet', key)) === null) await sleep(50);
  assert.equal(await call(reader, 'kvGet', key), 'versioned-v1', 'on-connected stored its key');

  first.ws.terminate();
  // The owner reads the drop and starts the grace period; then it is paused past it.
  await sleep(500);
  process.kill(owner.pid, 'SIGSTOP');
  paused = owner;
  const resumed = new RawSocket(`${taker.url.replace(/^http/, 'ws')}/hubs/demo/versioned?id=${encodeURIComponent(token)}`);
  t.after(() => resumed.close());
  await withTimeout(resumed.opened, WAIT_MS, 'resume on the other node');
  resumed.send(record({ type: 9, sequenceId: 1 }));
  const sequence = await resumed.nextRecord({ pings: false });
  assert.equal(sequence.type, 9, `the other node took the connection over: ${JSON.stringify(sequence)}`);
  await sleep(3_000);
  process.kill(owner.pid, 'SIGCONT');
  paused = undefined;
  // Time for anything the woken node's disconnect handler would write to land.
  await sleep(2_000);
  assert.equal(await call(reader, 'kvGet', key), 'versioned-v1', "the woken node did not run the disconnect handler of a connection that lives on");
  assert.equal(await metricSum([owner], 'switchboard_resume_fenced_total'), 1, 'the woken node learnt that the connection was taken from it');

  // Where the connection lives, its end runs the handler.
  await resumed.close();
  const gone = Date.now() + WAIT_MS;
  while (Date.now() < gone && (await call(reader, 'kvGet', key)) !== null) await sleep(100);
  assert.equal(await call(reader, 'kvGet', key), null, 'its end on the node that took it over ran the handler');
});

test("a durable connection's invocation ids are bounded: a longer one fails with the reason, the connection goes on", { timeout: 60_000 }, async (t) => {
  const cluster = await startCluster({ size: 1, config, serverOptions: { plugins: { 'demo/testhub.wasm': pluginWasm('testhub') } } });
  t.after(() => cluster.close());
  const token = await mintToken({ user: unique('ids-') });
  const socket = await openSession(t, `${cluster.nodes[0].url}/hubs/demo/testhub`, { token, stateful: true });
  const completion = async (id) => {
    const message = await socket.nextRecord({ timeoutMs: WAIT_MS });
    assert.equal(message.type, 3, `a Completion, got ${JSON.stringify(message)}`);
    assert.equal(message.invocationId, id);
    return message;
  };
  const longest = 'i'.repeat(64);
  socket.send(record({ type: 1, invocationId: longest, target: 'echo', arguments: ['fits'] }));
  assert.equal((await completion(longest)).result, 'fits');
  const tooLong = 'i'.repeat(65);
  socket.send(record({ type: 1, invocationId: tooLong, target: 'echo', arguments: ['refused'] }));
  assert.equal(
    (await completion(tooLong)).error,
    "Invocation ID is 65 bytes: a resumable connection's invocation ids are at most 64 bytes.",
  );
  socket.send(record({ type: 1, invocationId: '7', target: 'echo', arguments: ['after'] }));
  assert.equal((await completion('7')).result, 'after', 'the connection goes on');
});
