// A NATS outage loses no acknowledged send. Three release nodes on real nats-server(s), official
// clients: senders on node 2 (REST sends answered 202, hub invocations of `sendToGroup` answered
// by their completion), receivers on node 1, about 90 sends a second, while
//   (a) nats-server is stopped with SIGTERM for 5 s and started again,
//   (b) the same with SIGKILL,
//   (c) one server of a three-server cluster (JetStream, R3 streams) is stopped and started again.
// Every acknowledged send must arrive once, in its sender's order. A send the server refused
// (503, invocation error) is fine and counted apart; a send is never acknowledged and then lost.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { connect, inbox, invoke } from './lib/client.js';
import { clusterConfig, waitReadyz } from './lib/cluster.js';
import { startNats, startNatsCluster } from './lib/nats.js';
import { parsePrometheus, select } from './lib/prometheus.js';
import { hubUrl, mintToken, pluginWasm, startServer, unique, withTimeout } from './lib/server.js';

const KEY = 'nats-outage-api-key-0123456789abcdef';
const MESSAGE = 'addNewMessageToPage';
/** Senders of each kind; each sends one message at a time, in order. */
const LANES = 4;
/** Pause between one lane's sends: 8 lanes at ~11/s, about 90 sends a second in all. */
const PACE_MS = 90;
/** The longest one send may wait for its answer (the queue's age limit is 15 s). */
const SEND_MS = 40_000;

const config = (replicas, nats = '') => clusterConfig({ apiKeys: [KEY], nats: `replicas = ${replicas}\n${nats}` });

const cleanup = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

const waitReady = (node, ms = 60_000) => waitReadyz(node, 200, ms);

async function metric(node, name, labels = {}) {
  const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  return select(parsePrometheus(text), name, labels).reduce((sum, s) => sum + s.value, 0);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `count` nodes (three by default), node i on NATS at `urls[i]` (or `urls` for all), with
 * `nats` added to their `[nats]` section and `plugins` loaded; waits until they are ready;
 * stopped after the file.
 */
async function startNodes(urls, replicas, { count = 3, nats = '', plugins } = {}) {
  const nodes = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      startServer({
        config: config(replicas, nats),
        plugins,
        args: ['--nats', Array.isArray(urls) ? urls[i] : urls],
        env: { RUST_LOG: 'info' },
      }),
    ),
  );
  cleanup.push(() => Promise.all(nodes.map((n) => n.stop())));
  await Promise.all(nodes.map((n) => waitReady(n)));
  return nodes;
}

/**
 * Runs the traffic: REST lanes (POST .../users/{user}/:send) and hub lanes (`sendToGroup` on
 * their own connections) on `from`, to one receiver on `to` that is the user and in the group.
 * `fault()` runs once the traffic is going; the traffic goes on `tail` ms after it returns.
 * Resolves with what was acknowledged, refused and delivered.
 */
