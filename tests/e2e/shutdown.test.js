// Close semantics: a node that shuts down (SIGTERM) lets in-flight invocations finish, then
// closes each connection with `allowReconnect`, so clients with automatic reconnect come back
// (here: to a new node on the same address).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { WAIT_MS } from './lib/client.js';
import { hubUrl, pluginWasm, startServer, withTimeout } from './lib/server.js';

const plugins = { 'demo/testhub.wasm': pluginWasm('testhub') };

test('SIGTERM: in-flight calls finish, clients are told to reconnect, and do', async (t) => {
  const first = await startServer({ plugins });
  t.after(() => first.stop());
  const url = hubUrl(first, 'demo', 'testhub');
  const connection = new HubConnectionBuilder()
    .withUrl(url, { transport: HttpTransportType.WebSockets })
    .withAutomaticReconnect([0, 200, 200, 500, 500, 1000, 1000, 1000])
    .configureLogging(LogLevel.None)
    .build();
  t.after(() => withTimeout(connection.stop(), WAIT_MS, 'stop'));
  await withTimeout(connection.start(), WAIT_MS, 'start');
  const firstId = connection.connectionId;

  // A slow client result keeps an invocation in flight across the shutdown.
  let release;
  connection.on('slow', () => new Promise((resolve) => (release = resolve)));
  const reconnecting = new Promise((resolve) => connection.onreconnecting(resolve));
  const reconnected = new Promise((resolve) => connection.onreconnected(resolve));
  const inFlight = connection.invoke('clientResult', 'slow', 0);
  await withTimeout(
    (async () => {
      while (!release) await new Promise((r) => setTimeout(r, 10));
    })(),
    WAIT_MS,
    'the server to invoke slow',
  );

  const stopped = first.stop();
  await first.waitForLog(/draining connections/, WAIT_MS);
  release('done late');
  assert.equal(await withTimeout(inFlight, WAIT_MS, 'in-flight invocation'), 'done late');
  const error = await withTimeout(reconnecting, WAIT_MS, 'onreconnecting');
  assert.match(String(error), /Server is shutting down\./);
  await withTimeout(stopped, 10_000, 'first node exits');

  // A new node on the same address; the client comes back by itself, as a new connection.
  const second = await startServer({ plugins, args: ['--listen', first.addr] });
  t.after(() => second.stop());
  await withTimeout(reconnected, 15_000, 'onreconnected');
  assert.notEqual(connection.connectionId, firstId);
  assert.equal(await withTimeout(connection.invoke('echo', 'back'), WAIT_MS, 'echo'), 'back');
});
