// Stateful reconnect (`withStatefulReconnect()`, HubProtocol.md): a client whose WebSocket
// drops resumes the same connection on a new socket, with nothing lost and nothing repeated.
//
// The drops are real: clients reach the server through a TCP proxy on 127.0.0.1 (lib/proxy.js)
// that resets every connection through it, so both ends see a socket die without a WebSocket
// close, as on a network failure. The official client, JSON and MessagePack, plus raw wire
// checks of Sequence, replay, Ack and duplicate suppression on the server side.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpTransportType, HubConnectionBuilder, HubConnectionState, LogLevel } from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';
import { WAIT_MS } from './lib/client.js';
import { startProxy } from './lib/proxy.js';
import { RS, RawSocket, record } from './lib/raw.js';
import { hubUrl, pluginWasm, startServer, unique, until, withTimeout } from './lib/server.js';

const PROTOCOLS = ['json', 'messagepack'];
/** Reconnect delays of the automatic reconnect these clients also have (it must stay unused). */
const RETRY_DELAYS = [0, 200, 500, 1000, 1000, 1000, 1000];

/** A server with the test hub in tenant `demo`, and `config` when given. */
const startTesthub = (config) => startServer({ config, plugins: { 'demo/testhub.wasm': pluginWasm('testhub') } });

let server;
before(async () => {
  server = await startTesthub();
});
after(() => server?.stop());

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * An official client (WebSockets only, automatic reconnect on), with stateful reconnect unless
 * `stateful` is false; records its lifecycle events. Stopped when the test `t` ends.
 */
async function open(t, url, { protocol = 'json', stateful = true } = {}) {
  let builder = new HubConnectionBuilder()
    .withUrl(url, { transport: HttpTransportType.WebSockets })
    .withAutomaticReconnect(RETRY_DELAYS)
    .configureLogging(LogLevel.None);
  if (stateful) builder = builder.withStatefulReconnect();
  if (protocol === 'messagepack') builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  const events = { reconnecting: 0, reconnected: [], closed: 0 };
  connection.onreconnecting(() => events.reconnecting++);
  connection.onreconnected((id) => events.reconnected.push(id));
  connection.onclose(() => events.closed++);
  t.after(() => withTimeout(connection.stop(), WAIT_MS, 'stop'));
  await withTimeout(connection.start(), WAIT_MS, `start ${url}`);
  return { connection, events };
}

/**
 * `open` on `target`'s test hub through a proxy of its own (closed when the test `t` ends),
 * which cuts and holds the client's sockets on demand.
 */
async function openProxied(t, target, options) {
  const proxy = await startProxy(target.port);
  t.after(() => proxy.close());
  return { proxy, ...(await open(t, `${proxy.url}/hubs/demo/testhub`, options)) };
}

/** Lines of the server log that mention `text` and `id`. */
function logLines(text, id) {
  return server
    .log()
    .split('\n')
    .filter((line) => line.includes(text) && line.includes(id));
}

