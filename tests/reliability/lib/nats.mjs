// Real nats-server processes with JetStream for the NATS scenarios: one server, or a cluster
// of three with routes on loopback, each with its store in a temp folder and a monitoring
// port. A server can be stopped with SIGTERM or SIGKILL and started again on the same ports
// and store. Everything is killed when the process exits.

import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { NATS_SERVER_BIN } from '../../e2e/lib/nats.js';
import { sleep, within } from './harness.mjs';

export { NATS_SERVER_BIN };

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Free 127.0.0.1 ports, all distinct (held open together while picked). */
async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      await new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', resolve);
      });
      servers.push(srv);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

async function monitorHealthy(port) {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1_000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

/**
 * Starts `size` (1 or 3) nats-servers with JetStream; resolves once each says healthy (for a
 * cluster: JetStream meta leader elected). Returns `{urls, url, servers, stop(i, signal),
 * start(i), close()}` where `url` lists every server, comma separated.
 */
export async function startNatsCluster({ size = 1, label = 'nats' } = {}) {
  if (!existsSync(NATS_SERVER_BIN)) {
    throw new Error(`${NATS_SERVER_BIN} is missing: run ./dev test (it installs nats-server) or set NATS_SERVER_BIN`);
  }
  const ports = await freePorts(size * 3);
  const servers = [];
  for (let i = 0; i < size; i++) {
    servers.push({
      name: `${label}-${i}`,
      port: ports[i * 3],
      clusterPort: ports[i * 3 + 1],
      monitorPort: ports[i * 3 + 2],
      store: await mkdtemp(path.join(os.tmpdir(), `switchboard-reliability-${label}-${i}-`)),
      child: null,
      exited: null,
    });
  }
  const routes = servers.map((s) => `nats://127.0.0.1:${s.clusterPort}`).join(',');

  const start = async (i) => {
    const s = servers[i];
    const args = ['-a', '127.0.0.1', '-p', String(s.port), '-m', String(s.monitorPort), '-js', '-sd', s.store, '--server_name', s.name];
    if (size > 1) args.push('--cluster_name', label, '--cluster', `nats://127.0.0.1:${s.clusterPort}`, '--routes', routes);
    const child = spawn(NATS_SERVER_BIN, args, { stdio: ['ignore', 'ignore', 'ignore'] });
    live.add(child);
    s.child = child;
    s.exited = new Promise((resolve) => child.once('exit', resolve));
    s.exited.then(() => live.delete(child));
  };
  const healthy = (i, ms) =>
    within(
      ms,
      (async () => {
        while (!(await monitorHealthy(servers[i].monitorPort))) await sleep(50);
      })(),
      `nats-server ${servers[i].name} healthy (JetStream ready)`,
    );
  const stop = async (i, signal = 'SIGTERM') => {
    const s = servers[i];
    if (s.child && s.child.exitCode === null && s.child.signalCode === null) {
      s.child.kill(signal);
      const timer = setTimeout(() => s.child.kill('SIGKILL'), 10_000);
      await s.exited;
      clearTimeout(timer);
    }
  };

  for (let i = 0; i < size; i++) await start(i);
  await Promise.all(servers.map((_, i) => healthy(i, 30_000)));
  const urls = servers.map((s) => `nats://127.0.0.1:${s.port}`);
  return {
    urls,
    url: urls.join(','),
    servers,
    /** Stops server `i` with `signal` (its store is kept): an outage. */
    stop,
    /** Starts server `i` again on the same ports and store; resolves once it is healthy. */
    async start(i, ms = 30_000) {
      await start(i);
      await healthy(i, ms);
    },
    async close() {
      await Promise.all(servers.map((_, i) => stop(i, 'SIGKILL')));
      for (const s of servers) rmSync(s.store, { recursive: true, force: true });
    },
  };
}
