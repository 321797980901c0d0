// Waiting and cancellation inside a hub method, through the official client on each transport:
// a plugin that sleeps spends no CPU budget (a paced stream outlives the CPU limit many times
// over), sees the client's CancelInvocation or its disconnect at once, and is stopped by the
// tenant's wall-clock limit instead of running forever. The same scenarios run against the test
// hub's Rust, JavaScript and Python builds (each SDK's `invocation.sleep` and `cancelled`).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { WAIT_MS, collect, invoke } from './lib/client.js';
import { BUILDS, POLYGLOT_START_MS, hubUrl, hubWasm, startServer, withTimeout } from './lib/server.js';

// 100 ms of guest CPU per call: a loop that waited by spinning would die within a tick or two.
// Plain calls may take 1.5 s in all, streams 4 s.
const CONFIG = `
[tenants.demo]
allow_anonymous = true
[tenants.demo.limits]
invocation_cpu_ms = 100
invocation_wall_ms = 1500
stream_wall_ms = 4000
`;

/** How long the test waits for a plugin to notice something, at most. */
const NOTICE_MS = 10_000;

let server;
before(async () => {
  const plugins = {};
  for (const build of BUILDS) plugins[`demo/testhub${build.suffix}.wasm`] = hubWasm(build, 'testhub');
  server = await startServer({ config: CONFIG, plugins, startTimeoutMs: POLYGLOT_START_MS });
});
after(() => server?.stop());

async function open(t, build, transport) {
  const connection = new HubConnectionBuilder()
    .withUrl(hubUrl(server, 'demo', `testhub${build.suffix}`), { transport: HttpTransportType[transport] })
    .configureLogging(LogLevel.Error)
    .build();
  t.after(() => withTimeout(connection.stop(), WAIT_MS, 'stop'));
  await withTimeout(connection.start(), WAIT_MS, `start ${transport}`);
  return connection;
}

/** Reads `key` from the tenant's store through `reader` until it is set (bounded). */
async function awaitKey(reader, key) {
  const deadline = Date.now() + NOTICE_MS;
  while (Date.now() < deadline) {
    const value = await invoke(reader, 'kvGet', key);
    if (value !== null) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`the plugin never stored ${key}`);
}

for (const build of BUILDS) {
  describe(`${build.lang} hub`, { timeout: 180_000 }, () => {
    for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
      describe(transport, () => {
        test('a paced stream sleeps between items far past the CPU limit', async (t) => {
          const c = await open(t, build, transport);
          // 12 items 100 ms apart: 1.1 s of waiting, 11 times the CPU budget.
          assert.deepEqual(await collect(c.stream('ticks', 12, 100), NOTICE_MS), [...Array(12).keys()]);
          // A plain call sleeping 1 s (ten CPU budgets) succeeds too.
          assert.equal(await withTimeout(invoke(c, 'wait', 1000), NOTICE_MS, 'wait'), 1000);
        });

        test('a client that cancels a paced stream stops it at once', async (t) => {
          const [c, reader] = await Promise.all([open(t, build, transport), open(t, build, transport)]);
          const seen = [];
          await withTimeout(
            new Promise((resolve, reject) => {
              const sub = c.stream('ticks', 1000, 500).subscribe({
                next: (i) => {
                  seen.push(i);
                  if (seen.length === 3) {
                    sub.dispose();
                    resolve();
                  }
                },
                complete: () => reject(new Error('the stream completed before it was cancelled')),
                error: reject,
              });
            }),
            NOTICE_MS,
            'three ticks',
          );
          // The plugin's sleep failed on the cancellation, so it stored how far it got: the three
          // items the client saw (the cancel arrives while it sleeps after the third), or one more
          // on a machine so busy that the cancel took longer than a sleep.
          const stored = Number(await awaitKey(reader, `ticks:${c.connectionId}`));
          assert.ok(stored === 3 || stored === 4, `items sent before the cancel was seen: ${stored}`);
          assert.equal(await invoke(c, 'echo', 'after'), 'after');
        });

        test('a call waiting on its connection sees the connection end', async (t) => {
          const [c, reader] = await Promise.all([open(t, build, transport), open(t, build, transport)]);
          const id = c.connectionId;
          // Never answered: the method sleeps until cancelled. Its rejection on stop is expected.
          c.invoke('waitUntilCancelled').catch(() => {});
          await new Promise((resolve) => setTimeout(resolve, 200));
          await withTimeout(c.stop(), WAIT_MS, 'stop');
          assert.equal(await awaitKey(reader, `waited:${id}`), 'cancelled');
        });

        test('the wall-clock limit stops a call that waits too long; the connection carries on', async (t) => {
          const c = await open(t, build, transport);
          await assert.rejects(withTimeout(invoke(c, 'wait', 5000), NOTICE_MS, 'wait 5 s'), (err) => {
            assert.equal(
              err.message,
              "An unexpected error occurred invoking 'wait' on the server. The hub method exceeded its time limit of 1500 ms.",
            );
            return true;
          });
          // A stream's limit is its own (4 s): 60 ticks 100 ms apart end with the stream's error.
          const items = [];
          const error = await withTimeout(
            new Promise((resolve, reject) => {
              c.stream('ticks', 60, 100).subscribe({
                next: (i) => items.push(i),
                complete: () => reject(new Error('the stream outlived its time limit')),
                error: resolve,
              });
            }),
            NOTICE_MS,
            'stream time limit',
          );
          assert.match(error.message, /exceeded its time limit of 4000 ms/);
          assert.ok(items.length >= 5 && items.length < 60, `items before the limit: ${items.length}`);
          assert.equal(await invoke(c, 'echo', 'still here'), 'still here');
        });
      });
    }
  });
}
