// Azure SignalR Service compatibility: a backend written against Azure's data-plane REST API
// (2022-06-01; tests/e2e/lib/azure-backend.js calls it as the Azure management SDK does) works
// against Switchboard by changing only its connection string. Two nodes over one nats-server:
// the backend calls node 1, the official clients sit on node 2 (and on node 1), so sends,
// group changes, presence questions and closes all cross the cluster.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { azureBackend } from './lib/azure-backend.js';
import { connect, inbox, WAIT_MS } from './lib/client.js';
import { clusterConfig, startCluster } from './lib/cluster.js';
import { hubUrl, mintToken, pluginWasm, unique, withTimeout } from './lib/server.js';

const DEMO_KEY = 'azure-demo-access-key-0123456789';
const ACME_KEY = 'azure-acme-access-key-0123456789';
const CONFIG = clusterConfig({
  apiKeys: [DEMO_KEY],
  tenants: `
[tenants.acme]
allow_anonymous = true
signing_keys = ["acme-signing-key-0123456789"]
api_keys = ["${ACME_KEY}"]
`,
});

let cluster;
let front; // the node the backend calls
let back; // the node most clients use
before(async () => {
  cluster = await startCluster({ size: 2, config: CONFIG, serverOptions: { plugins: { 'acme/chat.wasm': pluginWasm('chat') } } });
  [front, back] = cluster.nodes;
});
after(() => cluster?.close());

/** What a team moving from Azure changes: the connection string. */
const connectionString = (node, key) => `Endpoint=${node.url};AccessKey=${key};Version=1.0;`;

/** An official client on `node`'s demo (or `tenant`) chat hub, as `user`, recording `msg`. */
async function client(t, node, { user, tenant = 'demo' } = {}) {
  const token = user ? await mintToken({ tenant, user, config: front.configPath }) : undefined;
  const connection = await connect(t, hubUrl(node, tenant, 'chat'), { token });
  const closed = new Promise((resolve) => connection.onclose((error) => resolve(error ?? null)));
  return { connection, id: connection.connectionId, box: inbox(connection, 'msg'), closed };
}

