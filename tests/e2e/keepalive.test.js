// Keep-alive: a connected client that hears nothing else gets a Ping from the server, every
// `keep_alive_secs` (15 s by default, ASP.NET's KeepAliveInterval; the JS client gives up after
// 30 s of silence). The test sets 1 s, so it waits for two pings, not for the default's 15 s.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openSession } from './lib/raw.js';
import { hubUrl, startServer } from './lib/server.js';

/** Upper bound for each Ping: the 1 s interval plus slack for a loaded machine. */
const PING_WITHIN_MS = 5_000;
const CONFIG = 'keep_alive_secs = 1\n[tenants.demo]\nallow_anonymous = true\n';

let server;
before(async () => {
  server = await startServer({ config: CONFIG });
});
after(() => server?.stop());

test('an idle connection receives {"type":6} well inside the client timeout', { timeout: 40_000 }, async (t) => {
  // openSession has already checked that the handshake response {} came first.
  const socket = await openSession(t, hubUrl(server, 'demo', 'chat'));
  const started = Date.now();
  for (const which of ['first', 'second']) {
    const ping = await socket.nextRecord({ pings: true, timeoutMs: PING_WITHIN_MS });
    assert.deepEqual(ping, { type: 6 }, `the ${which} record is a Ping`);
  }
  const elapsed = Date.now() - started;
  // Two intervals of 1 s: neither the default 15 s nor a ping per tick of something else.
  assert.ok(elapsed >= 1_500 && elapsed < 2 * PING_WITHIN_MS, `two pings after ${elapsed} ms`);
  // Pings travel as text frames of whole records, like every other JSON message.
  assert.ok(socket.frames.every((f) => !f.isBinary && f.text.endsWith('\x1e')));
  assert.equal(socket.closeInfo, undefined, 'the server closed an idle connection');
});
