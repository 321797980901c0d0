// The demo chat at `/`: two Chromium pages on the default single-node run (no --config) chat
// with each other through the demo tenant's chat hub, using the vendored official client; the
// page loads nothing from another origin, and its files carry types, caching and a strict CSP.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.js';
import { launchBrowser } from './lib/browser.js';
import { openPage, screenshot, assertSecurityHeaders } from './lib/pages.js';

let server;
let chromium;

before(async () => {
  server = await startServer();
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close();
  await server?.stop();
});

async function connectedPage(name) {
  const opened = await openPage(chromium.browser, `${server.url}/`);
  const requests = [];
  opened.page.on('request', (r) => requests.push(r.url()));
  await opened.page.waitForSelector('#status[data-state="connected"]');
  await opened.page.fill('#name', name);
  return { ...opened, requests };
}

async function say(page, text) {
  await page.focus('#message');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

test('two demo pages chat with each other, and the page links to the dashboard', async () => {
  const a = await connectedPage('alice');
  const b = await connectedPage('bob');
  assert.equal(a.response.status(), 200);
  assertSecurityHeaders(await a.response.allHeaders(), 'GET /');

  await say(a.page, 'hello from alice');
  await b.page.waitForSelector('#messages li:has-text("hello from alice")');
  await a.page.waitForSelector('#messages li:has-text("hello from alice")');
  await say(b.page, 'hi alice, bob here');
  await a.page.waitForSelector('#messages li:has-text("hi alice, bob here")');
  const seenByA = await a.page.$$eval('#messages li', (items) => items.map((li) => li.textContent));
  assert.deepEqual(seenByA, ['alice hello from alice', 'bob hi alice, bob here']);
  assert.equal(await a.page.inputValue('#message'), '', 'the sent message is cleared');

  assert.equal(await a.page.getAttribute('a[href="/dashboard"]', 'href'), '/dashboard');
  await screenshot(a.page, 'demo-alice');
  await screenshot(b.page, 'demo-bob');
  for (const p of [a, b]) {
    assert.deepEqual(p.problems, [], 'no console errors');
    const elsewhere = p.requests.filter((u) => !u.startsWith(server.url));
    assert.deepEqual(elsewhere, [], 'nothing is loaded from another origin');
    await p.page.close();
  }
});

test('a message is text, never markup', async () => {
  const a = await connectedPage('<b>mallory</b>');
  await say(a.page, '<img src=x onerror="document.title=1">');
  await a.page.waitForSelector('#messages li:has-text("onerror")');
  assert.equal(await a.page.$$eval('#messages img, #messages b', (n) => n.length), 0);
  assert.deepEqual(a.problems, []);
  await a.page.close();
});

test('the files: content types, caching, a strict CSP, 304 when unchanged, 404 otherwise', async () => {
  const expect = {
    '/': ['text/html', 'no-cache'],
    '/assets/demo.js': ['text/javascript', 'no-cache'],
    '/assets/site.css': ['text/css', 'no-cache'],
    '/assets/vendor/signalr-10.0.11.min.js': ['text/javascript', 'public, max-age=31536000, immutable'],
    '/assets/vendor/signalr.LICENSE.txt': ['text/plain', 'no-cache'],
  };
  for (const [path, [type, cache]] of Object.entries(expect)) {
    const r = await fetch(`${server.url}${path}`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(r.status, 200, path);
    assert.ok(r.headers.get('content-type').startsWith(type), `${path}: ${r.headers.get('content-type')}`);
    assert.equal(r.headers.get('cache-control'), cache, path);
    assertSecurityHeaders(r.headers, path);
    const etag = r.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]{16}"$/, path);
    await r.arrayBuffer();
    const again = await fetch(`${server.url}${path}`, {
      headers: { 'if-none-match': etag },
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(again.status, 304, `${path} revalidated`);
  }
  for (const path of ['/assets/nothing.js', '/assets/index.html', '/assets/..%2FCargo.toml', '/index.html']) {
    const r = await fetch(`${server.url}${path}`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(r.status, 404, path);
    await r.arrayBuffer();
  }
});

test('a node without the demo tenant serves no demo page', async () => {
  const other = await startServer({ config: '[tenants.acme]\nallow_anonymous = true\n' });
  try {
    const r = await fetch(`${other.url}/`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(r.status, 404);
    await r.arrayBuffer();
  } finally {
    await other.stop();
  }
});
