// Durable resume, as a user would see it: three nodes and a real nats-server behind haproxy
// (round robin, no stickiness), official JS clients with `withStatefulReconnect()` (half JSON,
// half MessagePack), each in a group of its own, numbered streams to every group from the REST
// API and from a hub sender on every node, `echo` invocations in flight. Then kill -9 of the node
// holding most clients: each of its clients resumes on another node with its connection id,
// and no acked message is lost, none arrives twice, none out of order, every echo settles.
//
// CI-sized by default; RESUME_CLIENTS sets the number of clients (a full-size run), and
// tests/e2e/bench/resume-kill.js measures the same run.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { busiestNode, startClients, startResumeCluster, startTraffic, summary, tagOf, verify, waitDelivered } from './lib/resume.js';
import { withTimeout } from './lib/server.js';

const CLIENTS = Number(process.env.RESUME_CLIENTS ?? 24);

test('kill -9 of the node with most clients: every client resumes elsewhere with its id, nothing lost, duplicated or reordered', { timeout: 180_000 }, async (t) => {
  const run = await startResumeCluster({ balancer: 'haproxy' });
  let clients = [];
  t.after(async () => {
    await Promise.all(clients.map((c) => withTimeout(c.connection.stop(), 5_000, 'stop').catch(() => {})));
    await run.close();
  });
  clients = await startClients(run.hubUrl, CLIENTS);
  const traffic = await startTraffic(run, clients);
  await sleep(4_000);

  const victim = busiestNode(traffic, clients);
  const held = clients.filter((c) => tagOf(c.id) === traffic.senders[victim].tag);
  assert.ok(held.length > 0, 'the busiest node holds clients');
  await run.nodes[victim].kill('SIGKILL');
  // The victims notice the dead socket, resume through the balancer on the survivors, and the
  // traffic goes on meanwhile.
  await sleep(8_000);
  await traffic.stop();
  await waitDelivered(traffic, clients);
  const r = verify(traffic, clients);
  const text = summary(r);
  t.diagnostic(`victims ${held.length}: ${text}`);

  assert.ok(r.acked > CLIENTS * 20, `enough acked sends to mean something: ${r.acked}`);
  assert.equal(r.honest.length, 0, `no honest failures: ${text}`);
  assert.deepEqual(r.changedId, [], `every client kept its connection: ${text}`);
  assert.deepEqual(r.reconnecting, [], `no client fell back to a new connection: ${text}`);
  assert.deepEqual(r.closed, [], `no client closed: ${text}`);
  assert.deepEqual(r.lost, [], `no acked message lost: ${text}`);
  assert.deepEqual(r.duplicates, [], `no message twice: ${text}`);
  assert.deepEqual(r.reordered, [], `no message out of order: ${text}`);
  assert.equal(r.echoes.hung, 0, `every echo settled: ${text}`);
  assert.deepEqual(r.echoes.failed, [], `no echo failed otherwise: ${text}`);
  for (const c of held) {
    assert.ok(c.drops.length > 0, `victim ${c.i} saw its socket drop`);
    assert.equal(c.connection.state, 'Connected', `victim ${c.i} is connected`);
    assert.equal(c.connection.connectionId, c.id, `victim ${c.i} kept its id`);
  }
});
