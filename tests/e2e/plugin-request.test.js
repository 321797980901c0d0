// What a hub plugin sees of its caller, through the official client on each transport: the
// transport's name as ASP.NET gives it, and exactly the request headers and cookies its tenant
// allows (`plugin_headers`, `plugin_cookies`); others, and credentials, read as absent. The same
// scenarios run against the test hub's Rust, JavaScript and Python builds (each SDK's own
// `connection` calls).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { WAIT_MS, invoke } from './lib/client.js';
import { BUILDS, POLYGLOT_START_MS, hubUrl, hubWasm, startServer, withTimeout } from './lib/server.js';

const CONFIG = `
[tenants.demo]
allow_anonymous = true
plugin_headers = ["X-Allowed", "cookie"]
plugin_cookies = ["theme"]

[tenants.open]
allow_anonymous = true
`;

/** What every client sends with its requests. */
const HEADERS = {
  'X-Allowed': 'yes',
  'X-Secret': 'hidden',
  Cookie: 'theme=dark; session=s3cret',
};

let server;
before(async () => {
  const plugins = {};
  for (const build of BUILDS) {
    const testhub = hubWasm(build, 'testhub');
    plugins[`demo/testhub${build.suffix}.wasm`] = testhub;
    plugins[`open/testhub${build.suffix}.wasm`] = testhub;
  }
  server = await startServer({ config: CONFIG, plugins, startTimeoutMs: POLYGLOT_START_MS });
});
after(() => server?.stop());

const ask = (c) => invoke(c, 'request', ['x-allowed', 'X-Secret', 'cookie'], ['theme', 'session']);

for (const build of BUILDS) {
  async function open(t, tenant, transport, options = {}) {
    const connection = new HubConnectionBuilder()
      .withUrl(hubUrl(server, tenant, `testhub${build.suffix}`), {
        transport: HttpTransportType[transport],
        headers: HEADERS,
        ...options,
      })
      .configureLogging(LogLevel.Error)
      .build();
    t.after(() => withTimeout(connection.stop(), WAIT_MS, 'stop'));
    await withTimeout(connection.start(), WAIT_MS, `start ${transport}`);
    return connection;
  }

  describe(`${build.lang} hub`, { timeout: 120_000 }, () => {
    for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
      describe(transport, () => {
        test('the hub sees its transport, and only the allowed headers and cookies', async (t) => {
          const c = await open(t, 'demo', transport);
          assert.deepEqual(await ask(c), {
            transport,
            // The Cookie header is never shown, even when a tenant lists it: only allowed cookies.
            headers: { 'x-allowed': 'yes', 'X-Secret': null, cookie: null },
            cookies: { theme: 'dark', session: null },
          });
        });

        test('a tenant without allow-lists shows every header but credentials, and no cookie', async (t) => {
          const c = await open(t, 'open', transport);
          assert.deepEqual(await ask(c), {
            transport,
            headers: { 'x-allowed': 'yes', 'X-Secret': 'hidden', cookie: null },
            cookies: { theme: null, session: null },
          });
        });
      });
    }

    test('a WebSocket that skips negotiation is captured at its upgrade', async (t) => {
      const c = await open(t, 'demo', 'WebSockets', { skipNegotiation: true });
      const seen = await ask(c);
      assert.equal(seen.transport, 'WebSockets');
      assert.equal(seen.headers['x-allowed'], 'yes');
      assert.equal(seen.headers['X-Secret'], null);
      assert.deepEqual(seen.cookies, { theme: 'dark', session: null });
    });

    test('an allowed value over the byte budget is dropped, the small ones kept', async (t) => {
      // 5,000 bytes cannot fit in the 4 KiB a connection keeps of its request.
      const c = await open(t, 'demo', 'LongPolling', {
        headers: { ...HEADERS, Cookie: `theme=${'d'.repeat(5000)}`, 'X-Allowed': 'small' },
      });
      const seen = await ask(c);
      assert.equal(seen.cookies.theme, null, 'the oversized cookie is dropped');
      assert.equal(seen.headers['x-allowed'], 'small');
    });
  });
}
