// Durable resume, as a user would see it: three nodes and a real nats-server behind haproxy, and
// again behind nginx (round robin, no stickiness), official JS clients with `withStatefulReconnect()` (half JSON,
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

/** The checks every variant makes of what the clients saw; returns verify's result. */
function checkResumed(t, traffic, clients, held) {
  const r = verify(traffic, clients);
  const text = summary(r);
  t.diagnostic(`victims ${held.length}: ${text}`);
  assert.ok(r.acked > clients.length * 20, `enough acked sends to mean something: ${r.acked}`);
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
  return r;
}

/** A cluster behind `balancer` with clients and traffic running for a few seconds. */
async function started(t, { balancer = 'haproxy', config } = {}) {
  const run = await startResumeCluster({ balancer, ...(config ? { config } : {}) });
  const state = { run, clients: [] };
  t.after(async () => {
    await Promise.all(state.clients.map((c) => withTimeout(c.connection.stop(), 5_000, 'stop').catch(() => {})));
    await run.close();
  });
  state.clients = await startClients(run.hubUrl, CLIENTS);
  state.traffic = await startTraffic(run, state.clients);
  await sleep(4_000);
  state.victim = busiestNode(state.traffic, state.clients);
  state.held = state.clients.filter((c) => tagOf(c.id) === state.traffic.senders[state.victim].tag);
  assert.ok(state.held.length > 0, 'the busiest node holds clients');
  return state;
}

for (const balancer of ['haproxy', 'nginx']) {
  test(`${balancer}: kill -9 of the node with most clients: every client resumes elsewhere with its id, nothing lost, duplicated or reordered`, { timeout: 180_000 }, async (t) => {
    const { run, clients, traffic, victim, held } = await started(t, { balancer });
    await run.nodes[victim].kill('SIGKILL');
    // The victims notice the dead socket, resume through the balancer on the survivors, and
    // the traffic goes on meanwhile.
    await sleep(8_000);
    await traffic.stop();
    await waitDelivered(traffic, clients);
    checkResumed(t, traffic, clients, held);
  });
}
