// Real load balancers in front of a cluster: Debian's haproxy and nginx (installed by `./dev
// test`), started on 127.0.0.1 with a config generated into a temp folder, stopped by the test
// (and killed when the test process exits). Both are set up the way docs/cluster.md documents:
// round robin with no stickiness; WebSocket upgrades, Server-Sent Events (no buffering) and
// long polls passed through; a connect that is refused (a dead node) retried on another node,
// because the official SignalR client makes a single attempt to resume a connection.
//
// `haproxyConfig` and `nginxConfig` are pure: they return the config text, so a test can check
// what it runs and docs/cluster.md can show the same settings.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './nats.js';
import { withTimeout } from './server.js';

export const HAPROXY_BIN = process.env.HAPROXY_BIN ?? '/usr/sbin/haproxy';
export const NGINX_BIN = process.env.NGINX_BIN ?? '/usr/sbin/nginx';

/** How long a balancer may take to accept connections, and to exit after SIGTERM. */
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
/** The balancer's own output kept for a test to read (its tail beyond this is dropped). */
const OUTPUT_LIMIT = 1024 * 1024;

const live = new Set();
const tempDirs = new Set();
process.on('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * haproxy: `balance roundrobin` with no cookie or stick table; `/readyz` health checks every
 * 500 ms (a node is out after 2 failures, back after 1 success); a refused connect, or a GET
 * (a WebSocket upgrade, a resume) whose node closed the connection without an answer (it died
 * meanwhile; a POST is not sent twice), is retried up to `retries` times, each on another node (`option redispatch 1`); WebSockets and SSE stay open
 * for `tunnelSecs`; the client's address appended to X-Forwarded-For (`option forwardfor`).
 * `shutdownSessions`: a node marked down has its open connections cut
 * (`on-marked-down shutdown-sessions`), so the clients of a hung node resume elsewhere.
 */
export function haproxyConfig({ port, nodes, retries = 3, tunnelSecs = 3600, maxconn = 8000, tls, shutdownSessions = false }) {
  const markedDown = shutdownSessions ? ' on-marked-down shutdown-sessions' : '';
  const servers = nodes
    .map((node, i) => `  server node${i} 127.0.0.1:${node.port} check inter 500 fall 2 rise 1${markedDown}`)
    .join('\n');
  return `global
  maxconn ${maxconn}
  log stdout format raw local0 info

defaults
  mode http
  log global
  option httplog
  timeout connect 2s
  timeout client ${tunnelSecs}s
  timeout server ${tunnelSecs}s
  timeout tunnel ${tunnelSecs}s
  timeout http-request 10s
  timeout queue 5s
  retries ${retries}
  retry-on conn-failure empty-response
  option redispatch 1
  option forwardfor

frontend switchboard
  bind 127.0.0.1:${port}${tls ? ` ssl crt ${tls.pem}` : ''}
  default_backend nodes

backend nodes
  balance roundrobin
  http-request disable-l7-retry if !METH_GET
  option httpchk GET /readyz
${servers}
`;
}

/**
 * nginx: round robin (its default) with no stickiness; HTTP/1.1 to the nodes with the Upgrade
 * headers passed on (WebSockets); no response buffering (SSE, long polls); a connect error or
 * timeout tried on the next node (`proxy_next_upstream error timeout`), at most `tries` nodes;
 * the client's address appended to X-Forwarded-For.
 * `dir` holds its pid file and temp folders.
 */
export function nginxConfig({ port, nodes, dir, tries = 3, tunnelSecs = 3600, user, tls }) {
  const servers = nodes.map((node) => `    server 127.0.0.1:${node.port};`).join('\n');
  return `${user ? `user ${user};\n` : ''}daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 8192; }

http {
  log_format upstreams '$request_method $uri $status upstream=$upstream_addr';
  access_log ${dir}/access.log upstreams;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;

  map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      '';
  }

  upstream switchboard {
${servers}
  }

  server {
    listen 127.0.0.1:${port} reuseport${tls ? ' ssl' : ''};
${tls ? `    ssl_certificate ${tls.cert};\n    ssl_certificate_key ${tls.key};\n` : ''}    location / {
      proxy_pass http://switchboard;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_connect_timeout 2s;
      proxy_read_timeout ${tunnelSecs}s;
      proxy_send_timeout ${tunnelSecs}s;
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries ${tries};
    }
  }
}
`;
}

/** How many sockets listen on 127.0.0.1:`port` (IPv4, from /proc/net/tcp). */
function listeners(port) {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .filter((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1] === local && fields[3] === '0A';
    }).length;
}

/** The last OUTPUT_LIMIT bytes of a file ('' if there is none yet). */
function tail(file) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return '';
  }
  return text.length > OUTPUT_LIMIT ? text.slice(-OUTPUT_LIMIT) : text;
}

/** Kills a balancer's whole process group (nginx's workers with their master). */
function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Starts one balancer process from `config` on `port`. `argv(configPath)` gives its command
 * line. Each process runs in a process group of its own, so nginx's workers go with it.
 */