for (const protocol of PROTOCOLS) {
  describe(`WebSockets + ${protocol}`, () => {
    test('a numbered stream and invocations survive forced drops: nothing lost or repeated, same connection, no reconnecting', async (t) => {
      const { proxy, connection: receiver, events } = await openProxied(t, server, { protocol });
      const id = receiver.connectionId;
      const received = [];
      receiver.on('message', (n) => received.push(n));
      const echoed = [];
      receiver.on('self', (k) => echoed.push(k));
      const group = unique('stream-');
      await withTimeout(receiver.invoke('joinGroup', group), WAIT_MS, 'joinGroup');

      // The sender connects straight to the server: only the receiver's socket drops.
      const { connection: sender } = await open(t, hubUrl(server, 'demo', 'testhub'), { protocol, stateful: false });
      const N = 400;
      let sent = 0;
      const pump = (async () => {
        for (let n = 1; n <= N; n++) {
          await withTimeout(sender.invoke('sendToGroup', group, n), WAIT_MS, `sendToGroup ${n}`);
          sent = n;
          await sleep(3);
        }
      })();
      // Meanwhile the receiver invokes a method with a side effect (a message back to itself),
      // so an invocation run twice would show as a repeated message.
      const calls = [];
      const caller = (async () => {
        for (let k = 1; sent < N && k <= 500; k++) {
          calls.push(withTimeout(receiver.invoke('sendToCaller', 'self', k), 20_000, `sendToCaller ${k}`).then(() => k));
          await sleep(5);
        }
      })();

      // Drop 1: reset, and keep the client away for a while, so messages pile up on the server.
      await until(() => sent >= 100, '100 messages sent');
      assert.ok(proxy.cut() >= 1, 'the receiver had a socket to cut');
      proxy.hold();
      await sleep(300);
      proxy.release();
      // Drop 2, once the first resume is done: reset only; the client is back at once.
      await until(() => sent >= 250 && logLines('resumed on a new transport', id).length >= 1, 'the first resume');
      assert.ok(proxy.cut() >= 1, 'the receiver had a socket to cut again');

      await pump;
      await caller;
      const completed = await withTimeout(Promise.all(calls), 20_000, 'every invocation to complete');
      assert.deepEqual(completed, range(1, calls.length), 'every invocation completed');
      await until(() => received.length >= N && echoed.length >= calls.length, `${N} messages and ${calls.length} echoes`);
      // Let anything repeated arrive before looking.
      await withTimeout(receiver.invoke('echo', 'sync'), WAIT_MS, 'echo');
      assert.deepEqual(received, range(1, N), 'each group message exactly once, in order');
      assert.deepEqual(echoed, range(1, calls.length), 'each invocation ran exactly once, in order');

      assert.equal(receiver.connectionId, id, 'the same connection');
      assert.equal(receiver.state, HubConnectionState.Connected);
      assert.equal(events.reconnecting, 0, 'onreconnecting never fired: the resume is transparent');
      assert.deepEqual(events.reconnected, []);
      assert.equal(events.closed, 0);
      assert.ok(logLines('resumed on a new transport', id).length >= 2, 'the server resumed the connection twice');

      // The group membership survived: one more message reaches it.
      await withTimeout(sender.invoke('sendToGroup', group, N + 1), WAIT_MS, 'sendToGroup after');
      await until(() => received.length === N + 1, 'the message after the drops');
      assert.equal(received.at(-1), N + 1);
    });

    test('a client without stateful reconnect is unaffected: it reconnects as a new connection', async (t) => {
      const { proxy, connection, events } = await openProxied(t, server, { protocol, stateful: false });
      const id = connection.connectionId;
      proxy.cut();
      await until(() => events.reconnected.length === 1, 'an automatic reconnect');
      assert.equal(events.reconnecting, 1, 'onreconnecting fired');
      assert.notEqual(connection.connectionId, id, 'a new connection');
      assert.equal(await withTimeout(connection.invoke('echo', 7), WAIT_MS, 'echo'), 7);
      await server.waitForLog(new RegExp(`disconnected.*${id}|${id}.*disconnected`));
      assert.deepEqual(logLines('resumed on a new transport', id), []);
    });
  });
}

