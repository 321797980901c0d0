// A cluster: one real nats-server with JetStream and three `switchboard serve --nats` nodes.
// Clients on different nodes reach each other through the NATS backplane, and the plugin
// key-value store is a JetStream KV bucket that every node shares. Failures (NATS restarts,
// a node cut off or killed) are in cluster-failures.test.js.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, inbox, invoke } from './lib/client.js';
import { clusterConfig, startCluster } from './lib/cluster.js';
import { barrier, CONFIRMED, FAILED, freshId, notifyMember } from './lib/notify.js';
import { hubUrl, mintToken, unique, withTimeout } from './lib/server.js';

const CONFIG = clusterConfig();

let cluster;
let nodes = [];
before(async () => ({ nodes } = cluster = await startCluster({ config: CONFIG })));
after(() => cluster?.close());

const notifyClient = (t, node) => notifyMember(t, hubUrl(node, 'demo', 'notify'));

async function chatClient(t, node, token) {
  const connection = await connect(t, hubUrl(node, 'demo', 'chat'), token ? { token } : {});
  return { connection, box: inbox(connection, 'addNewMessageToPage') };
}

describe('cluster of three nodes on NATS JetStream', { timeout: 120_000 }, () => {
  test('notify: A registers on node 1, B on node 2 notifies, only A receives', async (t) => {
    const [a, b, c] = await Promise.all([notifyClient(t, nodes[0]), notifyClient(t, nodes[1]), notifyClient(t, nodes[2])]);
    const id = freshId();
    await invoke(a.connection, 'registerClient', id);
    await invoke(b.connection, 'notifyClient', id, 'Confirmed');
    assert.deepEqual(await a.box.next(), [CONFIRMED]);
    await invoke(b.connection, 'notifyClient', id, 1);
    await a.box.next(() => a.box.messages.length === 2);
    assert.deepEqual(a.box.messages, [[CONFIRMED], [FAILED]]);
    await barrier(b, c, 10_000);
    await barrier(b, b, 10_000);
    assert.deepEqual(c.box.messages, [[FAILED]]);
    assert.deepEqual(b.box.messages, [[FAILED]]);
  });

  test('chat sendToUser reaches the user on two nodes, once each', async (t) => {
    const alice = unique('alice-');
    const [aliceToken, bobToken] = await Promise.all([mintToken({ user: alice }), mintToken({ user: unique('bob-') })]);
    const a1 = await chatClient(t, nodes[0], aliceToken);
    const a2 = await chatClient(t, nodes[1], aliceToken);
    const bob = await chatClient(t, nodes[2], bobToken);
    await invoke(bob.connection, 'sendToUser', alice, 'hi alice');
    for (const a of [a1, a2]) {
      await a.box.next();
      assert.equal(a.box.messages[0][1], 'hi alice');
    }
    // A second message comes after the first, and the first came once.
    await invoke(bob.connection, 'sendToUser', alice, 'second');
    for (const a of [a1, a2]) {
      await a.box.next(() => a.box.messages.length === 2);
      assert.deepEqual(a.box.messages.map((m) => m[1]), ['hi alice', 'second']);
    }
    assert.equal(bob.box.messages.length, 0);
  });

  test('a group spanning three nodes', async (t) => {
    const group = unique('room-');
    const members = await Promise.all(nodes.map((n) => chatClient(t, n)));
    const outsider = await chatClient(t, nodes[1]);
    for (const m of members) await invoke(m.connection, 'joinGroup', group);
    await invoke(members[0].connection, 'sendToGroup', group, 'n1', 'to the room');
    for (const m of members) {
      await m.box.next();
      assert.deepEqual(m.box.messages, [['n1', 'to the room']]);
    }
    await invoke(members[2].connection, 'leaveGroup', group);
    await invoke(members[1].connection, 'sendToGroup', group, 'n2', 'after leave');
    for (const m of members.slice(0, 2)) await m.box.next(() => m.box.messages.length === 2);
    // Node 3 has applied everything sent before this marker: still one message there.
    await invoke(members[1].connection, 'sendToGroup', group, 'n2', 'marker');
    await members[0].box.next(() => members[0].box.messages.length === 3);
    assert.equal(members[2].box.messages.length, 1);
    assert.equal(outsider.box.messages.length, 0);
  });

  test('per-sender order under load: 1000 numbered messages arrive in order on another node', async (t) => {
    const user = unique('order-');
    const token = await mintToken({ user });
    const receiver = await chatClient(t, nodes[2], token);
    const sender = await chatClient(t, nodes[0]);
    const N = 1000;
    const sends = [];
    for (let i = 0; i < N; i++) sends.push(sender.connection.send('sendToUser', user, String(i)));
    await withTimeout(Promise.all(sends), 20_000, 'sends');
    await receiver.box.next(() => receiver.box.messages.length >= N, 30_000);
    assert.deepEqual(
      receiver.box.messages.map((m) => Number(m[1])),
      Array.from({ length: N }, (_, i) => i),
    );
  });
});
