// A plugin that misbehaves (endless loop, memory bomb, panic, trap) fails only its own
// invocation, with a clear error; the same connection and every other one keep working.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, invoke } from './lib/client.js';
import { hubUrl, pluginWasm, startServer, withTimeout } from './lib/server.js';

// Small limits keep the test fast: 200 ms of CPU and 32 MiB per instance. Tenant `demo` asks
// for detailed errors (the cause of a failure reaches the client); tenant `quiet` does not.
const CONFIG = `
[tenants.demo]
allow_anonymous = true
detailed_errors = true
[tenants.demo.limits]
invocation_cpu_ms = 200
memory_mb = 32

[tenants.quiet]
allow_anonymous = true
[tenants.quiet.limits]
invocation_cpu_ms = 200
memory_mb = 32
`;

/** Each hostile method and the substrings its invocation error must contain. */
const FAILURES = [
  ['spin', ['spin', 'CPU time limit']],
  ['allocate', ['allocate', 'memory limit']],
  ['panic', ['panic', 'panicked']],
  ['trap', ['trap', 'trapped']],
];

/** A failing invocation must be answered within this long (200 ms of CPU plus overhead). */
const FAIL_WITHIN_MS = 10_000;

let server;
before(async () => {
  server = await startServer({
    config: CONFIG,
    plugins: { 'demo/hostile.wasm': pluginWasm('hostile'), 'quiet/hostile.wasm': pluginWasm('hostile') },
  });
});
after(() => server?.stop());

async function expectFailure(connection, method, substrings) {
  await assert.rejects(
    withTimeout(connection.invoke(method), FAIL_WITHIN_MS, `invoke ${method}`),
    (err) => {
      for (const s of substrings) {
        assert.ok(err.message.includes(s), `${method}: error ${JSON.stringify(err.message)} lacks ${JSON.stringify(s)}`);
      }
      return true;
    },
  );
}

describe('hostile plugin', { timeout: 120_000 }, () => {
  test('ping works before anything goes wrong', async (t) => {
    const hostile = await connect(t, hubUrl(server, 'demo', 'hostile'));
    assert.equal(await invoke(hostile, 'ping'), 'pong');
  });

  for (const [method, substrings] of FAILURES) {
    test(`${method} fails its own invocation only`, async (t) => {
      const [victim, neighbour, chat] = await Promise.all([
        connect(t, hubUrl(server, 'demo', 'hostile')),
        connect(t, hubUrl(server, 'demo', 'hostile')),
        connect(t, hubUrl(server, 'demo', 'chat')),
      ]);
      // Twice in a row: a failed instance must not poison the next call.
      for (let round = 1; round <= 2; round++) {
        // Other connections are served while the bad invocation runs.
        const [, pong, echoed] = await Promise.all([
          expectFailure(victim, method, substrings),
          invoke(neighbour, 'ping'),
          invoke(chat, 'echo', { round, method }),
        ]);
        assert.equal(pong, 'pong');
        assert.deepEqual(echoed, { round, method });

        // The same connection is still open and its plugin still answers.
        assert.equal(victim.state, 'Connected');
        assert.equal(await invoke(victim, 'ping'), 'pong', `ping after ${method} (round ${round})`);
        assert.equal(await invoke(neighbour, 'ping'), 'pong');
        assert.equal(await invoke(chat, 'echo', 'still here'), 'still here');
      }
      assert.ok(server.running(), 'the server process is still running');
    });
  }

  test('without detailed errors a failure names the call, not its cause; a limit still names the limit', async (t) => {
    const quiet = await connect(t, hubUrl(server, 'quiet', 'hostile'));
    for (const method of ['panic', 'trap']) {
      await assert.rejects(withTimeout(quiet.invoke(method), FAIL_WITHIN_MS, method), (err) => {
        assert.equal(err.message, `An unexpected error occurred invoking '${method}' on the server.`);
        return true;
      });
    }
    await expectFailure(quiet, 'spin', ['spin', 'CPU time limit of 200 ms']);
    assert.equal(await invoke(quiet, 'ping'), 'pong');
  });

  test('new connections work after every kind of failure', async (t) => {
    const fresh = await connect(t, hubUrl(server, 'demo', 'hostile'));
    assert.equal(await invoke(fresh, 'ping'), 'pong');
    const chat = await connect(t, hubUrl(server, 'demo', 'chat'));
    assert.equal(await invoke(chat, 'echo', 'ok'), 'ok');
  });
});
