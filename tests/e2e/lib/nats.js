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

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts nats-server -js; resolves once it accepts connections (bounded). */
export async function startNats() {
  if (!existsSync(NATS_SERVER_BIN)) {
    throw new Error(`${NATS_SERVER_BIN} is missing: run ./dev test (it installs nats-server) or set NATS_SERVER_BIN`);
  }
  const store = await mkdtemp(path.join(os.tmpdir(), 'switchboard-nats-'));
  const port = await freePort();
  let child;
  const start = async () => {
    child = spawn(NATS_SERVER_BIN, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store], {
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
  const stopChild = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await withTimeout(child.exited, 5_000, 'nats-server exit');
    }
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    /** The server process id (it changes on restart). */
    pid: () => child.pid,
    /** Kills the server, keeping its data (an outage). */
    stop: stopChild,
    /** Starts it again on the same port and data. */
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
