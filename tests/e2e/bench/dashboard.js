// What the dashboard costs and how fast it shows: not part of the test suite. Prints one JSON
// line with
// - page weight: bytes Chromium received for /dashboard and for / (bodies and headers, no cache);
// - time to first chart: from submitting the admin key to the first chart drawn, on a node
//   holding `--connections` open connections while `--callers` clients call echo in a loop;
// - the node's CPU (utime + stime from /proc/PID/stat) over `--seconds`, with the same idle
//   connections and no traffic, with no dashboard open and then with `--dashboards` open.
//
//   node tests/e2e/bench/dashboard.js [--connections 1000] [--callers 20] [--dashboards 10] [--seconds 20]
//
// Starts its own server on 127.0.0.1 (SWITCHBOARD_BIN) and Chromium; stops both. Linux only.

import { readFileSync } from 'node:fs';
import { benchOptions } from '../lib/bench.js';
import { ADMIN_KEY, ADMIN_SECTION } from '../lib/admin.js';
import { buildConnection } from '../lib/client.js';
import { hubUrl, startServer, withTimeout } from '../lib/server.js';
import { launchBrowser } from '../lib/browser.js';

const {
  connections: n,
  callers,
  dashboards,
  seconds,
} = benchOptions({ connections: 1000, callers: 20, dashboards: 10, seconds: 20 });
const TICKS = 100; // USER_HZ on Linux

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime
}

async function cpuPercent(pid) {
  const before = cpuTicks(pid);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return Math.round(((cpuTicks(pid) - before) / TICKS / seconds) * 1000) / 10;
}

/** Bytes Chromium received for `url` and everything it loaded (CDP encodedDataLength). */
async function pageWeight(context, url, signIn) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  let bytes = 0;
  let requests = 0;
  cdp.on('Network.loadingFinished', (e) => {
    bytes += e.encodedDataLength;
    requests += 1;
  });
  await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
  if (signIn) await signIn(page);
  await page.waitForTimeout(500);
  await page.close();
  return { bytes, requests };
}

async function signIn(page) {
  await page.fill('#key', ADMIN_KEY);
  const started = Date.now();
  await page.press('#key', 'Enter');
  await page.waitForSelector('canvas.msg-chart[data-points]', { timeout: 30_000 });
  return Date.now() - started;
}

const server = await startServer({ config: `${ADMIN_SECTION}\n[tenants.demo]\nallow_anonymous = true\n` });
const chromium = await launchBrowser();
const clients = [];
const result = { connections: n, callers, dashboards, seconds };
try {
  result.weight_dashboard = await pageWeight(chromium.browser, `${server.url}/dashboard`, signIn);
  result.weight_demo = await pageWeight(chromium.browser, `${server.url}/`);

  for (let i = 0; i < n; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 50); j++) {
      const c = buildConnection(hubUrl(server, 'demo', 'chat'));
      clients.push(c);
      batch.push(withTimeout(c.start(), 30_000, 'start'));
    }
    await Promise.all(batch);
  }

  let running = true;
  const load = clients.slice(0, callers).map(async (c) => {
    while (running) await c.invoke('echo', 'x');
  });
  const page = await chromium.browser.newPage();
  await page.goto(`${server.url}/dashboard`, { waitUntil: 'load' });
  result.first_chart_ms_loaded = await signIn(page);
  await page.close();
  running = false;
  await Promise.all(load);

  await new Promise((r) => setTimeout(r, 3000)); // the sampler notices no page is open
  result.cpu_percent_no_dashboard = await cpuPercent(server.pid);
  const pages = [];
  for (let i = 0; i < dashboards; i++) {
    const p = await chromium.browser.newPage();
    await p.goto(`${server.url}/dashboard`, { waitUntil: 'load' });
    await p.fill('#key', ADMIN_KEY);
    await p.press('#key', 'Enter');
    await p.waitForSelector('canvas.msg-chart[data-points]', { timeout: 30_000 });
    pages.push(p);
  }
  result.cpu_percent_dashboards = await cpuPercent(server.pid);
  for (const p of pages) await p.close();
} finally {
  await Promise.all(clients.map((c) => c.stop().catch(() => {})));
  await chromium.close();
  await server.stop();
}
console.log(JSON.stringify(result));
