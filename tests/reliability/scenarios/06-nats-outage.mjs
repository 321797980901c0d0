// Point 6: no silent loss while NATS is down. Three nodes; node 2 calls sendToGroup at about
// 90/s for a group whose members are on node 1. (a) One nats-server is stopped for 5 s with
// SIGTERM, then with SIGKILL, and restarted: every send that was acknowledged is delivered,
// once, in order; sends refused with an error are counted apart (allowed). (b) A JetStream
// cluster of three (R3): one server stopped during the traffic (each in turn) loses nothing.

import { expect, sequenceReport, sleep, within } from '../lib/harness.mjs';
import { demoTenant, hubUrl } from '../lib/node.mjs';
import { startNatsCluster } from '../../e2e/lib/nats.js';
import { buildConnection } from '../../e2e/lib/client.js';

export const name = 'nats-outage';
export const point = 6;
export const description = 'sendToGroup across nodes at ~90/s through NATS restarts (SIGTERM, SIGKILL) and an R3 server loss: 0 lost, 0 duplicated';
export const timeoutMs = 240_000;
export const soakTimeoutMs = 900_000;

const RATE_PER_SEC = 90;
const OUTAGE_MS = 5_000;
const SETTLE_MS = 20_000;
/** Group members on node 1; lost and duplicated counts are summed over them. */
const RECEIVERS = 2;

const natsConfig = (prefix, replicas) => `
[nats]
prefix = "${prefix}"
partitions = 4
replicas = ${replicas}
registry_ttl_secs = 3
`;

