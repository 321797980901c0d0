// Real nats-servers with JetStream for the cluster tests and the reliability scenarios: one
// server, or a cluster routed on loopback. Each server has free 127.0.0.1 ports (client,
// route, monitoring), its store in a temp folder, can be stopped (SIGTERM or SIGKILL: an
// outage) and started again on the same ports and store, and is killed when the process exits.
// A server counts as started once its monitoring `/healthz` answers 200 (JetStream ready; in
// a cluster, a meta leader elected).
//
// The binary is `$NATS_SERVER_BIN` (set by `./dev test`), else tests/.tools/nats/bin/nats-server.

import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, withTimeout } from './server.js';

export const NATS_SERVER_BIN =
  process.env.NATS_SERVER_BIN ?? path.join(REPO_ROOT, 'tests', '.tools', 'nats', 'bin', 'nats-server');

/** The longest a server may take to become healthy, and to exit once signalled. */
const START_MS = 30_000;
const EXIT_MS = 10_000;

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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `n` distinct free 127.0.0.1 ports (held open together while picked; a process may still
 * take one before it is used). */
export async function freePorts(n) {
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

/** A free port on 127.0.0.1. */
export async function freePort() {
  return (await freePorts(1))[0];
}

async function healthy(monitorPort) {
  try {
    const r = await fetch(`http://127.0.0.1:${monitorPort}/healthz`, { signal: AbortSignal.timeout(1_000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

function requireBinary() {
  if (!existsSync(NATS_SERVER_BIN)) {
    throw new Error(`${NATS_SERVER_BIN} is missing: run ./dev test (it installs nats-server) or set NATS_SERVER_BIN`);
  }
}

/**
 * One nats-server named `name` on `ports` ({client, route, monitor}) with its store in `store`,
 * restartable on the same ports and store. `routes` (a cluster's route URLs) makes it a member
 * of cluster `clusterName`. It is not started yet: call `spawnChild()`, then `whenHealthy()`.
 */
function natsProcess({ name, ports, store, clusterName, routes }) {
  let child = null;
  let exited = null;
  const args = ['-a', '127.0.0.1', '-p', String(ports.client), '-m', String(ports.monitor), '-js', '-sd', store, '--server_name', name];
  if (routes) args.push('--cluster_name', clusterName, '--cluster', `nats://127.0.0.1:${ports.route}`, '--routes', routes);
  const running = () => child && child.exitCode === null && child.signalCode === null;
  const spawnChild = () => {
    if (running()) return;
    child = spawn(NATS_SERVER_BIN, args, { stdio: ['ignore', 'ignore', 'ignore'] });
    live.add(child);
    const me = child;
    exited = new Promise((resolve) => me.once('exit', resolve));
    exited.then(() => live.delete(me));
  };
  const whenHealthy = () =>
    withTimeout(
      (async () => {
        while (!(await healthy(ports.monitor))) await sleep(50);
      })(),
      START_MS,
      `nats-server ${name} healthy (JetStream ready)`,
    );
  /** Stops it with `signal` (SIGKILL after EXIT_MS if another signal is not enough). */
  const stop = async (signal = 'SIGKILL') => {
    if (!running()) return;
    const me = child;
    me.kill(signal);
    const timer = setTimeout(() => me.kill('SIGKILL'), EXIT_MS);
    await withTimeout(exited, EXIT_MS + 5_000, `nats-server ${name} exit after ${signal}`).finally(() => clearTimeout(timer));
  };
  const start = async () => {
    spawnChild();
    await whenHealthy();
  };
  return {
    name,
    url: `nats://127.0.0.1:${ports.client}`,
    port: ports.client,
    /** Its monitoring endpoints (`/jsz`, `/varz`, `/healthz`). */
    monitorUrl: `http://127.0.0.1:${ports.monitor}`,
    spawnChild,
    whenHealthy,
    /** The server process id (it changes on restart). */
    pid: () => child.pid,
    /** Stops the server with `signal` (default SIGKILL), keeping its store: an outage. */
    stop,
    /** Starts it again (after `stop`) on the same ports and store; resolves once healthy. */
    start,
    /** Stops (SIGKILL) and starts it again on the same ports and store. */
    async restart() {
      await stop();
      await start();
    },
    /** Stops it and removes its store. */
    async close() {
      await stop();
      rmSync(store, { recursive: true, force: true });
    },
  };
}

/**
 * Starts `size` nats-servers with JetStream, routed to each other when more than one (cluster
 * `label`, servers `label-0`...); resolves once every one is healthy. `url` lists every server,
 * comma separated, for clients to fail over; `urls` has them one by one.
 */
export async function startNatsCluster(size = 3, { label = 'sb-test' } = {}) {
  requireBinary();
  const picked = await freePorts(size * 3);
  const ports = Array.from({ length: size }, (_, i) => ({ client: picked[i * 3], route: picked[i * 3 + 1], monitor: picked[i * 3 + 2] }));
  const routes = size > 1 ? ports.map((p) => `nats://127.0.0.1:${p.route}`).join(',') : null;
  const servers = [];
  for (let i = 0; i < size; i++) {
    const store = await mkdtemp(path.join(os.tmpdir(), `switchboard-nats-${label}-${i}-`));
    servers.push(natsProcess({ name: `${label}-${i}`, ports: ports[i], store, clusterName: label, routes }));
  }
  // All spawned before any is waited for: a cluster is healthy only once it has a leader.
  for (const s of servers) s.spawnChild();
  await Promise.all(servers.map((s) => s.whenHealthy()));
  const urls = servers.map((s) => s.url);
  return {
    servers,
    urls,
    url: urls.join(','),
    /** Stops server `i` with `signal` (default SIGKILL), keeping its store. */
    stop: (i, signal) => servers[i].stop(signal),
    /** Starts server `i` again; resolves once it is healthy. */
    start: (i) => servers[i].start(),
    async close() {
      await Promise.all(servers.map((s) => s.close()));
    },
  };
}

/** Starts one nats-server with JetStream; resolves once it is healthy. */
export async function startNats() {
  const { servers } = await startNatsCluster(1, { label: 'single' });
  return servers[0];
}