async function traffic(t, from, to, fault, { lead = 2_000, tail = 3_000 } = {}) {
  const user = unique('rx-');
  const group = unique('g-');
  const receiver = await connect(t, hubUrl(to, 'demo', 'chat'), { token: await mintToken({ user }) });
  const box = inbox(receiver, MESSAGE);
  await receiver.invoke('joinGroup', group);
  const senders = [];
  for (let j = 0; j < LANES; j++) senders.push(await connect(t, hubUrl(from, 'demo', 'chat')));

  const acked = new Map(); // lane -> [message ids, in order]
  const refused = new Map(); // lane -> [[id, reason]]
  let running = true;
  const record = (map, lane, value) => {
    if (!map.has(lane)) map.set(lane, []);
    map.get(lane).push(value);
  };
  const restLane = async (j) => {
    const lane = `rest-${j}`;
    for (let i = 0; running && i < 100_000; i++) {
      const id = `${lane}:${i}`;
      let status = 0;
      let reason = '';
      try {
        const r = await fetch(`${from.url}/api/v1/tenants/demo/hubs/chat/users/${encodeURIComponent(user)}/:send`, {
          method: 'POST',
          headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
          body: JSON.stringify({ target: MESSAGE, arguments: [lane, id] }),
          signal: AbortSignal.timeout(SEND_MS),
        });
        status = r.status;
        reason = await r.text();
      } catch (e) {
        reason = String(e);
      }
      if (status === 202) record(acked, lane, id);
      else record(refused, lane, [id, `${status} ${reason}`]);
      await sleep(PACE_MS);
    }
  };
  const hubLane = async (j) => {
    const lane = `hub-${j}`;
    for (let i = 0; running && i < 100_000; i++) {
      const id = `${lane}:${i}`;
      try {
        await withTimeout(senders[j].invoke('sendToGroup', group, lane, id), SEND_MS, `sendToGroup ${id}`);
        record(acked, lane, id);
      } catch (e) {
        record(refused, lane, [id, String(e.message ?? e)]);
      }
      await sleep(PACE_MS);
    }
  };
  const lanes = [];
  for (let j = 0; j < LANES; j++) lanes.push(restLane(j), hubLane(j));
  await sleep(lead);
  await fault();
  await sleep(tail);
  running = false;
  await withTimeout(Promise.all(lanes), SEND_MS + 5_000, 'the senders finish');

  const ackedIds = [...acked.values()].flat();
  // Bounded: wait until every acknowledged send is delivered (or give up and count the loss).
  const deliveredIds = () => new Set(box.messages.map((m) => m[1]));
  const settle = (async () => {
    while (!ackedIds.every((id) => deliveredIds().has(id))) await sleep(100);
  })();
  await withTimeout(settle, 30_000, 'acknowledged sends delivered').catch(() => {});
  await sleep(500); // late duplicates would show up here

  const delivered = box.messages.map((m) => m[1]);
  const counts = new Map();
  for (const id of delivered) counts.set(id, (counts.get(id) ?? 0) + 1);
  const lost = ackedIds.filter((id) => !counts.has(id));
  const duplicated = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  let reordered = 0;
  const last = new Map();
  for (const id of delivered) {
    const [lane, n] = id.split(':');
    const i = Number(n);
    if (last.has(lane) && i < last.get(lane)) reordered++;
    last.set(lane, Math.max(i, last.get(lane) ?? -1));
  }
  const refusedIds = [...refused.values()].flat();
  const refusedDelivered = refusedIds.filter(([id]) => counts.has(id)).length;
  const figures = {
    acknowledged: ackedIds.length,
    delivered: delivered.length,
    lost: lost.length,
    duplicated: duplicated.length,
    reordered,
    refused: refusedIds.length,
    refusedButDelivered: refusedDelivered,
  };
  t.diagnostic(JSON.stringify(figures));
  return { figures, lost, duplicated, refused: refusedIds };
}

function assertNothingLost({ figures, lost, duplicated }, what) {
  assert.ok(figures.acknowledged > 100, `enough traffic: ${JSON.stringify(figures)}`);
  assert.deepEqual(lost.slice(0, 10), [], `${what}: acknowledged sends lost: ${JSON.stringify(figures)}`);
  assert.deepEqual(duplicated.slice(0, 10), [], `${what}: delivered twice: ${JSON.stringify(figures)}`);
  assert.equal(figures.reordered, 0, `${what}: out of order: ${JSON.stringify(figures)}`);
}

