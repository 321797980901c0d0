// A real nats-server with JetStream for the cluster tests: a free 127.0.0.1 port, storage in
// a temp folder, stopped by the test (and killed when the test process exits).
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

/** A free port on 127.0.0.1 (free when asked; a process may still take it before it is used). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * One nats-server process on `port` with its store in `store`, started (bounded) and restartable
 * on the same port and data. `extra` are more arguments (cluster routes).
 */
async function natsProcess(port, store, extra = []) {
  let child;
  const start = async () => {
    child = spawn(NATS_SERVER_BIN, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store, ...extra], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    live.add(child);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.exited = exited;
    exited.then(() => live.delete(child));
    const ready = (async () => {
      while (!(await canConnect(port))) await new Promise((r) => setTimeout(r, 25));
    })();
    await withTimeout(ready, 10_000, `nats-server on port ${port}`);
  };
  const running = () => child && child.exitCode === null && child.signalCode === null;
  const stopChild = async (signal = 'SIGKILL') => {
    if (running()) {
      child.kill(signal);
      await withTimeout(child.exited, 10_000, `nats-server exit after ${signal}`);
    }
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    /** The server process id (it changes on restart). */
    pid: () => child.pid,
    /** Stops the server with `signal` (default SIGKILL), keeping its data (an outage). */
    stop: stopChild,
    /** Starts it again (after `stop`) on the same port and data. */
    start: async () => {
      if (!running()) await start();
    },
    /** Stops (SIGKILL) and starts it again on the same port and data. */
    restart: async () => {
      await stopChild();
      await start();
    },
    /** Stops it and removes its data. */
    async close() {
      await stopChild();
      rmSync(store, { recursive: true, force: true });
    },
  };
}

/** Starts nats-server -js; resolves once it accepts connections (bounded). */
export async function startNats() {
  if (!existsSync(NATS_SERVER_BIN)) {
    throw new Error(`${NATS_SERVER_BIN} is missing: run ./dev test (it installs nats-server) or set NATS_SERVER_BIN`);
  }
  const store = await mkdtemp(path.join(os.tmpdir(), 'switchboard-nats-'));
  return natsProcess(await freePort(), store);
}

/**
 * Starts a cluster of `size` nats-servers with JetStream on loopback ports (each with its store in
 * a temp folder), routed to each other. `url` lists every server, for clients to fail over.
 */
export async function startNatsCluster(size = 3) {
  if (!existsSync(NATS_SERVER_BIN)) {
    throw new Error(`${NATS_SERVER_BIN} is missing: run ./dev test (it installs nats-server) or set NATS_SERVER_BIN`);
  }
  const ports = [];
  const routePorts = [];
  for (let i = 0; i < size; i++) {
    ports.push(await freePort());
    routePorts.push(await freePort());
  }
  const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
  const servers = await Promise.all(
    ports.map(async (port, i) => {
      const store = await mkdtemp(path.join(os.tmpdir(), `switchboard-nats-${i}-`));
      return natsProcess(port, store, [
        '-n', `sb-test-${i}`,
        '--cluster_name', 'sb-test',
        '--cluster', `nats://127.0.0.1:${routePorts[i]}`,
        '--routes', routes,
      ]);
    }),
  );
  return {
    servers,
    url: servers.map((s) => s.url).join(','),
    async close() {
      await Promise.all(servers.map((s) => s.close()));
    },
  };
}
