// What a client reads when a hub method fails, in each language, with the official client. As
// in ASP.NET Core: an error the method raises on purpose (a HubError, a Rust `Err`) reaches the
// client word for word; anything else (a Rust panic, an uncaught JavaScript or Python
// exception) reaches it as "An unexpected error occurred invoking 'crash' on the server.", with
// the cause after it only when the tenant sets `detailed_errors`. The same scenarios run
// against the test hub's Rust, JavaScript and Python builds, on a tenant with detailed errors
// (`demo`) and one without (`quiet`).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, invoke } from './lib/client.js';
import { BUILDS, POLYGLOT_START_MS, hubUrl, hubWasm, startServer } from './lib/server.js';

const CONFIG = `
[tenants.demo]
allow_anonymous = true
detailed_errors = true

[tenants.quiet]
allow_anonymous = true
`;

const UNEXPECTED = "An unexpected error occurred invoking 'crash' on the server.";

/** What each build's crash looks like with detailed errors: the cause, in its language's words. */
const DETAIL = {
  Rust: /^The plugin panicked: panicked at .*: disk on fire$/,
  JavaScript: /^TypeError: disk on fire$/,
  Python: /^ValueError: disk on fire$/,
};

let server;
before(async () => {
  const plugins = {};
  for (const build of BUILDS) {
    for (const tenant of ['demo', 'quiet']) plugins[`${tenant}/testhub${build.suffix}.wasm`] = hubWasm(build, 'testhub');
  }
  server = await startServer({ config: CONFIG, plugins, startTimeoutMs: POLYGLOT_START_MS });
});
after(() => server?.stop());

/** The error message `method(...args)` fails with. */
async function failure(connection, method, ...args) {
  const err = await invoke(connection, method, ...args).then(
    (value) => assert.fail(`${method} returned ${JSON.stringify(value)}`),
    (e) => e,
  );
  return err.message;
}

for (const build of BUILDS) {
  describe(`${build.lang} hub`, { timeout: 120_000 }, () => {
    const hub = `testhub${build.suffix}`;

    test("a HubError's message reaches the client word for word, detailed errors or not", async (t) => {
      for (const tenant of ['demo', 'quiet']) {
        const c = await connect(t, hubUrl(server, tenant, hub));
        assert.equal(await failure(c, 'throw', 'Unknown status "Maybe"'), 'Unknown status "Maybe"', tenant);
        assert.equal(await invoke(c, 'echo', 'still here'), 'still here');
      }
    });

    test('an unexpected exception is hidden without detailed errors', async (t) => {
      const c = await connect(t, hubUrl(server, 'quiet', hub));
      assert.equal(await failure(c, 'crash', 'disk on fire'), UNEXPECTED);
      // The connection and the hub carry on.
      assert.equal(await invoke(c, 'echo', 1), 1);
      assert.equal(await failure(c, 'crash', 'disk on fire'), UNEXPECTED);
    });

    test('with detailed errors the client reads the exception after the same sentence', async (t) => {
      const c = await connect(t, hubUrl(server, 'demo', hub));
      const message = await failure(c, 'crash', 'disk on fire');
      assert.ok(message.startsWith(`${UNEXPECTED} `), message);
      assert.match(message.slice(UNEXPECTED.length + 1), DETAIL[build.lang]);
      assert.equal(await invoke(c, 'echo', 2), 2);
    });

    test('the host\'s own failures keep their words (unknown method, bad arguments)', async (t) => {
      const c = await connect(t, hubUrl(server, 'quiet', hub));
      assert.equal(await failure(c, 'nope'), "Unknown hub method 'nope'");
      assert.match(await failure(c, 'crash'), /^Failed to invoke 'crash': invalid arguments/);
    });
  });
}