describe('a NATS outage loses no acknowledged send', { timeout: 600_000 }, () => {
  for (const signal of ['SIGTERM', 'SIGKILL']) {
    test(`nats-server stopped (${signal}) for 5 s and restarted`, async (t) => {
      const nats = await startNats();
      cleanup.push(() => nats.close());
      const nodes = await startNodes(nats.url, 1);
      const queued0 = await metric(nodes[1], 'switchboard_backplane_queued_disconnected_total');
      const result = await traffic(t, nodes[1], nodes[0], async () => {
        await nats.stop(signal);
        await sleep(5_000);
        await nats.start();
      });
      assertNothingLost(result, signal);
      // Sends waited for NATS and were published late; the logs say so.
      assert.ok((await metric(nodes[1], 'switchboard_backplane_queued_disconnected_total')) > queued0);
      assert.ok((await metric(nodes[1], 'switchboard_backplane_published_late_total')) > 0);
      assert.match(nodes[1].log(), /NATS is disconnected; envelopes for other nodes wait in the queue/);
      assert.match(nodes[1].log(), /envelopes that waited for NATS are stored/);
      for (const node of nodes) {
        assert.equal(await metric(node, 'switchboard_backplane_lost_messages_total'), 0);
      }
    });
  }

  test('one server of a three-server cluster (R3 streams) stopped and restarted', async (t) => {
    const cluster = await startNatsCluster(3);
    cleanup.push(() => cluster.close());
    // The sending node knows only the server that is stopped: it must fail over to a server the
    // cluster told it about.
    const nodes = await startNodes([cluster.url, cluster.servers[0].url, cluster.url], 3);
    const result = await traffic(t, nodes[1], nodes[0], async () => {
      await cluster.servers[0].stop('SIGKILL');
      await sleep(5_000);
      await cluster.servers[0].start();
    });
    assertNothingLost(result, 'cluster');
    assert.match(nodes[1].log(), /NATS disconnected/, 'the sender lost its server');
    for (const node of nodes) {
      assert.equal(await metric(node, 'switchboard_backplane_lost_messages_total'), 0);
    }
  });

  test('group changes outlasting the queue age are refused, never answered and then dropped', async (t) => {
    const AGE_MS = 1_500;
    const nats = await startNats();
    cleanup.push(() => nats.close());
    const [near, far] = await startNodes(nats.url, 1, {
      count: 2,
      nats: `queue_max_age_ms = ${AGE_MS}\n`,
      plugins: { 'demo/testhub.wasm': pluginWasm('testhub') },
    });
    const user = unique('member-');
    const member = await connect(t, hubUrl(far, 'demo', 'testhub'), { token: await mintToken({ user }) });
    const box = inbox(member, 'message');
    const caller = await connect(t, hubUrl(near, 'demo', 'testhub'));
    const api = `${near.url}/api/v1/tenants/demo/hubs/testhub`;
    const rest = async (method, path, body) => {
      const headers = { 'x-api-key': KEY, 'content-type': 'application/json' };
      const init = { method, headers, body: body && JSON.stringify(body), signal: AbortSignal.timeout(SEND_MS) };
      const r = await fetch(`${api}${path}`, init);
      return { status: r.status, body: await r.text() };
    };
    const id = encodeURIComponent(member.connectionId);
    // Each change names its own group; the member is on `far`, the change is made on `near`.
    const changes = {
      'REST connection add': (g) => rest('PUT', `/groups/${g}/connections/${id}`),
      'REST user add': (g) => rest('PUT', `/users/${encodeURIComponent(user)}/groups/${g}`),
      'hub addToGroup': (g) =>
        invoke(caller, 'addToGroup', member.connectionId, g).then(
          () => ({ status: 200, body: '' }),
          (e) => ({ status: 0, body: String(e.message ?? e) }),
        ),
    };
    const outcomes = [];
    const attempt = async (phase) => {
      for (const [what, change] of Object.entries(changes)) {
        const group = unique(`${phase}-`);
        outcomes.push({ phase, what, group, ...(await change(group)) });
      }
    };

    await nats.stop('SIGKILL');
    await attempt('outage');
    await sleep(AGE_MS + 1_000); // NATS stays down longer than the queue keeps what waits for it
    await nats.start();
    await waitReady(near);
    await waitReady(far);
    await attempt('after');

    // A change answered as made is in effect: a group send from `near` reaches the member.
    const reached = [];
    for (const o of outcomes) {
      const sent = await rest('POST', `/groups/${o.group}/:send`, { target: 'message', arguments: [o.group] });
      assert.equal(sent.status, 202, `send to ${o.group}: ${sent.body}`);
    }
    await sleep(1_000);
    const got = new Set(box.messages.map((m) => m[0]));
    for (const o of outcomes) {
      if (got.has(o.group)) reached.push(o.group);
    }
    t.diagnostic(JSON.stringify(outcomes.map(({ phase, what, status, group }) => ({ phase, what, status, applied: reached.includes(group) }))));
    for (const o of outcomes) {
      const applied = reached.includes(o.group);
      if (o.status === 200) assert.ok(applied, `${o.phase}: ${o.what} answered 200 but never applied`);
    }
    for (const o of outcomes.filter((x) => x.phase === 'outage')) {
      if (o.what.startsWith('REST')) {
        assert.equal(o.status, 503, `${o.what} during the outage: ${o.body}`);
        assert.match(o.body, /"code":"Unavailable".*the group change was not made/, o.what);
      } else {
        // The plugin's host call fails at once, or its invocation when the receipt is refused later.
        assert.notEqual(o.status, 200, `${o.what} during the outage succeeded`);
        assert.match(o.body, /NATS/, o.what);
      }
    }
    for (const o of outcomes.filter((x) => x.phase === 'after')) {
      assert.equal(o.status, 200, `${o.what} once NATS is back: ${o.body}`);
    }
  });
});
