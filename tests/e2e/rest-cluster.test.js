// The REST API across a cluster: one nats-server with JetStream and two `switchboard serve
// --nats` nodes. A backend calls node 1; the official client connected to node 2 receives what
// it sent (user, connection, group, all), group changes reach a connection on the other node,
// user-group changes, group presence and closing a connection work from the node that does not
// hold the connection, and `:invoke notifyClient` on node 1 reaches a client that registered on
// node 2.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, inbox, invoke, WAIT_MS } from './lib/client.js';
import { clusterConfig, startCluster } from './lib/cluster.js';
import { hubUrl, mintToken, unique, withTimeout } from './lib/server.js';

const KEY = 'cluster-api-key-0123456789';
const CONFIRMED = "Here's the message for confirmation";
const CONFIG = clusterConfig({ apiKeys: [KEY] });

let cluster;
let nodes = [];
before(async () => ({ nodes } = cluster = await startCluster({ size: 2, config: CONFIG })));
after(() => cluster?.close());

const enc = encodeURIComponent;
const apiPath = (hub, rest) => `/api/v1/tenants/demo/hubs/${hub}${rest}`;

/** A REST call to `node` with the API key (bounded). */
async function api(node, method, urlPath, body) {
  const headers = { 'x-api-key': KEY };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${node.url}${urlPath}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** A client on `node`, reachable through the API of its own node before it is used. */
async function member(t, node, { hub = 'chat', target = 'msg', token } = {}) {
  const connection = await connect(t, hubUrl(node, 'demo', hub), token ? { token } : {});
  const id = connection.connectionId;
  const deadline = Date.now() + WAIT_MS;
  while ((await api(node, 'HEAD', apiPath(hub, `/connections/${enc(id)}`))).status !== 200) {
    if (Date.now() > deadline) throw new Error(`connection ${id} never became reachable`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return { connection, id, box: inbox(connection, target) };
}

describe('REST API across a cluster of two nodes', { timeout: 120_000 }, () => {
  test('sends and group changes made on node 1 reach a client on node 2', async (t) => {
    const [one, two] = nodes;
    const user = unique('cu-');
    const token = await mintToken({ user, config: one.configPath });
    const far = await member(t, two, { token });
    const near = await member(t, one);

    let r = await api(one, 'POST', apiPath('chat', `/users/${enc(user)}/:send`), { target: 'msg', arguments: ['to-user'] });
    assert.equal(r.status, 202);
    assert.deepEqual(await far.box.next((m) => m[0] === 'to-user', 10_000), ['to-user']);

    r = await api(one, 'POST', apiPath('chat', `/connections/${enc(far.id)}/:send`), { target: 'msg', arguments: ['to-conn'] });
    assert.equal(r.status, 202);
    assert.deepEqual(await far.box.next((m) => m[0] === 'to-conn', 10_000), ['to-conn']);

    const group = unique('cg-');
    r = await api(one, 'PUT', apiPath('chat', `/groups/${group}/connections/${enc(far.id)}`));
    assert.equal(r.status, 200);
    r = await api(one, 'POST', apiPath('chat', `/groups/${group}/:send`), { target: 'msg', arguments: ['to-group'] });
    assert.equal(r.status, 202);
    assert.deepEqual(await far.box.next((m) => m[0] === 'to-group', 10_000), ['to-group']);
    // The membership lives on node 2, where the connection is.
    assert.equal((await api(two, 'HEAD', apiPath('chat', `/groups/${group}`))).status, 200);

    r = await api(one, 'POST', `${apiPath('chat', '/:send')}?excluded=${enc(near.id)}`, { target: 'msg', arguments: ['to-all'] });
    assert.equal(r.status, 202);
    assert.deepEqual(await far.box.next((m) => m[0] === 'to-all', 10_000), ['to-all']);

    r = await api(one, 'DELETE', apiPath('chat', `/groups/${group}/connections/${enc(far.id)}`));
    assert.equal(r.status, 200);
    // Removal travels the same ordered path as a send: a marker after it proves it was applied.
    await api(one, 'POST', apiPath('chat', `/groups/${group}/:send`), { target: 'msg', arguments: ['after-removal'] });
    await api(one, 'POST', apiPath('chat', `/connections/${enc(far.id)}/:send`), { target: 'msg', arguments: ['marker'] });
    await far.box.next((m) => m[0] === 'marker', 10_000);
    assert.ok(!far.box.has('after-removal'), 'a removed member received a group send');
    assert.ok(!near.box.has('to-all'), 'the excluded connection received the broadcast');
  });

  test('user groups, group presence and closing a connection work from the other node', async (t) => {
    const [one, two] = nodes;
    const user = unique('cug-');
    const token = await mintToken({ user, config: one.configPath });
    // The same user on both nodes: a user-group change reaches every connection of the user.
    const [far, near] = await Promise.all([member(t, two, { token }), member(t, one, { token })]);
    const group = unique('cug-g-');
    assert.equal((await api(one, 'HEAD', apiPath('chat', `/groups/${group}`))).status, 404);

    let r = await api(one, 'PUT', apiPath('chat', `/users/${enc(user)}/groups/${group}`));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    r = await api(one, 'POST', apiPath('chat', `/groups/${group}/:send`), { target: 'msg', arguments: ['to-user-group'] });
    assert.equal(r.status, 202);
    assert.deepEqual(await far.box.next((m) => m[0] === 'to-user-group', 10_000), ['to-user-group']);
    assert.deepEqual(await near.box.next((m) => m[0] === 'to-user-group', 10_000), ['to-user-group']);

    // Node 2 holds a member; node 1 asks it. Once node 1's member leaves, node 1 still says 200.
    r = await api(one, 'PUT', apiPath('chat', `/groups/${group}-far/connections/${enc(far.id)}`));
    assert.equal(r.status, 200);
    const deadline = Date.now() + WAIT_MS;
    let presence;
    while (Date.now() < deadline) {
      presence = (await api(one, 'HEAD', apiPath('chat', `/groups/${group}-far`))).status;
      if (presence === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(presence, 200, 'node 1 never saw the member node 2 holds');
    assert.equal((await api(two, 'HEAD', apiPath('chat', `/groups/${group}-nobody`))).status, 404);

    r = await api(one, 'DELETE', apiPath('chat', `/users/${enc(user)}/groups/${group}`));
    assert.equal(r.status, 200);
    await api(one, 'POST', apiPath('chat', `/groups/${group}/:send`), { target: 'msg', arguments: ['after-user-removal'] });
    await api(one, 'POST', apiPath('chat', `/connections/${enc(far.id)}/:send`), { target: 'msg', arguments: ['marker-2'] });
    await far.box.next((m) => m[0] === 'marker-2', 10_000);
    assert.ok(!far.box.has('after-user-removal'), 'a user removed from a group on node 2 still got its sends');

    // Close the connection node 2 holds through node 1, once node 1's registry lists it.
    while (Date.now() < deadline + WAIT_MS) {
      if ((await api(one, 'HEAD', apiPath('chat', `/connections/${enc(far.id)}`))).status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const closed = new Promise((resolve) => far.connection.onclose(resolve));
    r = await api(one, 'DELETE', `${apiPath('chat', `/connections/${enc(far.id)}`)}?reason=${enc('moved to node 1')}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const error = await withTimeout(closed, WAIT_MS, 'onclose after a DELETE on the other node');
    assert.match(String(error?.message), /moved to node 1/);
    r = await api(one, 'DELETE', apiPath('chat', '/connections/no-such-connection'));
    assert.equal(r.status, 404);
    assert.equal(r.body.code, 'NoConnection');
  });

  test('notify: a client registers on node 2, the backend invokes notifyClient on node 1', async (t) => {
    const [one, two] = nodes;
    const client = await member(t, two, { hub: 'notify', target: 'addMessage' });
    const id = Math.floor(Math.random() * 1_000_000_000);
    await invoke(client.connection, 'registerClient', id);
    const r = await api(one, 'POST', apiPath('notify', '/:invoke'), { target: 'notifyClient', arguments: [id, 'Confirmed'] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(await client.box.next(() => true, 10_000), [CONFIRMED]);
  });
});
