// Browsers on other origins: a page served from one 127.0.0.1 port connects to a node on
// another, in real headless Chromium, with the official browser bundle, over every transport
// and protocol; pages of origins the tenant does not allow are refused (CORS and the WebSocket
// `Origin` check), and the node logs the refusal.
//
// Two origins from one page server: `http://127.0.0.1:P` and `http://localhost:P` differ, and
// Chromium resolves `*.localhost` to loopback, so `http://app.localhost:P` tests a wildcard.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { launchBrowser } from './lib/browser.js';
import { request } from './lib/transports.js';
import { hubUrl, mintToken, pluginWasm, REPO_ROOT, startServer, withTimeout } from './lib/server.js';

const BUNDLES = path.join(REPO_ROOT, 'tests', 'e2e', 'node_modules', '@microsoft', 'signalr', 'dist', 'browser');
const MSGPACK_BUNDLE = path.join(
  REPO_ROOT, 'tests', 'e2e', 'node_modules', '@microsoft', 'signalr-protocol-msgpack', 'dist', 'browser',
  'signalr-protocol-msgpack.js',
);
const SECRET = 'web-tenant-signing-secret';
const STEP_MS = 15_000;

/** The page: loads the bundles and exposes `connectAndEcho`, which the test calls in it. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>cors</title>
<script src="/signalr.js"></script><script src="/msgpack.js"></script>
<script>
window.connectAndEcho = async ({ url, transport, protocol, token, withCredentials }) => {
  const options = { transport: signalR.HttpTransportType[transport] };
  if (token) options.accessTokenFactory = () => token;
  if (withCredentials !== undefined) options.withCredentials = withCredentials;
  let builder = new signalR.HubConnectionBuilder().withUrl(url, options).configureLogging(signalR.LogLevel.None);
  if (protocol === 'messagepack') builder = builder.withHubProtocol(new signalR.protocols.msgpack.MessagePackHubProtocol());
  const connection = builder.build();
  try {
    await connection.start();
  } catch (e) {
    return { started: false, error: String(e && e.message || e) };
  }
  try {
    const echoed = await connection.invoke('echo', { from: location.origin });
    const who = await connection.invoke('whoami');
    const used = connection.connection.transport.constructor.name;
    return { started: true, echoed, who, used };
  } finally {
    await connection.stop();
  }
};
</script>`;

/** A tiny page server: the HTML page and the browser bundles, on 127.0.0.1. */
async function startPageServer() {
  const files = {
    '/': ['text/html', Buffer.from(PAGE)],
    '/signalr.js': ['text/javascript', await readFile(path.join(BUNDLES, 'signalr.js'))],
    '/msgpack.js': ['text/javascript', await readFile(MSGPACK_BUNDLE)],
  };
  const server = createServer((req, res) => {
    const file = files[req.url];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file[0] }).end(file[1]);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, close: () => new Promise((resolve) => server.close(resolve)) };
}

const TRANSPORTS = [
  { transport: 'WebSockets', protocol: 'json' },
  { transport: 'WebSockets', protocol: 'messagepack' },
  { transport: 'ServerSentEvents', protocol: 'json' },
  { transport: 'LongPolling', protocol: 'json' },
  { transport: 'LongPolling', protocol: 'messagepack' },
];

