// Keep-alive: a connected client that hears nothing else gets a Ping from the server
// (ASP.NET's KeepAliveInterval is 15 s; the JS client gives up after 30 s of silence).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openSession } from './lib/raw.js';
import { hubUrl, startServer } from './lib/server.js';

/** Upper bound for the first Ping: the 15 s interval plus slack for a loaded machine. */
const PING_WITHIN_MS = 20_000;

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

test('an idle connection receives {"type":6} well inside the client timeout', { timeout: 40_000 }, async (t) => {
  // openSession has already checked that the handshake response {} came first.
  const socket = await openSession(t, hubUrl(server, 'demo', 'chat'));
  const started = Date.now();
  const ping = await socket.nextRecord({ pings: true, timeoutMs: PING_WITHIN_MS });
  assert.deepEqual(ping, { type: 6 });
  const elapsed = Date.now() - started;
  assert.ok(elapsed < PING_WITHIN_MS, `first ping after ${elapsed} ms`);
  // Pings travel as text frames of whole records, like every other JSON message.
  assert.ok(socket.frames.every((f) => !f.isBinary && f.text.endsWith('\x1e')));
  assert.equal(socket.closeInfo, undefined, 'the server closed an idle connection');
});
