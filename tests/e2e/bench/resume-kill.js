// Durable resume, measured (a report, not a test): the run of tests/e2e/resume-kill.test.js
// (three nodes behind a balancer, stateful clients in groups, numbered REST and hub streams,
// echo calls in flight), then kill -9 of the node with most clients.
//
//   node tests/e2e/bench/resume-kill.js [--clients 150] [--balancer haproxy|nginx]
//     [--durable 0|1] [--nats-servers 1|3] [--warmup 10] [--after 15]
//
// `--durable 1` (the default) runs with `[nats] durable_resume` on, as a cluster runs by
// default; `--durable 0` turns it off, to measure stateful reconnect without it.
//
// Prints one JSON object:
// - resume: per victim client, from its socket drop to the first message after it (p50, p99,
//   max, ms), and how many messages sent before the drop arrived after it (replayed or late:
//   mean, max); the survivors' takeovers, stream records each replayed (the
//   `switchboard_resume_replayed_records` histogram) and invocations ended "outcome unknown";
// - jetstream: publishes and bytes JetStream stored (nats-server's `/jsz`, loopback monitoring
//   port; one nats-server only) per message delivered to a client, over the warm-up;
// - memory: the nodes' RSS growth from before the clients connected to after the warm-up,
//   per connection (stateful, and durable when `--durable 1`);
// - the checks of the test (acked lost, duplicates, out of order, new connections, echoes).
// Every wait is bounded; everything started is stopped at the end.

import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  metricSum,
  percentile,
  resumeConfig,
  startClients,
  startResumeCluster,
  startTraffic,
  tagOf,
  verify,
  waitDelivered,
} from '../lib/resume.js';
import { withTimeout } from '../lib/server.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '150' },
    balancer: { type: 'string', default: 'haproxy' },
    durable: { type: 'string', default: '1' },
    'nats-servers': { type: 'string', default: '1' },
    warmup: { type: 'string', default: '10' },
    after: { type: 'string', default: '15' },
  },
});
const CLIENTS = Number(values.clients);
const DURABLE = values.durable === '1';
const NATS_SERVERS = Number(values['nats-servers']);

const rssOf = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const jsz = async (run) => {
  if (!run.nats.monitorUrl) return null;
  const body = await (await fetch(`${run.nats.monitorUrl}/jsz`, { signal: AbortSignal.timeout(5_000) })).json();
  return { messages: body.messages, bytes: body.bytes };
};
const delivered = (clients) => clients.reduce((sum, c) => sum + [...c.streams.values()].reduce((s, l) => s + l.length, 0), 0);
const round = (x, digits = 2) => (x === null ? null : Number(x.toFixed(digits)));

const run = await startResumeCluster({
  balancer: values.balancer,
  natsServers: NATS_SERVERS,
  config: resumeConfig({ replicas: NATS_SERVERS === 1 ? 1 : 3, durable: DURABLE }),
});
let clients = [];
try {
  const rssBefore = run.nodes.map((n) => rssOf(n.pid));
  clients = await startClients(run.hubUrl, CLIENTS);
  const traffic = await startTraffic(run, clients);
  const js0 = await jsz(run);
  const delivered0 = delivered(clients);
  await sleep(Number(values.warmup) * 1000);
  const js1 = await jsz(run);
  const delivered1 = delivered(clients);
  const rssAfter = run.nodes.map((n) => rssOf(n.pid));
  const connections = await metricSum(run.nodes, 'switchboard_connections');

  let victim = 0;
  let most = -1;
  for (const [k, node] of run.nodes.entries()) {
    const n = await metricSum([node], 'switchboard_connections');
    if (n > most) [victim, most] = [k, n];
  }
  const held = clients.filter((c) => tagOf(c.id) === traffic.senders[victim].tag);
  const killedAt = Date.now();
  await run.nodes[victim].kill('SIGKILL');
  await sleep(Number(values.after) * 1000);
  await traffic.stop();
  await Promise.all(
    clients.map((c) =>
      c.connection.state === 'Connected' ? withTimeout(c.connection.invoke('echo', 'sync'), 10_000, 'sync').catch(() => {}) : undefined,
    ),
  );
  await waitDelivered(traffic, clients);
  const r = verify(traffic, clients);

  const resumeMs = [];
  const replayed = [];
  for (const c of held) {
    const drop = c.drops.find((d) => d >= killedAt - 100);
    if (drop === undefined) continue;
    const all = [...c.streams.values()].flat();
    const after = all.filter((m) => m.at > drop).sort((a, b) => a.at - b.at);
    if (after.length > 0) resumeMs.push(after[0].at - drop);
    replayed.push(after.filter((m) => m.t < drop).length);
  }
  // The survivors' own count of what each takeover replayed from the stream (records read from
  // the checkpoint to the claim), and of invocations they ended as "outcome unknown".
  const takeovers = await metricSum(run.nodes, 'switchboard_resume_replayed_records_count');
  const replayedRecords = await metricSum(run.nodes, 'switchboard_resume_replayed_records_sum');
  const outcomeUnknown = await metricSum(run.nodes, 'switchboard_resume_outcome_unknown_total');
  const perDelivery = (key) => (js0 && delivered1 > delivered0 ? round((js1[key] - js0[key]) / (delivered1 - delivered0), 3) : null);
  console.log(
    JSON.stringify({
      setup: {
        clients: CLIENTS,
        balancer: values.balancer,
        durable: DURABLE,
        natsServers: NATS_SERVERS,
        victimClients: held.length,
      },
      resume: {
        resumed: held.filter((c) => c.connection.connectionId === c.id && c.reconnecting.length === 0).length,
        newConnection: held.filter((c) => c.connection.connectionId !== c.id).length,
        honest: r.honest.length,
        ms: { p50: percentile(resumeMs, 0.5), p99: percentile(resumeMs, 0.99), max: percentile(resumeMs, 1), n: resumeMs.length },
        takeovers,
        streamRecordsReplayedPerTakeover: takeovers ? round(replayedRecords / takeovers, 1) : null,
        outcomeUnknown,
        preDropMessagesAfterResume: {
          mean: replayed.length ? round(replayed.reduce((a, b) => a + b, 0) / replayed.length, 1) : null,
          max: replayed.length ? Math.max(...replayed) : null,
        },
      },
      jetstream: {
        deliveredInWarmup: delivered1 - delivered0,
        publishesPerDelivery: perDelivery('messages'),
        bytesPerDelivery: perDelivery('bytes'),
      },
      memory: {
        connections,
        rssGrowthBytesPerConnection: round(
          (rssAfter.reduce((a, b) => a + b, 0) - rssBefore.reduce((a, b) => a + b, 0)) / Math.max(1, connections),
          0,
        ),
      },
      checks: {
        acked: r.acked,
        lost: r.lost.length,
        duplicates: r.duplicates.length,
        reordered: r.reordered.length,
        changedId: r.changedId.length,
        echoes: { ok: r.echoes.ok, unknown: r.echoes.unknown, hung: r.echoes.hung, failed: r.echoes.failed.length },
      },
    }),
  );
} finally {
  await Promise.all(clients.map((c) => withTimeout(c.connection.stop(), 5_000, 'stop').catch(() => {})));
  await run.close();
}
process.exit(0);
