// What an idle ("parked") connection costs the server: the RSS of the switchboard process
// (VmRSS from /proc/PID/status) before and after opening N connections with the official
// client, divided by N. For long polling every connection holds a poll. Not part of the test
// suite. Prints one JSON line.
//
//   node tests/e2e/bench/parked.js [--n 1000] [--transport LongPolling|ServerSentEvents|WebSockets]
//        [--protocol json|messagepack]
//
// Starts its own server on 127.0.0.1 (SWITCHBOARD_BIN, default target/release/switchboard) and
// stops it at the end. Linux only (reads /proc).

import { readdirSync, readFileSync } from 'node:fs';
import { benchOptions } from '../lib/bench.js';
import { hubUrl, startServer, withTimeout } from '../lib/server.js';
import { buildHub, transportOf } from '../lib/transports.js';

const values = benchOptions({ n: 1000, transport: 'LongPolling', protocol: 'json', batch: 50 });
const { n, batch } = values;

/** The pid of the switchboard process started with `configPath` (found in /proc). */
function pidOf(configPath) {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.includes(configPath)) return Number(entry);
    } catch {
      // the process is gone
    }
  }
  throw new Error(`no process started with ${configPath}`);
}

/** VmRSS of `pid`, in KiB. */
function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)[1]);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const server = await startServer({ config: '[tenants.demo]\nallow_anonymous = true\n' });
const connections = [];
try {
  const pid = pidOf(server.configPath);
  const url = hubUrl(server, 'demo', 'chat');
  const open = async () => {
    const connection = buildHub(url, { transport: values.transport, protocol: values.protocol });
    await withTimeout(connection.start(), 30_000, 'start');
    if (transportOf(connection) !== values.transport) throw new Error(`connected over ${transportOf(connection)}`);
    connections.push(connection);
    return connection;
  };

  // Warm up: plugin instances, allocator arenas, a few connections come and go.
  for (let i = 0; i < 20; i++) {
    const c = await open();
    await c.invoke('echo', i);
  }
  await Promise.all(connections.splice(0).map((c) => c.stop()));
  await sleep(1000);
  const before = rssKiB(pid);

  const started = performance.now();
  for (let i = 0; i < n; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, n - i) }, open));
  }
  const openSeconds = (performance.now() - started) / 1000;
  // Every connection answers: it is really connected (and, for long polling, polling).
  const probes = connections.filter((_, i) => i % Math.max(1, Math.floor(n / 20)) === 0);
  for (const c of probes) await withTimeout(c.invoke('echo', 'probe'), 10_000, 'probe');
  // Let the client's idle keep-alive sockets for POSTs close (undici: after 4 s), so what
  // remains is the parked connections themselves.
  await sleep(6000);
  const after = rssKiB(pid);

  console.log(
    JSON.stringify({
      bench: 'parked',
      transport: values.transport,
      protocol: values.protocol,
      connections: n,
      rss_before_kib: before,
      rss_after_kib: after,
      per_connection_kib: Math.round(((after - before) / n) * 10) / 10,
      open_seconds: Math.round(openSeconds * 100) / 100,
    }),
  );
} finally {
  for (let i = 0; i < connections.length; i += 200) {
    await Promise.all(connections.slice(i, i + 200).map((c) => withTimeout(c.stop(), 10_000, 'stop').catch(() => {})));
  }
  // stop() does not wait for the client's best-effort Close message; let those POSTs land.
  await sleep(1000);
  await server.stop();
}