describe('when the client does not come back in time', () => {
  let shortServer;
  before(async () => {
    shortServer = await startTesthub('disconnect_timeout_secs = 1\n[tenants.demo]\nallow_anonymous = true\n');
  });
  after(() => shortServer?.stop());

  test('the connection ends after disconnect_timeout_secs, the resume fails and the client reconnects anew', async (t) => {
    const { proxy, connection, events } = await openProxied(t, shortServer);
    const id = connection.connectionId;
    await withTimeout(connection.invoke('joinGroup', 'late'), WAIT_MS, 'joinGroup');
    proxy.cut();
    proxy.hold(); // the client's resume waits in the proxy
    // The server keeps the connection for 1 s, then ends it (on-disconnected runs).
    await shortServer.waitForLog(new RegExp(`${id}.*did not reconnect within 1 s`));
    assert.equal(events.reconnecting, 0, 'still resuming, not reconnecting');
    proxy.release(); // the resume arrives late: 404
    await until(() => events.reconnected.length === 1, 'an automatic reconnect as a new connection');
    assert.equal(events.reconnecting, 1, 'onreconnecting fired once the resume failed');
    assert.notEqual(connection.connectionId, id, 'a new connection');
    assert.equal(connection.state, HubConnectionState.Connected);
    assert.equal(await withTimeout(connection.invoke('echo', 'back'), WAIT_MS, 'echo'), 'back');
  });
});

describe('with a small replay buffer', () => {
  let smallServer;
  before(async () => {
    smallServer = await startTesthub('stateful_reconnect_buffer_bytes = 4096\n[tenants.demo]\nallow_anonymous = true\n');
  });
  after(() => smallServer?.stop());

  test('a burst larger than the buffer waits for Acks (backpressure) and survives a drop, in order', async (t) => {
    const { proxy, connection: receiver, events } = await openProxied(t, smallServer);
    const id = receiver.connectionId;
    const received = [];
    receiver.on('message', (value) => received.push(value));
    const group = unique('burst-');
    await withTimeout(receiver.invoke('joinGroup', group), WAIT_MS, 'joinGroup');
    const { connection: sender } = await open(t, hubUrl(smallServer, 'demo', 'testhub'), { stateful: false });
    // About 16 KB for a 4 KB buffer: the server may hold only a quarter of it unacknowledged.
    const N = 64;
    const pad = 'x'.repeat(200);
    for (let n = 1; n <= N; n++) {
      await withTimeout(sender.invoke('sendToGroup', group, { n, pad }), WAIT_MS, `sendToGroup ${n}`);
    }
    await until(() => received.length >= 8, 'the first messages');
    proxy.cut();
    await until(() => received.length >= N, `${N} messages`, 30_000);
    await withTimeout(receiver.invoke('echo', 'sync'), WAIT_MS, 'echo');
    assert.deepEqual(
      received.map((m) => m.n),
      range(1, N),
      'each message exactly once, in order',
    );
    assert.equal(receiver.connectionId, id);
    assert.equal(events.reconnecting, 0);
  });
});

describe('when the server shuts down', () => {
  test('a stateful client told to reconnect (allowReconnect) comes back as a new connection', async (t) => {
    const plugins = { 'demo/testhub.wasm': pluginWasm('testhub') };
    const first = await startServer({ plugins });
    t.after(() => first.stop());
    const { connection, events } = await open(t, hubUrl(first, 'demo', 'testhub'));
    const firstId = connection.connectionId;
    const reconnecting = new Promise((resolve) => connection.onreconnecting(resolve));
    await first.stop(); // SIGTERM: drain, Close with allowReconnect, exit
    const error = await withTimeout(reconnecting, WAIT_MS, 'onreconnecting');
    assert.match(String(error), /Server is shutting down\./);
    const second = await startServer({ plugins, args: ['--listen', first.addr] });
    t.after(() => second.stop());
    await until(() => events.reconnected.length === 1, 'onreconnected', 15_000);
    assert.notEqual(connection.connectionId, firstId, 'a new connection on the new node');
    assert.equal(await withTimeout(connection.invoke('echo', 'back'), WAIT_MS, 'echo'), 'back');
  });
});

