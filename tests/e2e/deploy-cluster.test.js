// Cluster-wide deploys: a real nats-server with JetStream and `switchboard serve --nats` nodes.
// A deploy or rollback through any node reaches every node (through the JetStream object
// store), and a node started after the deploy serves the current version from its start.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, invoke } from './lib/client.js';
import { ADMIN_SECTION, V1, V2, admin, deploy, wasmOf } from './lib/admin.js';
import { startNats } from './lib/nats.js';
import { hubUrl, startServer, unique, withTimeout } from './lib/server.js';

const CONFIG = `
${ADMIN_SECTION}
[tenants.demo]
allow_anonymous = true

[nats]
partitions = 2
registry_ttl_secs = 3
`;

let nats;
let nodes = [];
let v1;
let v2;
const startNode = () => startServer({ config: CONFIG, args: ['--nats', nats.url] });

before(async () => {
  [v1, v2] = await Promise.all([wasmOf(V1), wasmOf(V2)]);
  nats = await startNats();
  nodes = await Promise.all([startNode(), startNode()]);
});
after(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await nats?.close();
});

/** Polls until `connection` answers `version` with `want` (bounded); returns how long it took. */
async function servesVersion(connection, want, ms = 15_000) {
  const started = Date.now();
  const poll = (async () => {
    for (;;) {
      const got = await invoke(connection, 'version');
      if (got === want) return Date.now() - started;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return withTimeout(poll, ms, `version ${want}`);
}

/** Polls until the hub exists on `node` and connects to it (bounded). */
async function connectWhenServed(t, node, hub, ms = 15_000) {
  const poll = (async () => {
    for (;;) {
      const r = await fetch(`${hubUrl(node, 'demo', hub)}/negotiate?negotiateVersion=1`, { method: 'POST' });
      if (r.status === 200) return connect(t, hubUrl(node, 'demo', hub));
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  return withTimeout(poll, ms, `hub ${hub} on ${node.url}`);
}

describe('cluster-wide deploy', { timeout: 120_000 }, () => {
  test('a deploy through one node serves on every node; rollback is cluster-wide; a late node loads the current version', async (t) => {
    const hub = unique('cl');
    const first = await deploy(nodes[0], 'demo', hub, v1);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.version, 1);

    const [c0, c1] = await Promise.all([
      connect(t, hubUrl(nodes[0], 'demo', hub)),
      connectWhenServed(t, nodes[1], hub),
    ]);
    assert.equal(await invoke(c0, 'version'), V1);
    assert.equal(await invoke(c1, 'version'), V1);

    // Version 2 through the other node: node 0's clients get it too, on their open connection.
    const second = await deploy(nodes[1], 'demo', hub, v2);
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.equal(second.body.version, 2, 'versions are numbered cluster-wide');
    assert.equal(await invoke(c1, 'version'), V2);
    await servesVersion(c0, V2);

    // Rollback through node 0: every node goes back.
    const back = await admin(nodes[0], 'POST', `/tenants/demo/hubs/${hub}/rollback`);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.equal(back.body.version, 1);
    assert.equal(await invoke(c0, 'version'), V1);
    await servesVersion(c1, V1);

    // Both nodes list the same history.
    for (const node of nodes) {
      const listing = await admin(node, 'GET', '/tenants/demo/plugins');
      const entry = listing.body.hubs.find((h) => h.hub === hub);
      assert.ok(entry, `${node.url} lists ${hub}`);
      assert.equal(entry.current, 1);
      assert.deepEqual(entry.versions.map((v) => [v.version, v.sha256 === first.body.sha256 ? 'v1' : 'v2']), [[1, 'v1'], [2, 'v2']]);
    }

    // A node started now serves the current version (1) as soon as it listens.
    const late = await startNode();
    nodes.push(late);
    const c2 = await connect(t, hubUrl(late, 'demo', hub));
    assert.equal(await invoke(c2, 'version'), V1);
    const lateListing = await admin(late, 'GET', '/tenants/demo/plugins');
    assert.equal(lateListing.body.hubs.find((h) => h.hub === hub).current, 1);

    // And it follows later deploys, like the others.
    const third = await deploy(nodes[0], 'demo', hub, v2);
    assert.equal(third.body.version, 3);
    await servesVersion(c2, V2);
    await servesVersion(c1, V2);
    for (const c of [c0, c1, c2]) assert.equal(c.state, 'Connected');
  });

  test('an invalid component is rejected before it reaches the cluster', async (t) => {
    const hub = unique('clbad');
    assert.equal((await deploy(nodes[0], 'demo', hub, v1)).status, 200);
    const c1 = await connectWhenServed(t, nodes[1], hub);
    const bad = await deploy(nodes[0], 'demo', hub, v2.subarray(0, 1000));
    assert.equal(bad.status, 400);
    const listing = await admin(nodes[1], 'GET', '/tenants/demo/plugins');
    assert.deepEqual(listing.body.hubs.find((h) => h.hub === hub).versions.map((v) => v.version), [1]);
    assert.equal(await invoke(c1, 'version'), V1);
  });
});
