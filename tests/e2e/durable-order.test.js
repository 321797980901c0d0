// Durable resume, owner side: with `[nats] durable_resume`, a stateful-reconnect connection gets
// every record from its hub's backplane stream, in stream order: sends from its own node are read
// back rather than delivered in place, and its Completions and stream items travel as direct
// records. What a client sees must not change: here a stateful client whose socket is cut three
// times gets numbered streams from a sender on its own node and one on another node, each exactly
// once and in order, while its own invocations and a server stream complete. One nats-server, two
// `switchboard serve --nats` nodes, lib/proxy.js between the client and its node to cut the socket.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { WAIT_MS } from './lib/client.js';
import { clusterConfig, metricSum, startCluster } from './lib/cluster.js';
import { startProxy } from './lib/proxy.js';
import { statefulReceiver } from './lib/resume.js';
import { unique, until, withTimeout } from './lib/server.js';

const MESSAGE = 'addNewMessageToPage';
const CONFIG = clusterConfig({ signing: false, partitions: 2, nats: 'durable_resume = true' });

let cluster;
let nodes = [];
before(async () => ({ nodes } = cluster = await startCluster({ size: 2, config: CONFIG })));
after(() => cluster?.close());

function plainClient(node) {
  return new HubConnectionBuilder()
    .withUrl(`${node.url}/hubs/demo/chat`, { transport: HttpTransportType.WebSockets })
    .configureLogging(LogLevel.None)
    .build();
}

/** The node's count of envelopes read from the stream (its own included, when durable). */
const received = (node) => metricSum([node], 'switchboard_backplane_received_total');

test('a durable connection gets sends from its own node and others, its completions and stream items, in order across cuts', { timeout: 90_000 }, async (t) => {
  const proxy = await startProxy(nodes[0].port);
  t.after(() => proxy.close());
  const { connection: receiver, reconnecting } = statefulReceiver(t, `${proxy.url}/hubs/demo/chat`);
  const got = { local: [], remote: [] };
  receiver.on(MESSAGE, (source, n) => got[source]?.push(Number(n)));
  await withTimeout(receiver.start(), WAIT_MS, 'start receiver');
  const id = receiver.connectionId;
  const group = unique('durable-');
  await withTimeout(receiver.invoke('joinGroup', group), WAIT_MS, 'joinGroup');

  // One sender on the receiver's own node (its sends used to be delivered in place) and one on
  // the other node.
  const senders = { local: plainClient(nodes[0]), remote: plainClient(nodes[1]) };
  for (const [name, sender] of Object.entries(senders)) {
    t.after(() => withTimeout(sender.stop(), WAIT_MS, `stop ${name}`));
    await withTimeout(sender.start(), WAIT_MS, `start ${name}`);
  }
  const readBefore = await received(nodes[0]);

  const N = 150;
  const sent = { local: 0, remote: 0 };
  const pumps = Object.entries(senders).map(([name, sender]) =>
    (async () => {
      for (let n = 1; n <= N; n++) {
        await withTimeout(sender.invoke('sendToGroup', group, name, String(n)), WAIT_MS, `${name} send ${n}`);
        sent[name] = n;
        await sleep(4);
      }
    })(),
  );
  // The receiver's own calls: Completions and stream items, while its socket is cut.
  const echoes = [];
  const calls = (async () => {
    for (let k = 0; k < 30; k++) {
      echoes.push(await withTimeout(receiver.invoke('echo', k), WAIT_MS, `echo ${k}`));
      await sleep(15);
    }
  })();
  const items = [];
  const stream = new Promise((resolve, reject) => {
    receiver.stream('counter', 40).subscribe({ next: (i) => items.push(i), complete: resolve, error: reject });
  });
  for (const at of [40, 80, 120]) {
    await until(() => sent.local >= at, `${at} sent`);
    assert.ok(proxy.cut() >= 1, 'a socket to cut');
    await sleep(100);
  }
  await Promise.all(pumps);
  await withTimeout(calls, 30_000, 'echo calls');
  await withTimeout(stream, 30_000, 'counter stream');
  await until(() => got.local.length >= N && got.remote.length >= N, `${N} from each (got ${got.local.length}/${got.remote.length})`);
  await withTimeout(receiver.invoke('echo', 'sync'), WAIT_MS, 'echo sync');

  const numbers = Array.from({ length: N }, (_, i) => i + 1);
  assert.deepEqual(got.local, numbers, 'from its own node: each exactly once, in order');
  assert.deepEqual(got.remote, numbers, 'from the other node: each exactly once, in order');
  assert.deepEqual(echoes, Array.from({ length: 30 }, (_, k) => k), 'every call completed with its own result');
  assert.equal(items.length, 40, `every stream item once: ${JSON.stringify(items)}`);
  assert.deepEqual(items, [...items].sort((a, b) => a - b), 'stream items in order');
  assert.equal(receiver.connectionId, id, 'the same connection');
  assert.equal(reconnecting(), 0, 'every resume succeeded');
  // The receiver's node read its own sends back from the stream: at least the local sender's.
  assert.ok((await received(nodes[0])) - readBefore >= 2 * N, 'its node read both senders from the stream');
});