async function readyz(node) {
  try {
    const r = await fetch(`${node.url}/readyz`, { signal: AbortSignal.timeout(1_000) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}

async function waitReady(nodes, ms = 30_000) {
  await within(
    ms,
    (async () => {
      while ((await Promise.all(nodes.map(readyz))).some((s) => s !== 200)) await sleep(100);
    })(),
    'every node ready (/readyz 200)',
  );
}

async function client(ctx, node, what) {
  const c = buildConnection(hubUrl(node, 'demo', 'chat'));
  ctx.defer(() => within(5_000, c.stop(), `stop ${what}`).catch(() => {}));
  c.closedWith = null;
  c.onclose((err) => {
    c.closedWith = err ? err.message : 'closed';
  });
  await within(10_000, c.start(), `start ${what}`);
  return c;
}

/** Starts three nodes on `url`, receivers in a fresh group on node 1 and a sender on node 2. */
async function cluster(ctx, urls, prefix, replicas, receivers) {
  const nodes = [];
  for (let i = 0; i < 3; i++) {
    // Node i starts on server i % servers; it learns the others from the cluster (INFO).
    const url = urls[i % urls.length];
    nodes.push(await ctx.startNode({ config: demoTenant() + natsConfig(prefix, replicas), args: ['--nats', url], label: `${prefix} node ${i + 1}` }));
  }
  await waitReady(nodes);
  const group = `outage-${ctx.rng.word(8)}`;
  const inboxes = [];
  for (let r = 0; r < receivers; r++) {
    const c = await client(ctx, nodes[0], `receiver ${r + 1} on node 1`);
    const box = [];
    c.on('addNewMessageToPage', (tag, text) => {
      box.push([tag, text]);
    });
    await within(5_000, c.invoke('joinGroup', group), 'a receiver joins the group');
    inboxes.push({ c, box });
  }
  const sender = await client(ctx, nodes[1], 'the sender on node 2');
  // The group is reachable across nodes before counting starts.
  await within(
    15_000,
    (async () => {
      for (let i = 0; ; i++) {
        await within(5_000, sender.invoke('sendToGroup', group, 'probe', `probe-${i}`), 'a probe send');
        await sleep(200);
        if (inboxes.every(({ box }) => box.some(([tag]) => tag === 'probe'))) return;
      }
    })(),
    'a probe from node 2 reaching every receiver on node 1',
  );
  return { nodes, group, inboxes, sender };
}

/**
 * Sends `tag` numbered messages at RATE_PER_SEC from the sender until `stop()` says so; each
 * invocation's outcome is kept: acknowledged (resolved), refused (rejected), or unanswered.
 */
function traffic(sender, group, tag) {
  const outcomes = [];
  let running = true;
  const loop = (async () => {
    const started = performance.now();
    for (let i = 0; running && i < 100_000; i++) {
      const due = started + (i * 1000) / RATE_PER_SEC;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      outcomes[i] = 'pending';
      sender.invoke('sendToGroup', group, tag, String(i)).then(
        () => {
          outcomes[i] = 'acked';
        },
        (err) => {
          outcomes[i] = `refused: ${err.message}`;
        },
      );
    }
  })();
  return {
    outcomes,
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** Waits until no send is pending and every acknowledged one arrived (bounded by SETTLE_MS). */
async function settle(run, inboxes, tag) {
  const deadline = Date.now() + SETTLE_MS;
  while (Date.now() < deadline) {
    const acked = run.outcomes.map((o, i) => (o === 'acked' ? i : -1)).filter((i) => i >= 0);
    const pending = run.outcomes.filter((o) => o === 'pending').length;
    const allIn = inboxes.every(({ box }) => {
      const got = new Set(box.filter(([t]) => t === tag).map(([, n]) => Number(n)));
      return acked.every((i) => got.has(i));
    });
    if (pending === 0 && allIn) break;
    await sleep(200);
  }
  await sleep(500); // late duplicates, if any, arrive now
}

/** Lost/duplicated/reordered for acknowledged sends, per receiver, summed. */
function account(run, inboxes, tag) {
  const acked = new Set(run.outcomes.map((o, i) => (o === 'acked' ? i : -1)).filter((i) => i >= 0));
  const refusedIds = run.outcomes.map((o, i) => (o.startsWith('refused') ? i : -1)).filter((i) => i >= 0);
  const reasons = [...new Set(run.outcomes.filter((o) => o.startsWith('refused')).map((o) => o.slice(0, 160)))].slice(0, 3);
  const sum = { sent: run.outcomes.length, acked: acked.size, refused: refusedIds.length, unanswered: run.outcomes.filter((o) => o === 'pending').length, lost: 0, duplicated: 0, reordered: 0, refused_but_delivered: 0 };
  for (const { box } of inboxes) {
    const got = box.filter(([t]) => t === tag).map(([, n]) => Number(n));
    // Only acknowledged sends count for loss; order and duplicates count for everything delivered.
    const rep = sequenceReport(run.outcomes.length, got);
    const gotSet = new Set(got);
    sum.lost += [...acked].filter((i) => !gotSet.has(i)).length;
    sum.duplicated += rep.duplicated;
    sum.reordered += rep.reordered;
    sum.refused_but_delivered += refusedIds.filter((i) => gotSet.has(i)).length;
  }
  return { ...sum, refusal_reasons: reasons };
}

/** One outage: traffic, `outage()` while it runs, traffic after `restore()`, then the count. */
async function phase(ctx, setup, tag, { before, outage, restore, after }) {
  const run = traffic(setup.sender, setup.group, tag);
  await sleep(before);
  const downAt = Date.now();
  await outage();
  await sleep(OUTAGE_MS);
  const sentBeforeRestore = run.outcomes.length;
  await restore();
  const restartedAt = Date.now();
  // When node 2 says ready again (reported only).
  let readyAfterMs = null;
  const watch = (async () => {
    const until = Date.now() + 30_000;
    while (Date.now() < until && readyAfterMs === null) {
      if ((await readyz(setup.nodes[1])) === 200) readyAfterMs = Date.now() - restartedAt;
      else await sleep(50);
    }
  })();
  await sleep(after);
  await run.stop();
  await settle(run, setup.inboxes, tag);
  await watch;
  // Whether delivery resumed at all: what each receiver got of the sends after the restart.
  const afterRestore = setup.inboxes.map(({ box }) => box.filter(([t, n]) => t === tag && Number(n) >= sentBeforeRestore).length);
  const report = {
    receivers: setup.inboxes.length,
    ...account(run, setup.inboxes, tag),
    sent_after_restore: run.outcomes.length - sentBeforeRestore,
    received_after_restore: afterRestore,
    outage_ms: restartedAt - downAt,
    node2_ready_after_restart_ms: readyAfterMs,
  };
  ctx.figure(tag, report);
  setup.phases = [...(setup.phases ?? []), { tag, run }];
  return report;
}

export async function run(ctx) {
  const before = ctx.size(2_000, 10_000);
  const after = ctx.size(3_000, 20_000);
  const failures = [];
  const judge = (tag, r) => {
    if (r.lost > 0 || r.duplicated > 0 || r.reordered > 0 || r.unanswered > 0) {
      failures.push(`${tag}: ${r.acked} acknowledged, ${r.lost} lost, ${r.duplicated} duplicated, ${r.reordered} reordered, ${r.unanswered} unanswered (${r.refused} refused)`);
    }
    if (r.acked === 0) failures.push(`${tag}: nothing was acknowledged`);
  };

  // (a) One nats-server (R1), stopped with SIGTERM, then with SIGKILL.
  const single = await startNatsCluster(1, { label: 'single' });
  ctx.defer(() => single.close());
  const a = await cluster(ctx, single.urls, 'single', 1, RECEIVERS);
  for (const signal of ['SIGTERM', 'SIGKILL']) {
    const r = await phase(ctx, a, `single_${signal}`, { before, after, outage: () => single.stop(0, signal), restore: () => single.start(0) });
    judge(`one nats-server, ${signal} for ${OUTAGE_MS} ms`, r);
    await waitReady(a.nodes);
  }

  // (b) Three nats-servers, streams with 3 replicas; one server stopped during traffic.
  const r3 = await startNatsCluster(3, { label: 'r3' });
  ctx.defer(() => r3.close());
  const b = await cluster(ctx, r3.urls, 'r3', 3, RECEIVERS);
  ctx.figure('r3_first_server_of_nodes', { 'node 1 (receivers)': r3.servers[0].name, 'node 2 (sender)': r3.servers[1].name, 'node 3': r3.servers[2].name });
  // Each server in turn: the receivers' own, the sender's, and one neither uses.
  for (let victim = 0; victim < 3; victim++) {
    const tag = `r3_${r3.servers[victim].name}_down`;
    const r = await phase(ctx, b, tag, { before, after, outage: () => r3.stop(victim, 'SIGTERM'), restore: () => r3.start(victim) });
    if (r.refused > 0) failures.push(`R3 with ${r3.servers[victim].name} down: ${r.refused} sends refused (a cluster that keeps its quorum must take them all)`);
    judge(`R3 with ${r3.servers[victim].name} (of 3) down`, r);
    await waitReady(b.nodes);
  }

  // Anything that arrived after its phase was judged (late, not lost) shows here.
  const lostAtEnd = {};
  for (const setup of [a, b]) for (const { tag, run } of setup.phases) lostAtEnd[tag] = account(run, setup.inboxes, tag).lost;
  ctx.figure('lost_counted_again_at_the_end', lostAtEnd);

  for (const { c } of [...a.inboxes, ...b.inboxes]) expect(c.closedWith === null, 'a receiver', 'still connected', `closed: ${c.closedWith}`);
  expect(failures.length === 0, 'acknowledged sends across NATS faults', '0 lost, 0 duplicated, 0 reordered, none unanswered', failures.join('; '));
}
