// Hub plugins written in JavaScript and Python (componentize-js, componentize-py): beyond the
// chat and notify scenarios (chat.test.js, notify.test.js run them against every build), each
// language's components stream both ways, are hot-reloaded by a deploy, are stopped by the
// tenant's CPU and memory limits while a neighbour is served, and keep tenants apart.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { Subject } from '@microsoft/signalr';
import { collect, connect, inbox, invoke, rejectsWith } from './lib/client.js';
import { expectCpuAndMemoryLimits } from './lib/hostile.js';
import { ADMIN_SECTION, deploy } from './lib/admin.js';
import { BUILDS, POLYGLOT_START_MS, hubUrl, polyglotWasm, startServer, withTimeout } from './lib/server.js';

const LIMITS = { invocation_cpu_ms: 300, memory_mb: 64, invocation_wall_ms: 3000 };

const CONFIG = `
${ADMIN_SECTION}
[tenants.demo]
allow_anonymous = true

[tenants.limited]
allow_anonymous = true
[tenants.limited.limits]
invocation_cpu_ms = ${LIMITS.invocation_cpu_ms}
memory_mb = ${LIMITS.memory_mb}
invocation_wall_ms = ${LIMITS.invocation_wall_ms}

[tenants.other]
allow_anonymous = true
`;

const LANGS = BUILDS.filter((b) => b.dir);

let server;
before(async () => {
  const plugins = {};
  for (const build of LANGS) {
    const chat = polyglotWasm(build, 'chat');
    const notify = polyglotWasm(build, 'notify');
    Object.assign(plugins, {
      [`demo/chat${build.suffix}.wasm`]: chat,
      [`demo/swap${build.suffix}.wasm`]: chat,
      [`demo/notify${build.suffix}.wasm`]: notify,
      [`other/notify${build.suffix}.wasm`]: notify,
      [`limited/hostile${build.suffix}.wasm`]: polyglotWasm(build, 'hostile'),
      [`other/chat${build.suffix}.wasm`]: chat,
    });
  }
  server = await startServer({ config: CONFIG, plugins, startTimeoutMs: POLYGLOT_START_MS });
});
after(() => server?.stop());

for (const build of LANGS) {
  const url = (tenant, hub) => hubUrl(server, tenant, `${hub}${build.suffix}`);

  describe(`${build.lang} hubs`, { timeout: 120_000 }, () => {
    test('a generator is a server stream; an upload stream arrives item by item', async (t) => {
      const c = await connect(t, url('demo', 'chat'));
      assert.deepEqual(await collect(c.stream('counter', 5)), [0, 1, 2, 3, 4]);
      assert.deepEqual(await collect(c.stream('counter', 0)), []);
      const numbers = new Subject();
      const total = invoke(c, 'sum', numbers);
      for (const n of [1, 2, 39]) numbers.next(n);
      numbers.complete();
      assert.equal(await total, 42);
    });

    test('errors: unknown methods, wrong argument counts and bad values are named', async (t) => {
      const c = await connect(t, url('demo', 'notify'));
      await rejectsWith(invoke(c, 'nothingHere'), "Unknown hub method 'nothingHere'");
      await rejectsWith(invoke(c, 'registerClient'), "Failed to invoke 'registerClient': invalid arguments");
      await rejectsWith(invoke(c, 'notifyClient', 1, 'Pending'), 'Unknown status');
      await rejectsWith(invoke(c, 'registerClient', 1.5), 'specificIdentifier must be an integer');
      // The connection still works.
      assert.equal(await invoke(c, 'registerClient', 7), undefined);
    });

    test('hot reload: a deploy swaps the hub for the next call on the same connection', async (t) => {
      const c = await connect(t, url('demo', 'swap'));
      assert.equal(await invoke(c, 'echo', 'before'), 'before');
      const wasm = await readFile(polyglotWasm(build, 'notify'));
      const r = await deploy(server, 'demo', `swap${build.suffix}`, wasm, { timeoutMs: POLYGLOT_START_MS });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      // The same connection now reaches the notify build.
      await rejectsWith(invoke(c, 'echo', 'after'), "Unknown hub method 'echo'");
      assert.equal(await invoke(c, 'registerClient', 11), undefined);
    });

    test('CPU and memory limits stop the call, the neighbour is served, the hub recovers', async (t) => {
      const hostile = await connect(t, url('limited', 'hostile'));
      const neighbour = await connect(t, url('other', 'chat'));
      await expectCpuAndMemoryLimits(hostile, neighbour, 20_000);
    });

    test('sleeping costs no CPU time; the wall-clock limit stops a call that waits too long', async (t) => {
      const hostile = await connect(t, url('limited', 'hostile'));
      // A second of sleep is more than three CPU budgets.
      assert.equal(await withTimeout(invoke(hostile, 'wait', 1000), 20_000, 'wait 1 s'), 1000);
      await rejectsWith(
        withTimeout(hostile.invoke('wait', 10_000), 20_000, 'wait 10 s'),
        `exceeded its time limit of ${LIMITS.invocation_wall_ms} ms`,
      );
      assert.equal(await invoke(hostile, 'ping'), 'pong');
    });

    test("an upload stream's error reaches the method as the client's, typed", async (t) => {
      const c = await connect(t, url('limited', 'hostile'));
      const failing = new Subject();
      const failed = invoke(c, 'uploadOutcome', failing);
      failing.next(1);
      failing.error(new Error('client gave up'));
      assert.deepEqual(await failed, { items: [1], client: 'client gave up' });
      const fine = new Subject();
      const done = invoke(c, 'uploadOutcome', fine);
      fine.next('a');
      fine.complete();
      assert.deepEqual(await done, { items: ['a'] });
    });

    test('tenants are isolated: the same hub and key in another tenant see nothing', async (t) => {
      const mine = await connect(t, url('demo', 'notify'));
      const theirs = await connect(t, url('other', 'notify'));
      const box = inbox(mine, 'addMessage');
      await invoke(mine, 'registerClient', 4242);
      // The other tenant's hub has no registration under the same identifier.
      await rejectsWith(invoke(theirs, 'notifyClient', 4242, 'Confirmed'), 'Unable to find connection');
      await invoke(mine, 'notifyClient', 4242, 'Failed');
      assert.deepEqual(await box.next(), ["Here's the message for failure"]);
      assert.equal(box.messages.length, 1);
    });
  });
}
