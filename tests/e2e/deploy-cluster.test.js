// Cluster-wide deploys: a real nats-server with JetStream and `switchboard serve --nats` nodes.
// A deploy or rollback through any node reaches every node (through the JetStream object
// store), and a node started after the deploy serves the current version from its start.
// Tenants of the admin API are cluster-wide too (through the JetStream KV bucket
// `sb_tenants`): created, rotated and deleted through any node, loaded by a node started later.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { connect, inbox, invoke } from './lib/client.js';
import { ADMIN_SECTION, V1, V2, admin, deploy, wasmOf } from './lib/admin.js';
import { startNats } from './lib/nats.js';
import { hubUrl, startServer, unique, withTimeout } from './lib/server.js';

const CONFIG = `
${ADMIN_SECTION}
[limits]
groups_per_connection = 7

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

/** Polls `fn` until it resolves truthy (bounded); resolves with its value. */
async function until(fn, what, ms = 15_000) {
  const poll = (async () => {
    for (;;) {
      const v = await fn();
      if (v) return v;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return withTimeout(poll, ms, what);
}

/** An HS256 client token for `user` signed with `key`, valid for a minute. */
function signToken(key, user) {
  const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: user, iat: now, exp: now + 60 })}`;
  return `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
}

/** The status of a negotiate of `tenant/hub` on `node` with `token` (bounded). */
async function negotiateStatus(node, tenant, hub, token) {
  const r = await fetch(`${hubUrl(node, tenant, hub)}/negotiate?negotiateVersion=1`, {
    method: 'POST',
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(5_000),
  });
  await r.arrayBuffer();
  return r.status;
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

  test('admin-API tenants are cluster-wide: create, rotate keys, delete through any node; a late node loads them', async (t) => {
    const [one, two] = nodes;
    const name = unique('ct-');
    const hub = 'versioned';
    const key1 = `sign-one-${name}`;
    const key2 = `sign-two-${name}`;
    const apiKey = `api-${name}-0123456789`;

    // Create through node 1, with a limit of its own over the node-wide [limits].
    const created = await admin(one, 'POST', '/tenants', {
      body: { name, signing_keys: [key1], api_keys: [apiKey], limits: { connections: 50 } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.scope, 'cluster');
    assert.equal(created.body.limits.connections, 50, 'the body\'s limit');
    assert.equal(created.body.limits.groups_per_connection, 7, 'the node-wide [limits] for the rest');
    assert.equal((await admin(one, 'GET', '/tenants/demo')).body.scope, 'node', 'config-file tenants are per node');
    // The same name through the other node: the cluster already has it.
    const twice = await until(async () => {
      const r = await admin(two, 'POST', '/tenants', { body: { name, signing_keys: [`x-${name}`] } });
      return r.status === 409 && r;
    }, `409 for ${name} on node 2`);
    assert.equal(twice.body.code, 'TenantExists');
    const onTwo = await until(async () => {
      const r = await admin(two, 'GET', `/tenants/${name}`);
      return r.status === 200 && r.body;
    }, `tenant ${name} on node 2`);
    assert.deepEqual(onTwo.signing_keys, created.body.signing_keys);
    assert.deepEqual(onTwo.limits, created.body.limits, 'the same limits on every node');

    // A hub for it (a cluster-wide deploy); an official client connects to node 2 with a token of
    // the tenant's key, and a REST send through node 2 (with the tenant's API key) reaches it.
    assert.equal((await deploy(one, name, hub, v1)).status, 200);
    await until(async () => (await negotiateStatus(two, name, hub, signToken(key1, 'alice'))) === 200, `hub ${hub} on node 2`);
    const c = await connect(t, hubUrl(two, name, hub), { token: signToken(key1, 'alice') });
    assert.equal(await invoke(c, 'version'), V1);
    const news = inbox(c, 'tenantNews');
    const sent = await fetch(`${two.url}/api/v1/tenants/${name}/hubs/${hub}/:send`, {
      method: 'POST',
      headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
      body: JSON.stringify({ target: 'tenantNews', arguments: ['created on node 1'] }),
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(sent.status, 202);
    assert.deepEqual(await news.next(), ['created on node 1']);

    // A node started now has the tenant (and its hub) as soon as it listens.
    const late = await startNode();
    nodes.push(late);
    const onLate = await admin(late, 'GET', `/tenants/${name}`);
    assert.equal(onLate.status, 200, JSON.stringify(onLate.body));
    assert.equal(onLate.body.scope, 'cluster');
    await until(async () => (await negotiateStatus(late, name, hub, signToken(key1, 'bob'))) === 200, `hub ${hub} on the late node`);

    // Rotate through node 2: add the new key, then remove the old one.
    const added = await admin(two, 'POST', `/tenants/${name}/signing-keys`, { body: { key: key2 } });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    await until(async () => (await negotiateStatus(one, name, hub, signToken(key2, 'carol'))) === 200, 'the new key on node 1');
    assert.equal(await negotiateStatus(one, name, hub, signToken(key1, 'carol')), 200, 'both keys valid at once');
    const removed = await admin(two, 'DELETE', `/tenants/${name}/signing-keys/${created.body.signing_keys[0].id}`);
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual(removed.body.signing_keys, [{ id: added.body.id }]);
    for (const node of [one, late]) {
      await until(async () => (await negotiateStatus(node, name, hub, signToken(key1, 'dave'))) === 401, `old key refused on ${node.url}`);
    }
    await assert.rejects(connect(t, hubUrl(one, name, hub), { token: signToken(key1, 'dave') }), /401|Unauthorized/);
    await connect(t, hubUrl(one, name, hub), { token: signToken(key2, 'dave') });
    assert.equal(c.state, 'Connected', 'open connections stay open across a rotation');

    // Delete through node 1: node 2 closes its client with the reason, and refuses new ones.
    const closed = new Promise((resolve) => c.onclose((err) => resolve(err?.message ?? '')));
    const deleted = await admin(one, 'DELETE', `/tenants/${name}?reason=${encodeURIComponent('moved to another region')}`);
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
    assert.equal(deleted.body.scope, 'cluster');
    assert.match(await withTimeout(closed, 10_000, 'the client on node 2 closed'), /moved to another region/);
    for (const node of [two, late]) {
      await until(async () => (await negotiateStatus(node, name, hub, signToken(key2, 'erin'))) === 404, `404 on ${node.url}`);
      assert.equal((await admin(node, 'GET', `/tenants/${name}`)).status, 404);
    }
    await assert.rejects(connect(t, hubUrl(two, name, hub), { token: signToken(key2, 'erin') }), /404|Not Found/);

    // The name is free again, cluster-wide.
    const again = await admin(two, 'POST', '/tenants', { body: { name, signing_keys: [key1] } });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    await until(async () => (await admin(one, 'GET', `/tenants/${name}`)).status === 200, `${name} again on node 1`);
    assert.equal((await admin(one, 'DELETE', `/tenants/${name}`)).status, 200);
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
