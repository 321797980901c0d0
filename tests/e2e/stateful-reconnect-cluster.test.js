// Stateful reconnect in a cluster behind a round-robin load balancer (no sticky sessions): a
// client's WebSocket drops, its resume lands on another node, which forwards it to the node
// holding the connection; the client goes on with nothing lost or repeated, while messages for
// it come from a sender on a third node. One nats-server with JetStream, three
// `switchboard serve --nats` nodes, lib/balancer.js in front, and lib/proxy.js between the
// client and the balancer to cut the socket.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { WAIT_MS } from './lib/client.js';
import { clusterConfig, startCluster } from './lib/cluster.js';
import { startProxy } from './lib/proxy.js';
import { statefulReceiver } from './lib/resume.js';
import { unique, until, withTimeout } from './lib/server.js';

const MESSAGE = 'addNewMessageToPage';
const CONFIG = clusterConfig({ signing: false });

let cluster;
let nodes = [];
let balancer;
before(async () => ({ nodes, balancer } = cluster = await startCluster({ config: CONFIG, balanced: true })));
after(() => cluster?.close());

test('a resume that lands on another node is forwarded to the owner: nothing lost or repeated', { timeout: 60_000 }, async (t) => {
  const proxy = await startProxy(balancer.port);
  t.after(() => proxy.close());
  const { connection: receiver, reconnecting } = statefulReceiver(t, `${proxy.url}/hubs/demo/chat`);
  const received = [];
  receiver.on(MESSAGE, (_name, n) => received.push(Number(n)));
  await withTimeout(receiver.start(), WAIT_MS, 'start receiver');
  const id = receiver.connectionId;
  const group = unique('cluster-stream-');
  await withTimeout(receiver.invoke('joinGroup', group), WAIT_MS, 'joinGroup');

  // The sender is on some node directly; the receiver's connection lives on the node that
  // negotiated it, and each of its drops sends the resume through the balancer to the next node.
  const sender = new HubConnectionBuilder()
    .withUrl(`${nodes[2].url}/hubs/demo/chat`, { transport: HttpTransportType.WebSockets })
    .configureLogging(LogLevel.None)
    .build();
  t.after(() => withTimeout(sender.stop(), WAIT_MS, 'stop sender'));
  await withTimeout(sender.start(), WAIT_MS, 'start sender');

  const N = 300;
  let sent = 0;
  const pump = (async () => {
    for (let n = 1; n <= N; n++) {
      await withTimeout(sender.invoke('sendToGroup', group, 'sender', String(n)), WAIT_MS, `send ${n}`);
      sent = n;
      await sleep(3);
    }
  })();
  const resumesBefore = balancer.log.length;
  for (const at of [80, 160, 240]) {
    await until(() => sent >= at, `${at} sent`);
    assert.ok(proxy.cut() >= 1, 'a socket to cut');
    await sleep(100);
  }
  await pump;
  await until(() => received.length >= N, `${N} messages (got ${received.length})`);
  await withTimeout(receiver.invoke('echo', 'sync'), WAIT_MS, 'echo');
  assert.deepEqual(received, Array.from({ length: N }, (_, i) => i + 1), 'each message exactly once, in order');
  assert.equal(receiver.connectionId, id, 'the same connection');
  assert.equal(reconnecting(), 0, 'no onreconnecting: every resume succeeded');
  // The resumes went through the balancer, which spreads them over the nodes.
  const resumes = balancer.log.slice(resumesBefore).filter((r) => r.url.includes(`id=`));
  assert.ok(resumes.length >= 3, `three resumes through the balancer: ${JSON.stringify(resumes)}`);
  assert.ok(new Set(resumes.map((r) => r.node)).size >= 2, 'resumes reached more than one node');
});
