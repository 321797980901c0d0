// The dashboard's cluster view in headless Chromium, against two real nodes on a real
// nats-server: each node writes a small record of itself to the cluster registry every few
// seconds, and the dashboard of node A lists node B with its health, readiness, version and
// connections; a client connecting to B shows up on A's page; B killed (no goodbye) stops
// refreshing its record and shows as down or leaves the list.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildConnection, connect } from './lib/client.js';
import { ADMIN_KEY, ADMIN_SECTION } from './lib/admin.js';
import { startCluster } from './lib/cluster.js';
import { hubUrl, withTimeout } from './lib/server.js';
import { launchBrowser } from './lib/browser.js';
import { openPage, screenshot, PAGE_TIMEOUT_MS } from './lib/pages.js';

const CONFIG = `
${ADMIN_SECTION}
[tenants.demo]
allow_anonymous = true

[nats]
registry_ttl_secs = 3
`;

/** How long a killed node may take to show as down or leave the list (TTL 3 s, plus ticks). */
const GONE_MS = 15_000;

let cluster;
let chromium;

before(async () => {
  cluster = await startCluster({ size: 2, config: CONFIG });
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close();
  await cluster?.close();
});

/** The node id a node logged when its backplane started. */
async function nodeId(node) {
  const m = await node.waitForLog(/NATS backplane started node=([0-9a-f]{16})/);
  return m[1];
}

/** The text of column `n` (1-based, the row header included) of node `id`'s row. */
function cell(page, id, n) {
  return page.$eval(`#cluster tr[data-node="${id}"] > :nth-child(${n})`, (c) => c.textContent);
}

test('the dashboard of one node lists the other, its connections, and its going down', async (t) => {
  const [a, b] = cluster.nodes;
  const [idA, idB] = await Promise.all([nodeId(a), nodeId(b)]);
  assert.notEqual(idA, idB);

  const { page, problems } = await openPage(chromium.browser, `${a.url}/dashboard`);
  await page.fill('#key', ADMIN_KEY);
  await page.press('#key', 'Enter');
  await page.waitForSelector(`#cluster tr[data-node="${idA}"]`);
  await page.waitForSelector(`#cluster tr[data-node="${idB}"][data-state="up"]`, { timeout: GONE_MS });
  assert.match(await cell(page, idA, 1), /\(this node\)/);
  assert.equal(await cell(page, idB, 2), 'ok');
  assert.equal(await cell(page, idB, 3), 'ready');
  assert.match(await cell(page, idB, 5), /^\d+\.\d+\.\d+/);
  assert.equal(await cell(page, idB, 6), '0');
  assert.equal(await cell(page, idB, 8), '0 / 0');

  // A client on B: A's page shows B holding it, within a few of B's refreshes.
  const client = await connect(t, hubUrl(b, 'demo', 'chat'));
  await page.waitForSelector(`#cluster tr[data-node="${idB}"] td.connections:text-is("1")`, { timeout: GONE_MS });
  assert.equal(await cell(page, idA, 6), '0', 'A holds none of it');
  await screenshot(page, 'dashboard-cluster');
  await client.stop();

  // B killed: no drain, no goodbye. Its record stops changing, so A marks it down or, once the
  // record expired, no longer lists it; A itself stays listed and up.
  await b.kill('SIGKILL');
  await page.waitForFunction(
    (id) => {
      const row = document.querySelector(`#cluster tr[data-node="${id}"]`);
      return !row || row.dataset.state === 'down';
    },
    idB,
    { timeout: GONE_MS },
  );
  assert.equal(await page.$eval(`#cluster tr[data-node="${idA}"]`, (r) => r.dataset.state), 'up');
  await screenshot(page, 'dashboard-cluster-node-down');
  // B's WebSocket dropping is a console error of the client, not of the page.
  assert.deepEqual(problems, []);
  await page.close();
});

test('the admin hub snapshot carries every node of the cluster', async (t) => {
  const node = await cluster.startNode();
  const connection = buildConnection(`${node.url}/dashboard/hub`, { token: ADMIN_KEY });
  t.after(() => connection.stop());
  const ids = new Promise((resolve) => {
    connection.on('snapshot', (data) => {
      if (data.nodes.length >= 2) resolve(data.nodes);
    });
  });
  await withTimeout(connection.start(), 5_000, 'start');
  const nodes = await withTimeout(ids, GONE_MS, 'a snapshot listing two nodes');
  assert.equal(nodes.filter((n) => n.this).length, 1);
  for (const n of nodes) {
    for (const field of ['id', 'version', 'uptime_secs', 'ready', 'draining', 'down', 'connections', 'lost', 'late']) {
      assert.ok(field in n, `${field} in ${JSON.stringify(n)}`);
    }
  }
});
