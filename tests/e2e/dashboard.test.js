// The dashboard at /dashboard in headless Chromium, against a real node: nothing shows without
// an admin key (and the built-in admin hub refuses the wrong one); with one, the page receives a
// snapshot a second over SignalR, shows a connection appearing and its chart moving when traffic
// runs, deploys a plugin version by upload and sees it serve, rolls back, and shows the
// validation error of a broken upload. Screenshots of each state go to the artifacts folder.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { HubConnectionBuilder, HttpTransportType, LogLevel } from '@microsoft/signalr';
import { buildConnection, connect, invoke } from './lib/client.js';
import { ADMIN_KEY, ADMIN_SECTION, V1, V2, deploy, wasmOf } from './lib/admin.js';
import { hubUrl, startServer, unique, withTimeout } from './lib/server.js';
import { launchBrowser } from './lib/browser.js';
import { openPage, screenshot, assertSecurityHeaders, PAGE_TIMEOUT_MS } from './lib/pages.js';

const CONFIG = `
${ADMIN_SECTION}
[tenants.demo]
allow_anonymous = true
`;

let server;
let chromium;
let files;

before(async () => {
  server = await startServer({ config: CONFIG });
  chromium = await launchBrowser();
  files = await mkdtemp(path.join(os.tmpdir(), 'switchboard-dashboard-'));
});

after(async () => {
  await chromium?.close();
  await server?.stop();
  if (files) await rm(files, { recursive: true, force: true });
});

async function signedIn(key = ADMIN_KEY) {
  const opened = await openPage(chromium.browser, `${server.url}/dashboard`);
  await opened.page.fill('#key', key);
  await opened.page.press('#key', 'Enter');
  return opened;
}

/** The status of a WebSocket upgrade request to `path` (101 when it is accepted). */
function upgradeStatus(path) {
  const done = new Promise((resolve, reject) => {
    const request = http.get(`${server.url}${path}`, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    });
    request.on('upgrade', (response, socket) => {
      socket.destroy();
      resolve(response.statusCode);
    });
    request.on('response', (response) => {
      response.resume();
      resolve(response.statusCode);
    });
    request.on('error', reject);
  });
  return withTimeout(done, 5_000, `upgrade ${path}`);
}

/** The text of a fact (a `dd` after a `dt` with `label`) in the card of hub `id`. */
function fact(page, id, label) {
  return page.$eval(
    `[data-hub="${id}"]`,
    (card, label) => {
      const dt = [...card.querySelectorAll('dt')].find((d) => d.textContent === label);
      return dt ? dt.nextElementSibling.textContent : null;
    },
    label,
  );
}

