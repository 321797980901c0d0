// A Switchboard cluster for the end-to-end tests: a real nats-server (or a cluster of three)
// with JetStream and `size` `switchboard serve --nats` nodes, each waited for until its
// `/readyz` answers 200 (bounded). The test stops it with `close()`.

import { setTimeout as sleep } from 'node:timers/promises';
import { WAIT_MS } from './client.js';
import { startBalancer } from './balancer.js';
import { startNats, startNatsCluster } from './nats.js';
import { parsePrometheus, select } from './prometheus.js';
import { startServer, withTimeout } from './server.js';

/**
 * The TOML of a cluster node: `top` (node-wide keys), the demo tenant (anonymous connections
 * allowed, the demo signing key unless `signing` is false, `apiKeys`, then the `demo` lines),
 * `tenants` (more tenants' sections), and `[nats]` with `partitions`, `ttl` as
 * `registry_ttl_secs` and the `nats` lines.
 */
export function clusterConfig({ top = '', signing = true, apiKeys = [], demo = '', tenants = '', partitions = 4, ttl = 3, nats = '' } = {}) {
  const lines = [top, '[tenants.demo]', 'allow_anonymous = true'];
  if (signing) lines.push('signing_keys = ["switchboard-demo-development-key-not-secret"]');
  if (apiKeys.length > 0) lines.push(`api_keys = ${JSON.stringify(apiKeys)}`);
  lines.push(demo, tenants, '[nats]', `partitions = ${partitions}`, `registry_ttl_secs = ${ttl}`, nats);
  return `${lines.join('\n')}\n`;
}

/** The status `node`'s `/readyz` answers, or 0 when it does not answer within `timeoutMs`. */
export async function readyz(node, timeoutMs = WAIT_MS) {
  try {
    return (await fetch(`${node.url}/readyz`, { signal: AbortSignal.timeout(timeoutMs) })).status;
  } catch {
    return 0;
  }
}

/** Waits (bounded) until `node`'s `/readyz` answers `want`: 200 ready, 503 not (yet). */
export function waitReadyz(node, want, timeoutMs = 20_000) {
  return withTimeout(
    (async () => {
      while ((await readyz(node, 2_000)) !== want) await sleep(50);
    })(),
    timeoutMs,
    `${node.url}/readyz == ${want}`,
  );
}

/** Waits until `node` answers `/readyz` with 200 (it has announced itself to the cluster). */
export function waitReady(node, timeoutMs = 20_000) {
  return waitReadyz(node, 200, timeoutMs);
}

/**
 * Starts NATS (one server, or `natsServers` of them in a JetStream cluster) and `size` nodes
 * with the TOML `config` (plus `serverOptions` for startServer), all ready; with `balanced`, a
 * round-robin `balancer` (lib/balancer.js) in front of them.
 * @returns {Promise<{nats: object, nodes: object[], balancer?: object, startNode: () => Promise<object>, close: () => Promise<void>}>}
 */
export async function startCluster({ size = 3, config, natsServers = 1, serverOptions = {}, balanced = false } = {}) {
  const nats = natsServers > 1 ? await startNatsCluster(natsServers) : await startNats();
  const started = [];
  /** Starts one more node of the cluster (ready), e.g. to replace a killed one. */
  const startNode = async () => {
    const node = await startServer({ ...serverOptions, config, args: ['--nats', nats.url, ...(serverOptions.args ?? [])] });
    started.push(node);
    await waitReady(node);
    return node;
  };
  try {
    const nodes = await Promise.all(Array.from({ length: size }, startNode));
    const balancer = balanced ? await startBalancer(nodes) : undefined;
    return {
      nats,
      nodes,
      balancer,
      startNode,
      async close() {
        await balancer?.close();
        await Promise.all(started.map((n) => n.stop()));
        await nats.close();
      },
    };
  } catch (err) {
    await Promise.all(started.map((n) => n.stop()));
    await nats.close();
    throw err;
  }
}

/**
 * The sum of metric `name` (samples matching `labels`) over the `nodes` that are running
 * (a node that does not answer within 5 s counts as an error).
 */
export async function metricSum(nodes, name, labels = {}) {
  let total = 0;
  for (const node of nodes.filter((n) => n.running())) {
    const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
    for (const sample of select(parsePrometheus(text), name, labels)) total += sample.value;
  }
  return total;
}