/** Waits (bounded) until `check()` answers `status`; the cluster registry lags a connect by up to a second. */
async function eventually(check, status, what) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const r = await check();
    if (r.status === status) return r;
    if (Date.now() > deadline) throw new Error(`${what}: expected ${status}; seen ${r.status} ${JSON.stringify(r.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Sends a marker to `who` alone and waits for it: whatever `who` got before it is in its box. */
async function settle(backend, who) {
  const marker = unique('marker-');
  assert.equal((await backend.sendToConnection('chat', who.id, 'msg', [marker])).status, 202);
  await who.box.next((args) => args[0] === marker);
  const seen = who.box.messages.map((args) => args[0]);
  return seen.slice(0, seen.indexOf(marker));
}

describe('Azure SignalR data-plane REST API', () => {
  test('a backend written for Azure reaches clients on another node by changing only endpoint and key', async (t) => {
    const backend = azureBackend(connectionString(front, DEMO_KEY));
    assert.equal((await backend.health()).status, 200);
    const user = unique('az-u-');
    const [a, b] = await Promise.all([client(t, back, { user }), client(t, front)]);
    await eventually(() => backend.connectionExists('chat', a.id), 200, 'HEAD connection on the other node');
    assert.equal((await backend.userExists('chat', user)).status, 200);
    assert.equal((await backend.userExists('chat', unique('nobody-'))).status, 404);

    assert.equal((await backend.broadcast('chat', 'msg', ['to all but b'], [b.id])).status, 202);
    assert.equal((await backend.sendToUser('chat', user, 'msg', ['to the user'])).status, 202);
    const group = unique('az-g-');
    assert.equal((await backend.groupExists('chat', group)).status, 404);
    assert.equal((await backend.addToGroup('chat', group, a.id)).status, 200);
    assert.equal((await backend.addToGroup('chat', group, b.id)).status, 200);
    await eventually(() => backend.groupExists('chat', group), 200, 'HEAD group');
    assert.equal((await backend.sendToGroup('chat', group, 'msg', ['to the group'], [b.id])).status, 202);
    assert.equal((await backend.removeFromGroup('chat', group, a.id)).status, 200);
    assert.equal((await backend.sendToGroup('chat', group, 'msg', ['a left'])).status, 202);
    assert.equal((await backend.sendToConnection('chat', b.id, 'msg', ['to b'])).status, 202);

    assert.deepEqual((await settle(backend, a)).slice(0, 3), ['to all but b', 'to the user', 'to the group']);
    assert.deepEqual((await settle(backend, b)).slice(0, 2), ['a left', 'to b']);
  });

  test('user groups: add, check membership, remove the user and a connection from every group', async (t) => {
    const backend = azureBackend(connectionString(front, DEMO_KEY));
    const user = unique('az-ug-');
    const [a, other] = await Promise.all([client(t, back, { user }), client(t, back)]);
    await eventually(() => backend.connectionExists('chat', a.id), 200, 'HEAD connection');
    const [g1, g2] = [unique('az-g1-'), unique('az-g2-')];
    assert.equal((await backend.userInGroup('chat', g1, user)).status, 404);
    assert.equal((await backend.addUserToGroup('chat', g1, user)).status, 200);
    assert.equal((await backend.addUserToGroup('chat', g2, user)).status, 200);
    // Answered by node 2 (which holds the connection) to node 1's question.
    await eventually(() => backend.userInGroup('chat', g1, user), 200, 'HEAD user in group');
    assert.equal((await backend.removeUserFromAllGroups('chat', user)).status, 204);
    await eventually(() => backend.userInGroup('chat', g2, user), 404, 'HEAD user in group after leaving all');
    assert.equal((await backend.sendToGroup('chat', g1, 'msg', ['after leaving g1'])).status, 202);

    assert.equal((await backend.addToGroup('chat', g1, other.id)).status, 200);
    assert.equal((await backend.addToGroup('chat', g2, other.id)).status, 200);
    await eventually(() => backend.groupExists('chat', g2), 200, 'HEAD group');
    assert.equal((await backend.removeFromAllGroups('chat', other.id)).status, 200);
    await eventually(() => backend.groupExists('chat', g2), 404, 'HEAD group after its last member left all');
    assert.equal((await backend.sendToGroup('chat', g2, 'msg', ['after leaving g2'])).status, 202);

    assert.deepEqual(await settle(backend, a), []);
    assert.deepEqual(await settle(backend, other), []);
  });

  test('close the connections of a group, a user and the hub, with excluded and a reason', async (t) => {
    const backend = azureBackend(connectionString(front, ACME_KEY));
    const hub = 'chat';
    const user = unique('az-c-');
    const [inGroup, kept, userA, userB, bystander] = await Promise.all([
      client(t, back, { tenant: 'acme' }),
      client(t, back, { tenant: 'acme' }),
      client(t, back, { tenant: 'acme', user }),
      client(t, front, { tenant: 'acme', user }),
      client(t, back, { tenant: 'acme' }),
    ]);
    const group = unique('az-cg-');
    for (const c of [inGroup, kept]) assert.equal((await backend.addToGroup(hub, group, c.id)).status, 200);
    await eventually(() => backend.groupExists(hub, group), 200, 'HEAD group');

    assert.equal((await backend.closeGroup(hub, group, { excluded: [kept.id], reason: 'group maintenance' })).status, 204);
    const groupClose = await withTimeout(inGroup.closed, WAIT_MS, 'the group member closed');
    assert.match(String(groupClose?.message), /group maintenance/);

    assert.equal((await backend.closeUser(hub, user, { reason: 'user signed out' })).status, 204);
    for (const c of [userA, userB]) {
      const error = await withTimeout(c.closed, WAIT_MS, 'the user connection closed');
      assert.match(String(error?.message), /user signed out/);
    }
    await eventually(() => backend.userExists(hub, user), 404, 'HEAD user after closing its connections');

    assert.equal((await backend.sendToConnection(hub, kept.id, 'msg', ['still open'])).status, 202);
    await kept.box.next((args) => args[0] === 'still open');
    assert.equal((await backend.closeAll(hub, { excluded: [bystander.id] })).status, 204);
    assert.equal(await withTimeout(kept.closed, WAIT_MS, 'the hub close'), null, 'a close without reason is clean');
    assert.equal((await backend.sendToConnection(hub, bystander.id, 'msg', ['excluded from the close'])).status, 202);
    await bystander.box.next((args) => args[0] === 'excluded from the close');
  });

  test('the tenant comes from the application parameter or from the key; other credentials are refused', async (t) => {
    const acme = await client(t, back, { tenant: 'acme' });
    const byKey = azureBackend(connectionString(front, ACME_KEY));
    const byApplication = azureBackend(connectionString(front, ACME_KEY), { application: 'ACME' });
    await eventually(() => byKey.connectionExists('chat', acme.id), 200, 'HEAD connection by key');
    assert.equal((await byApplication.connectionExists('chat', acme.id)).status, 200);
    assert.equal((await byApplication.sendToConnection('chat', acme.id, 'msg', ['via application'])).status, 202);
    await acme.box.next((args) => args[0] === 'via application');

    // The demo tenant's key does not open acme, named or not.
    const demoAsAcme = azureBackend(connectionString(front, DEMO_KEY), { application: 'acme' });
    assert.equal((await demoAsAcme.sendToConnection('chat', acme.id, 'msg', ['no'])).status, 401);
    const demo = azureBackend(connectionString(front, DEMO_KEY));
    assert.equal((await demo.connectionExists('chat', acme.id)).status, 404);
    const stranger = azureBackend(connectionString(front, 'not-a-key-of-anyone-0123456789'));
    const refused = await stranger.broadcast('chat', 'msg', ['no']);
    assert.equal(refused.status, 401);
    assert.equal(refused.body.code, 'Unauthorized');
    assert.equal((await stranger.health()).status, 200, 'health needs no credentials');
    const unknown = azureBackend(connectionString(front, ACME_KEY), { application: 'nope' });
    assert.equal((await unknown.broadcast('chat', 'msg', ['no'])).body.code, 'UnknownTenant');

    // A token for one hub does not open another.
    const now = Math.floor(Date.now() / 1000);
    const { hs256 } = await import('./lib/jwt.js');
    const token = hs256({ aud: `${front.url}/api/hubs/other/:send`, exp: now + 60 }, ACME_KEY);
    const r = await fetch(`${front.url}/api/hubs/chat/:send?api-version=2022-06-01`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ target: 'msg', arguments: ['no'] }),
      signal: AbortSignal.timeout(WAIT_MS),
    });
    assert.equal(r.status, 403);
    const get = await fetch(`${front.url}/api/health`, { signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'HEAD');
    assert.deepEqual(await settle(byKey, acme), ['via application']);
  });
});