async function startProcess({ name, bin, dir, port, config, argv, accessLog, unbindSignal }) {
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: run ./dev test (it installs haproxy and nginx) or set ${name.toUpperCase()}_BIN`);
  }
  const configPath = path.join(dir, `${name}.conf`);
  await writeFile(configPath, config);
  let output = '';
  let current;
  const alive = (child) => child.exitCode === null && child.signalCode === null;
  const spawnOne = async () => {
    const before = listeners(port);
    const child = spawn(bin, argv(configPath), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    live.add(child);
    child.exited = new Promise((resolve) => {
      child.once('exit', resolve);
      child.once('error', (err) => {
        output += `spawn error: ${err.message}\n`;
        resolve();
      });
    });
    child.exited.then(() => live.delete(child));
    const onData = (chunk) => {
      output += chunk.toString('utf8');
      if (output.length > OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT / 2);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    // Bound once the port has one more listening socket than before (during a restart the old
    // process still listens on it, so a connect alone says nothing).
    await withTimeout(
      (async () => {
        while (listeners(port) <= before) {
          if (!alive(child)) throw new Error(`${name} exited at start; its output:\n${output}`);
          await sleep(25);
        }
      })(),
      START_TIMEOUT_MS,
      `${name} listening on 127.0.0.1:${port}; its output so far:\n${output}`,
    );
    return child;
  };
  const stopOne = async (child, signal) => {
    if (!alive(child)) return;
    killGroup(child, signal);
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), STOP_TIMEOUT_MS);
    await withTimeout(child.exited, 2 * STOP_TIMEOUT_MS, `${name} exit`);
    clearTimeout(timer);
  };
  current = await spawnOne();
  return {
    name,
    url: `${/ ssl|ssl_certificate/.test(config) ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    configPath,
    config,
    /**
     * Its stdout and stderr so far (the last 512 KiB to 1 MiB): haproxy logs a line per request
     * (`nodes/node1`, retries `+1` when redispatched), nginx (its access log) `upstream=` with
     * every node tried.
     */
    output: () => output + (accessLog ? tail(accessLog) : ''),
    running: () => alive(current),
    /**
     * A balancer restart that refuses no new connection: a second process starts on the same
     * port (SO_REUSEPORT), the first stops listening, then is killed (SIGKILL). Every connection
     * through the first drops at once, without a close handshake; the clients' reconnects reach
     * the second.
     */
    async restart() {
      const old = current;
      current = await spawnOne();
      // The old process first stops listening (so no reconnect can land in its accept queue and
      // be reset with it), keeping its connections; then it dies with them.
      const both = listeners(port);
      process.kill(old.pid, unbindSignal);
      await withTimeout(
        (async () => {
          while (listeners(port) >= both && alive(old)) await sleep(10);
        })(),
        STOP_TIMEOUT_MS,
        `${name} to stop listening after ${unbindSignal}`,
      );
      await stopOne(old, 'SIGKILL');
    },
    /** Stops it (SIGTERM, then SIGKILL) and removes its folder. */
    async close() {
      await stopOne(current, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    },
  };
}

async function tempDir(prefix) {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/**
 * Starts haproxy in front of `nodes` (each `{ port }`) on a free 127.0.0.1 port.
 * @returns {Promise<{name: string, url: string, port: number, config: string, output: () => string,
 *   running: () => boolean, restart: () => Promise<void>, close: () => Promise<void>}>}
 */
export async function startHaproxy(nodes, options = {}) {
  const dir = await tempDir('switchboard-haproxy-');
  const port = await freePort();
  const config = haproxyConfig({ port, nodes, ...options });
  // -db: stay in the foreground; -W would add a master process between the test and haproxy.
  return startProcess({
    name: 'haproxy',
    bin: HAPROXY_BIN,
    dir,
    port,
    config,
    argv: (file) => ['-db', '-f', file],
    // Soft stop: unbind, keep serving open connections.
    unbindSignal: 'SIGUSR1',
  });
}

/** Starts nginx in front of `nodes` (each `{ port }`) on a free 127.0.0.1 port; same handle as startHaproxy. */
export async function startNginx(nodes, options = {}) {
  const dir = await tempDir('switchboard-nginx-');
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(path.join(dir, sub));
  const port = await freePort();
  // As root, nginx's workers would run as nobody, who cannot use the temp folders made here.
  const user = process.getuid?.() === 0 ? 'root' : undefined;
  const config = nginxConfig({ port, nodes, dir, user, ...options });
  return startProcess({
    name: 'nginx',
    bin: NGINX_BIN,
    dir,
    port,
    config,
    accessLog: path.join(dir, 'access.log'),
    // Graceful shutdown: close the listeners, keep serving open connections.
    unbindSignal: 'SIGQUIT',
    // -e: its early errors go to stderr, not to /var/log/nginx (not writable for everyone).
    argv: (file) => ['-e', 'stderr', '-p', dir, '-c', file],
  });
}

/** The balancers by name, for tests that run once per balancer. */
export const BALANCERS = { haproxy: startHaproxy, nginx: startNginx };
