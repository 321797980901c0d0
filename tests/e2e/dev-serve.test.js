// `./dev serve`, the README's first command, as a user runs it (the built binary through
// SWITCHBOARD_BIN, so the test does not build): it makes a random admin key once, keeps it
// readable by the user only, prints the dashboard's sign-in link and key, and the node accepts
// that key. Chromium opens the printed link and is signed in; the key leaves the address bar.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './lib/nats.js';
import { REPO_ROOT, SWITCHBOARD_BIN, withTimeout } from './lib/server.js';
import { launchBrowser } from './lib/browser.js';
import { openPage, screenshot } from './lib/pages.js';

const LINK = /dashboard: (http:\/\/\S+\/dashboard#key=([0-9a-f]+))/;
const LISTENING = /listening\b.*?\baddr="?(127\.0\.0\.1:\d+)/;

let state;
let chromium;
const running = new Set();

before(async () => {
  state = await mkdtemp(path.join(os.tmpdir(), 'switchboard-dev-serve-'));
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close();
  for (const child of running) child.kill('SIGKILL');
  if (state) await rm(state, { recursive: true, force: true });
});

/** Runs `./dev serve ARGS` until its output matches every pattern; resolves with the matches. */
async function devServe(args, patterns, env = {}) {
  const child = spawn(path.join(REPO_ROOT, 'dev'), ['serve', ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', SWITCHBOARD_BIN, SWITCHBOARD_DEV_STATE: state, ...env },
  });
  running.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let output = '';
  const found = new Promise((resolve, reject) => {
    const check = () => {
      const matches = patterns.map((p) => output.match(p));
      if (matches.every(Boolean)) resolve(matches);
    };
    for (const stream of [child.stdout, child.stderr]) {
      stream.on('data', (chunk) => {
        output += chunk.toString('utf8');
        check();
      });
    }
    exited.then(() => reject(new Error(`./dev serve exited; its output:\n${output}`)));
  });
  const matches = await withTimeout(found, 30_000, `./dev serve output ${patterns}; so far:\n${output}`);
  const stop = async () => {
    child.kill('SIGTERM');
    await withTimeout(exited, 15_000, './dev serve exit');
    running.delete(child);
  };
  return { matches, output: () => output, stop };
}

test('./dev serve prints a sign-in link whose key the dashboard accepts', async () => {
  const port = await freePort();
  const first = await devServe(['--listen', `127.0.0.1:${port}`], [LINK, LISTENING]);
  const [[, link, key], [, addr]] = first.matches;
  assert.equal(addr, `127.0.0.1:${port}`);
  assert.equal(link, `http://127.0.0.1:${port}/dashboard#key=${key}`);
  assert.match(key, /^[0-9a-f]{48}$/, 'a random 192-bit key');
  const file = path.join(state, 'admin-key');
  assert.equal((await readFile(file, 'utf8')).trim(), key);
  assert.equal((await stat(file)).mode & 0o077, 0, 'the key file is the user\'s only');

  // The admin API takes the key, and nothing without it.
  const tenants = (k) =>
    fetch(`http://${addr}/admin/v1/tenants`, { headers: k ? { authorization: `Bearer ${k}` } : {} }).then((r) => r.status);
  assert.equal(await tenants(key), 200);
  assert.equal(await tenants(null), 401);

  // The printed link signs the browser in; the key is taken off the address at once.
  const { page, problems } = await openPage(chromium.browser, link);
  await page.waitForSelector('#board:not([hidden])');
  await page.waitForSelector('[data-hub="demo/chat"] canvas.msg-chart[data-points]');
  assert.equal(new URL(page.url()).hash, '');
  await screenshot(page, 'dev-serve-dashboard');
  assert.deepEqual(problems, []);
  await page.close();

  // Typed in by hand, as the printed key, it works too.
  const typed = await openPage(chromium.browser, `http://${addr}/dashboard`);
  await typed.page.fill('#key', key);
  await typed.page.press('#key', 'Enter');
  await typed.page.waitForSelector('#board:not([hidden])');
  await typed.page.close();
  await first.stop();

  // The next run keeps the key (the link stays good); a config of one's own gets none added.
  const second = await devServe(['--listen', `127.0.0.1:${port}`], [LINK, LISTENING]);
  assert.equal(second.matches[0][2], key);
  await second.stop();
});

test('with a config of its own, ./dev serve adds no key', async () => {
  const port = await freePort();
  const run = await devServe(['--listen', `127.0.0.1:${port}`, '--config', '/dev/null'], [LISTENING]);
  assert.doesNotMatch(run.output(), /dashboard#key=/);
  const status = await fetch(`http://127.0.0.1:${port}/admin/v1/tenants`, {
    headers: { authorization: `Bearer ${(await readFile(path.join(state, 'admin-key'), 'utf8')).trim()}` },
  }).then((r) => r.status);
  assert.equal(status, 403, 'no admin keys configured: the admin API is off');
  await run.stop();
});