describe('negotiate', () => {
  async function negotiateWith(query) {
    const response = await fetch(`${hubUrl(server, 'demo', 'testhub')}/negotiate?${query}`, {
      method: 'POST',
      signal: AbortSignal.timeout(WAIT_MS),
    });
    assert.equal(response.status, 200);
    return response.json();
  }

  test('agrees to stateful reconnect only when a v1 client asks', async () => {
    assert.equal((await negotiateWith('negotiateVersion=1&useStatefulReconnect=true')).useStatefulReconnect, true);
    assert.equal((await negotiateWith('negotiateVersion=1&UseStatefulReconnect=TRUE')).useStatefulReconnect, true);
    assert.equal((await negotiateWith('negotiateVersion=1')).useStatefulReconnect, undefined);
    assert.equal((await negotiateWith('negotiateVersion=1&useStatefulReconnect=false')).useStatefulReconnect, undefined);
    // v0 puts the public connection id in `id=`: resuming by it would let others take over.
    assert.equal((await negotiateWith('useStatefulReconnect=true')).useStatefulReconnect, undefined);
  });
});

/** Negotiates stateful reconnect by hand and returns the token. */
async function negotiateStateful(url) {
  const response = await fetch(`${url}/negotiate?negotiateVersion=1&useStatefulReconnect=true`, {
    method: 'POST',
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const body = await response.json();
  assert.equal(body.useStatefulReconnect, true);
  return body;
}

/** Opens a raw WebSocket for `token`; closed when the test ends. */
async function rawSocket(t, url, token) {
  const socket = new RawSocket(`${url.replace(/^http/, 'ws')}?id=${token}`);
  t.after(() => socket.ws.terminate());
  await withTimeout(socket.opened, WAIT_MS, 'open');
  return socket;
}

/** The next record that is not an Ack (Acks are collected in `socket.acks`). */
async function nextNonAck(socket) {
  socket.acks ??= [];
  for (let i = 0; i < 100; i++) {
    const message = await socket.nextRecord();
    if (message.type === 8) socket.acks.push(message.sequenceId);
    else return message;
  }
  throw new Error('only Acks');
}

/** Waits for an Ack of at least `id` (already received or still to come). */
async function ackOf(socket, id) {
  socket.acks ??= [];
  for (let i = 0; i < 100 && !socket.acks.some((a) => a >= id); i++) {
    const message = await socket.nextRecord({ timeoutMs: 3_000 });
    if (message.type === 8) socket.acks.push(message.sequenceId);
  }
  return Math.max(...socket.acks);
}

const callSelf = (invocationId, value) =>
  record({ type: 1, invocationId, target: 'sendToCaller', arguments: ['self', value] });

describe('on the wire', () => {
  test('after a drop the server sends Sequence, replays what was not acknowledged, and ignores replayed duplicates', async (t) => {
    const url = hubUrl(server, 'demo', 'testhub');
    const { connectionToken } = await negotiateStateful(url);

    const first = await rawSocket(t, url, connectionToken);
    first.send(`{"protocol":"json","version":2}${RS}`);
    assert.deepEqual(await first.nextRecord(), {});
    first.send(callSelf('1', 'a'));
    assert.deepEqual(await nextNonAck(first), { type: 1, target: 'self', arguments: ['a'] }); // server's #1
    assert.deepEqual(await nextNonAck(first), { type: 3, invocationId: '1' }); // server's #2
    first.ws.terminate(); // no close frame, nothing acknowledged

    // The same token on a new socket: no negotiate, no handshake.
    const second = await rawSocket(t, url, connectionToken);
    assert.deepEqual(await second.nextRecord(), { type: 9, sequenceId: 1 }, 'Sequence first: nothing was acknowledged');
    assert.deepEqual(await nextNonAck(second), { type: 1, target: 'self', arguments: ['a'] });
    assert.deepEqual(await nextNonAck(second), { type: 3, invocationId: '1' });
    // The client replays its own unacknowledged invocation (a duplicate), then a new one.
    second.send(record({ type: 9, sequenceId: 1 }) + callSelf('1', 'a') + callSelf('2', 'b'));
    assert.deepEqual(await nextNonAck(second), { type: 1, target: 'self', arguments: ['b'] }, 'the duplicate did not run again');
    assert.deepEqual(await nextNonAck(second), { type: 3, invocationId: '2' });
    assert.equal(await ackOf(second, 2), 2, 'the server acknowledges the two invocations it received');

    // Acknowledge the server's four messages, then two more go out: only those are replayed.
    second.send(record({ type: 8, sequenceId: 4 }) + callSelf('3', 'c'));
    assert.deepEqual(await nextNonAck(second), { type: 1, target: 'self', arguments: ['c'] }); // #5
    assert.deepEqual(await nextNonAck(second), { type: 3, invocationId: '3' }); // #6
    second.ws.terminate();

    const third = await rawSocket(t, url, connectionToken);
    assert.deepEqual(await third.nextRecord(), { type: 9, sequenceId: 5 }, 'the replay starts after the last Ack');
    assert.deepEqual(await nextNonAck(third), { type: 1, target: 'self', arguments: ['c'] });
    assert.deepEqual(await nextNonAck(third), { type: 3, invocationId: '3' });
    // This time everything the client sent arrived: its Sequence is the next id.
    third.send(record({ type: 9, sequenceId: 4 }) + callSelf('4', 'd'));
    assert.deepEqual(await nextNonAck(third), { type: 1, target: 'self', arguments: ['d'] });
    assert.deepEqual(await nextNonAck(third), { type: 3, invocationId: '4' });
  });

  test('a Sequence beyond what the server received ends the connection with a clear error', async (t) => {
    const url = hubUrl(server, 'demo', 'testhub');
    const { connectionToken } = await negotiateStateful(url);
    const first = await rawSocket(t, url, connectionToken);
    first.send(`{"protocol":"json","version":2}${RS}`);
    assert.deepEqual(await first.nextRecord(), {});
    first.ws.terminate();
    const second = await rawSocket(t, url, connectionToken);
    assert.deepEqual(await second.nextRecord(), { type: 9, sequenceId: 1 });
    second.send(record({ type: 9, sequenceId: 5 }));
    const close = await second.nextRecord();
    assert.equal(close.type, 7);
    assert.equal(close.error, "Sequence ID greater than amount of messages we've received.");
    await second.waitClosed();
  });

  test('only a live stateful connection can be resumed, and only by its token', async (t) => {
    const url = hubUrl(server, 'demo', 'testhub');
    const status = (token) =>
      new Promise((resolve) => {
        const socket = new RawSocket(`${url.replace(/^http/, 'ws')}?id=${token}`);
        socket.ws.on('unexpected-response', (req, res) => {
          req.destroy();
          resolve(res.statusCode);
        });
        socket.opened.then(
          () => {
            socket.ws.terminate();
            resolve(101);
          },
          () => {},
        );
      });
    // A connection without stateful reconnect: its token cannot open a second socket.
    const plain = await (
      await fetch(`${url}/negotiate?negotiateVersion=1`, { method: 'POST', signal: AbortSignal.timeout(WAIT_MS) })
    ).json();
    const socket = await rawSocket(t, url, plain.connectionToken);
    socket.send(`{"protocol":"json","version":1}${RS}`);
    assert.deepEqual(await socket.nextRecord(), {});
    assert.equal(await withTimeout(status(plain.connectionToken), WAIT_MS, 'resume plain'), 404);
    // The public connection id of a stateful connection is no key to it.
    const stateful = await negotiateStateful(url);
    const live = await rawSocket(t, url, stateful.connectionToken);
    live.send(`{"protocol":"json","version":2}${RS}`);
    assert.deepEqual(await live.nextRecord(), {});
    assert.equal(await withTimeout(status(stateful.connectionId), WAIT_MS, 'resume by id'), 404);
    assert.equal(await withTimeout(status('no-such-token'), WAIT_MS, 'resume unknown'), 404);
  });
});