test('a wrong key sees nothing, and the admin hub refuses it', async () => {
  const { page, response, problems } = await signedIn('not-an-admin-key-at-all');
  assertSecurityHeaders(await response.allHeaders(), 'GET /dashboard');
  await page.waitForSelector('#login-error:has-text("Not signed in")');
  assert.match(await page.textContent('#login-error'), /not an admin key/);
  assert.equal(await page.isHidden('#board'), true);
  assert.equal(await page.$$eval('[data-hub]', (cards) => cards.length), 0);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused key is not kept');
  await screenshot(page, 'dashboard-wrong-key');
  await page.close();
  // Only the refused sign-in request shows in the console (as a failed resource load).
  assert.ok(problems.every((p) => /401/.test(p)), problems.join('\n'));

  // The hub itself, with the official client: the negotiate and the WebSocket both refuse.
  for (const skipNegotiation of [false, true]) {
    const connection = new HubConnectionBuilder()
      .withUrl(`${server.url}/dashboard/hub`, {
        transport: HttpTransportType.WebSockets,
        skipNegotiation,
        accessTokenFactory: () => 'not-an-admin-key-at-all',
      })
      .configureLogging(LogLevel.None)
      .build();
    await assert.rejects(withTimeout(connection.start(), 5_000, 'start'), /401|Unauthorized|WebSocket/);
  }
  for (const headers of [{}, { authorization: 'Bearer wrong-key-0123456789' }]) {
    const r = await fetch(`${server.url}/dashboard/hub/negotiate?negotiateVersion=1`, {
      method: 'POST',
      headers,
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(r.status, 401);
    assert.equal((await r.json()).code, 'Unauthorized');
  }
  assert.equal(await upgradeStatus('/dashboard/hub?id=x&access_token=wrong-key-0123456789'), 401);
  assert.equal(await upgradeStatus('/dashboard/hub?id=x'), 401);
});

test('the admin hub sends snapshots to a client with the key, and nothing to call', async (t) => {
  const connection = buildConnection(`${server.url}/dashboard/hub`, { token: ADMIN_KEY });
  t.after(() => connection.stop());
  const snapshot = new Promise((resolve) => connection.on('snapshot', resolve));
  await withTimeout(connection.start(), 5_000, 'start');
  const data = await withTimeout(snapshot, 5_000, 'a snapshot');
  assert.equal(typeof data.node.uptime_secs, 'number');
  assert.ok(data.hubs.some((h) => h.tenant === 'demo' && h.hub === 'chat'), JSON.stringify(data.hubs));
  await assert.rejects(invoke(connection, 'anything'), /no methods/);
});

test('signed in: a connection appears and the chart moves when traffic runs', async (t) => {
  const { page, problems } = await signedIn();
  const started = Date.now();
  await page.waitForSelector('[data-hub="demo/chat"] canvas.msg-chart[data-points]');
  const firstChartMs = Date.now() - started;
  t.diagnostic(`sign-in to first chart: ${firstChartMs} ms`);
  assert.equal(await page.isHidden('#login'), true);
  assert.equal(await fact(page, 'demo/chat', 'Connections'), '0');

  const client = await connect(t, hubUrl(server, 'demo', 'chat'));
  await page.waitForFunction(
    () => document.querySelector('[data-hub="demo/chat"] canvas.conn-chart')?.dataset.last === '1',
    null,
    { timeout: PAGE_TIMEOUT_MS },
  );
  assert.equal(await fact(page, 'demo/chat', 'Connections'), '1');
  assert.equal(await fact(page, 'demo/chat', 'Transports'), 'WebSockets 1');
  assert.equal(await fact(page, 'demo/chat', 'Protocols'), 'json 1');

  // Traffic until the messages chart has drawn a rate above zero (bounded by the page wait).
  let running = true;
  const traffic = (async () => {
    for (let i = 0; running && i < 2_000; i++) await invoke(client, 'echo', i);
  })();
  try {
    await page.waitForFunction(
      () => Number(document.querySelector('[data-hub="demo/chat"] canvas.msg-chart')?.dataset.max) > 0,
      null,
      { timeout: PAGE_TIMEOUT_MS },
    );
  } finally {
    running = false;
    await traffic;
  }
  assert.notEqual(await fact(page, 'demo/chat', 'p99'), '–');
  await screenshot(page, 'dashboard-traffic');
  await client.stop();
  await page.waitForFunction(
    () => document.querySelector('[data-hub="demo/chat"] canvas.conn-chart')?.dataset.last === '0',
    null,
    { timeout: PAGE_TIMEOUT_MS },
  );
  assert.deepEqual(problems, []);
  await page.close();
});

test('deploy by upload, see it serve, roll back, and see the error of a broken upload', async (t) => {
  const hub = unique('dash');
  const id = `demo/${hub}`;
  const [v1, v2] = await Promise.all([wasmOf(V1), wasmOf(V2)]);
  assert.equal((await deploy(server, 'demo', hub, v1)).status, 200);
  const v2File = path.join(files, 'versioned-v2.wasm');
  const brokenFile = path.join(files, 'broken.wasm');
  await writeFile(v2File, v2);
  await writeFile(brokenFile, Buffer.from('this is not a WebAssembly component'));

  const { page, problems } = await signedIn();
  await page.waitForSelector(`#deploy-hub option[value="${id}"]`, { state: 'attached' });
  const client = await connect(t, hubUrl(server, 'demo', hub));
  assert.equal(await invoke(client, 'version'), V1);

  await page.selectOption('#deploy-hub', id);
  await page.setInputFiles('#deploy-file', v2File);
  await page.click('#deploy-button');
  await page.waitForSelector(`#deploy-result:has-text("Deployed ${id} version 2")`);
  await page.waitForSelector(`#plugins tr.current[data-hub="${id}"][data-version="2"]`);
  await page.waitForSelector(`#events li:has-text("${id}: version 2 deployed")`);
  assert.equal(await invoke(client, 'version'), V2, 'the upload serves');
  await screenshot(page, 'dashboard-deployed');

  // Keyboard: focus the rollback button and press Enter.
  await page.focus(`#plugins button.rollback[data-hub="${id}"][data-version="1"]`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`#plugins tr.current[data-hub="${id}"][data-version="1"]`);
  await page.waitForSelector(`#events li:has-text("${id}: rolled back to version 1")`);
  assert.equal(await invoke(client, 'version'), V1, 'the rollback serves');

  await page.selectOption('#deploy-hub', id);
  await page.setInputFiles('#deploy-file', brokenFile);
  await page.click('#deploy-button');
  await page.waitForSelector('#deploy-error:has-text("Deploy refused (NotAComponent)")');
  assert.equal(await invoke(client, 'version'), V1, 'the broken upload changed nothing');
  await screenshot(page, 'dashboard-broken-upload');
  // The refused upload's 400 shows in the console as a failed resource load; nothing else.
  assert.ok(problems.every((p) => /400/.test(p)), problems.join('\n'));
  await page.close();
});