describe('CORS and the Origin check, in Chromium', () => {
  let pages;
  let server;
  let browser;
  let allowed; // http://127.0.0.1:P
  let wildcard; // http://app.localhost:P
  let refused; // http://localhost:P

  before(async () => {
    pages = await startPageServer();
    allowed = `http://127.0.0.1:${pages.port}`;
    wildcard = `http://app.localhost:${pages.port}`;
    refused = `http://localhost:${pages.port}`;
    server = await startServer({
      config: `
[tenants.web]
signing_keys = ["${SECRET}"]
allowed_origins = ["${allowed}", "http://*.localhost:${pages.port}"]

[tenants.open]
allow_anonymous = true
allowed_origins = ["*"]
`,
      plugins: { 'web/chat.wasm': pluginWasm('chat'), 'open/chat.wasm': pluginWasm('chat') },
    });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    await pages?.close();
  });

  /** Opens `origin`'s page in a fresh tab and runs `connectAndEcho(args)` there. */
  async function inPage(origin, args) {
    const page = await browser.browser.newPage();
    try {
      await withTimeout(page.goto(`${origin}/`), STEP_MS, `load ${origin}`);
      return await withTimeout(page.evaluate((a) => window.connectAndEcho(a), args), STEP_MS, `connect from ${origin}`);
    } finally {
      await page.close();
    }
  }

  for (const { transport, protocol } of TRANSPORTS) {
    test(`an allowed origin connects with a token over ${transport} (${protocol})`, async () => {
      const token = await mintToken({ tenant: 'web', user: 'alice', config: server.configPath });
      const result = await inPage(allowed, { url: hubUrl(server, 'web', 'chat'), transport, protocol, token });
      assert.equal(result.started, true, result.error);
      assert.deepEqual(result.echoed, { from: allowed });
      assert.equal(result.who.userId, 'alice');
      assert.match(result.used, new RegExp(transport === 'WebSockets' ? 'WebSocket' : transport));
    });

    test(`a disallowed origin is refused over ${transport} (${protocol})`, async () => {
      const token = await mintToken({ tenant: 'web', user: 'alice', config: server.configPath });
      const result = await inPage(refused, { url: hubUrl(server, 'web', 'chat'), transport, protocol, token });
      assert.equal(result.started, false, 'start() succeeded from a disallowed origin');
    });
  }

  test('a subdomain of a wildcard entry connects', async () => {
    const token = await mintToken({ tenant: 'web', user: 'bob', config: server.configPath });
    const result = await inPage(wildcard, {
      url: hubUrl(server, 'web', 'chat'), transport: 'WebSockets', protocol: 'json', token,
    });
    assert.equal(result.started, true, result.error);
    assert.deepEqual(result.echoed, { from: wildcard });
  });

  test('`*` lets any origin in, without credentials', async () => {
    const url = hubUrl(server, 'open', 'chat');
    for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
      const result = await inPage(refused, { url, transport, protocol: 'json', withCredentials: false });
      assert.equal(result.started, true, `${transport}: ${result.error}`);
    }
    // With credentials the browser itself refuses: the node never says they are allowed.
    const credentialed = await inPage(refused, { url, transport: 'LongPolling', protocol: 'json' });
    assert.equal(credentialed.started, false);
  });

  test('the node answers preflights and refusals with the right headers, and logs refusals', async () => {
    const negotiate = `${hubUrl(server, 'web', 'chat')}/negotiate?negotiateVersion=1`;
    const preflight = (origin) =>
      request('OPTIONS', negotiate, {
        headers: {
          Origin: origin,
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'authorization,x-requested-with,x-signalr-user-agent',
        },
      });
    const ok = await preflight(allowed);
    assert.ok(ok.status === 200 || ok.status === 204, `preflight answered ${ok.status}`);
    assert.equal(ok.headers.get('access-control-allow-origin'), allowed);
    assert.equal(ok.headers.get('access-control-allow-credentials'), 'true');
    const allowHeaders = ok.headers.get('access-control-allow-headers').toLowerCase();
    for (const h of ['authorization', 'x-requested-with', 'x-signalr-user-agent', 'content-type']) {
      assert.ok(allowHeaders.includes(h), `${h} missing from ${allowHeaders}`);
    }
    assert.match(ok.headers.get('access-control-allow-methods'), /POST/);

    const no = await preflight(refused);
    assert.equal(no.status, 403);
    assert.equal(no.headers.get('access-control-allow-origin'), null);
    await server.waitForLog(/refused a request from an origin its tenant does not allow/);

    // `*`: the origin, never with credentials.
    const open = await request('POST', `${hubUrl(server, 'open', 'chat')}/negotiate?negotiateVersion=1`, {
      headers: { Origin: refused },
    });
    assert.equal(open.status, 200);
    assert.equal(open.headers.get('access-control-allow-origin'), refused);
    assert.equal(open.headers.get('access-control-allow-credentials'), null);

    // No Origin (a server, a native client): not a browser, not checked.
    const token = await mintToken({ tenant: 'web', user: 'carol', config: server.configPath });
    const native = await request('POST', negotiate, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(native.status, 200);
  });

  test('a WebSocket upgrade from a disallowed origin gets 403', async () => {
    const token = await mintToken({ tenant: 'web', user: 'dave', config: server.configPath });
    const url = `${hubUrl(server, 'web', 'chat').replace('http', 'ws')}?access_token=${token}`;
    const status = (origin) =>
      withTimeout(
        new Promise((resolve) => {
          const ws = new WebSocket(url, { origin });
          ws.once('open', () => {
            ws.terminate();
            resolve(101);
          });
          ws.once('unexpected-response', (_, res) => {
            resolve(res.statusCode);
            ws.terminate();
          });
          ws.once('error', () => resolve('error'));
        }),
        STEP_MS,
        `upgrade from ${origin}`,
      );
    assert.equal(await status(refused), 403);
    assert.equal(await status(allowed), 101);
  });
});
