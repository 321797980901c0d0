// The HTTP edge: the request-head timeout closes silent sockets but never a request in
// progress (a long poll, an SSE stream) or a WebSocket; the node-wide connection cap refuses
// new clients with a clear 503 while health, metrics and the admin API still answer.
// (The attacks at full size are the reliability suite's slowloris and fd-cap scenarios.)

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { HttpTransportType, connect, invoke } from './lib/client.js';
import { parsePrometheus } from './lib/prometheus.js';
import { RS, RawSocket, record } from './lib/raw.js';
import { hubUrl, startServer, withTimeout } from './lib/server.js';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens a TCP socket to `port`; resolves once connected, with a promise of its close. */
function dial(port) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
      socket.once('error', reject);
      socket.closedAt = new Promise((done) => socket.once('close', () => done(Date.now())));
      socket.on('error', () => {});
      socket.resume();
    }),
    5_000,
    `connect to 127.0.0.1:${port}`,
  );
}

/**
 * One request on a connection of its own, closed after the answer (no pooled keep-alive
 * connection left holding a slot). Resolves with {status, body}.
 */
function request(server, path, { method = 'GET', headers = {} } = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = http.request(`${server.url}${path}`, { method, headers, agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      req.on('error', reject);
      req.end();
    }),
    5_000,
    `${method} ${path}`,
  );
}

async function metric(server, name) {
  const { status, body } = await request(server, '/metrics');
  assert.equal(status, 200);
  const samples = parsePrometheus(body).samples.filter((s) => s.name === name);
  return samples.length === 0 ? 0 : samples[0].value;
}

/** A WebSocket straight to the hub (skipNegotiation), after the JSON handshake. */
async function openDirect(t, server) {
  const socket = new RawSocket(`ws://${server.addr}/hubs/demo/chat`);
  t.after(() => socket.close());
  await withTimeout(socket.opened, 5_000, 'open a WebSocket');
  socket.send(`{"protocol":"json","version":1}${RS}`);
  assert.deepEqual(await socket.nextRecord({ pings: true }), {});
  return socket;
}

async function echo(socket, id, value) {
  socket.send(record({ type: 1, invocationId: id, target: 'echo', arguments: [value] }));
  for (let i = 0; i < 10; i++) {
    const message = await socket.nextRecord();
    if (message.type === 3 && message.invocationId === id) return message.result;
  }
  throw new Error(`no completion for invocation ${id}`);
}

describe('request-head timeout', () => {
  const TIMEOUT_SECS = 2;
  let server;
  before(async () => {
    server = await startServer({
      config: `request_headers_timeout_secs = ${TIMEOUT_SECS}\nlong_poll_timeout_secs = 5\n[tenants.demo]\nallow_anonymous = true\n`,
    });
  });
  after(() => server?.stop());

  test('a socket that sends nothing, or half a head, is closed after the timeout', async () => {
    const silent = await dial(server.port);
    const partial = await dial(server.port);
    partial.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const opened = Date.now();
    const [silentAt, partialAt] = await withTimeout(
      Promise.all([silent.closedAt, partial.closedAt]),
      (TIMEOUT_SECS + 5) * 1000,
      'the node to close a silent and a slow socket',
    );
    for (const at of [silentAt, partialAt]) {
      assert.ok(at - opened >= TIMEOUT_SECS * 1000 - 200, `closed after ${at - opened} ms, before the timeout`);
    }
    assert.ok((await metric(server, 'switchboard_http_header_timeouts_total')) >= 2);
  });

  test('an idle keep-alive connection is closed after the timeout, having been served', async () => {
    const socket = await dial(server.port);
    let answer = '';
    socket.on('data', (d) => (answer += d.toString()));
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await withTimeout(socket.closedAt, (TIMEOUT_SECS + 5) * 1000, 'the idle keep-alive connection to close');
    assert.match(answer, /^HTTP\/1\.1 200 OK/);
  });

  for (const [name, transport] of [
    ['WebSockets', HttpTransportType.WebSockets],
    ['Server-Sent Events', HttpTransportType.ServerSentEvents],
    ['long polling', HttpTransportType.LongPolling],
  ]) {
    test(`a ${name} connection idle for longer than the timeout stays open`, async (t) => {
      const connection = await connect(t, hubUrl(server, 'demo', 'chat'), { transport });
      let closed;
      connection.onclose((err) => (closed = err ?? 'closed'));
      // Longer than the header timeout, and (long polling) than one poll of 5 s.
      await sleep((TIMEOUT_SECS + 4) * 1000);
      assert.equal(closed, undefined, `closed: ${closed}`);
      assert.deepEqual(await invoke(connection, 'echo', { after: 'idle' }), { after: 'idle' });
    });
  }
});

describe('node-wide connection cap', () => {
  const MAX = 3;
  let server;
  before(async () => {
    server = await startServer({
      config: `max_connections = ${MAX}\n[admin]\nkeys = ["an-admin-key-for-the-cap-test"]\n[tenants.demo]\nallow_anonymous = true\n`,
    });
  });
  after(() => server?.stop());

  test('above the cap new clients get 503, the operator routes still answer, and freed slots are used again', async (t) => {
    const sockets = [];
    for (let i = 0; i < MAX; i++) sockets.push(await openDirect(t, server));
    // At the cap, /metrics itself is served on a reserved connection.
    assert.equal(await metric(server, 'switchboard_http_connections'), MAX);

    const refused = await request(server, '/hubs/demo/chat/negotiate?negotiateVersion=1', { method: 'POST' });
    assert.equal(refused.status, 503);
    assert.match(refused.body, /connection limit \(max_connections\)/);
    const upgrade = new RawSocket(`ws://${server.addr}/hubs/demo/chat`);
    await assert.rejects(withTimeout(upgrade.opened, 5_000, 'an upgrade above the cap'), /503/);
    const rest = await request(server, '/api/v1/tenants/demo/hubs/chat/:send', { method: 'POST' });
    assert.equal(rest.status, 503, 'the REST API is for clients, not the operator');

    for (const path of ['/healthz', '/readyz']) assert.equal((await request(server, path)).status, 200, path);
    const admin = await request(server, '/admin/v1/tenants', {
      headers: { Authorization: 'Bearer an-admin-key-for-the-cap-test' },
    });
    assert.equal(admin.status, 200, admin.body);
    assert.ok((await metric(server, 'switchboard_http_refused_total')) >= 3);
    assert.equal(await metric(server, 'switchboard_http_connections_max'), MAX);

    // The connections in their slots keep working.
    for (const [i, socket] of sockets.entries()) assert.equal(await echo(socket, `e${i}`, i), i);
    // Two leave: an official client (a negotiate, then a WebSocket) gets in.
    for (const socket of sockets.splice(0, 2)) await socket.close();
    const deadline = Date.now() + 5_000;
    while ((await metric(server, 'switchboard_http_connections')) > MAX - 2 && Date.now() < deadline) await sleep(50);
    const next = await connect(t, hubUrl(server, 'demo', 'chat'));
    assert.equal(await invoke(next, 'echo', 'in'), 'in');
  });
});
