// Deploy latency and invocation latency around hot reloads. Not part of the test suite.
// Prints one JSON object.
//
//   node tests/e2e/bench/deploy.js [--deploys 20] [--seconds 5] [--clients 4]
//
// Starts its own server (SWITCHBOARD_BIN) with a temporary plugin folder and measures:
// - api: from sending `POST .../deploy` until a client's call is answered by the new version
//   (and until the deploy request itself returned);
// - file: from writing DIR/{tenant}/{hub}.wasm (write + rename) until the new version answers;
// - invocation latency (echo round trip, `--clients` connections calling back to back):
//   p50/p99/max in steady state (no deploys, `--seconds`) and while deploys alternate between
//   two versions back to back (`--deploys`), with the count of failed calls.
// Every wait is bounded; the server is stopped at the end.

import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LogLevel } from '@microsoft/signalr';
import { benchOptions } from '../lib/bench.js';
import { ADMIN_SECTION, V1, V2, deploy, wasmOf } from '../lib/admin.js';
import { buildConnection } from '../lib/client.js';
import { hubUrl, startServer, withTimeout } from '../lib/server.js';

const { deploys: DEPLOYS, seconds: SECONDS, clients: CLIENTS } = benchOptions({ deploys: 20, seconds: 5, clients: 4 });

const CONFIG = `${ADMIN_SECTION}
[tenants.demo]
allow_anonymous = true
`;

function stats(ms) {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : null);
  const round = (v) => (v === null ? null : Math.round(v * 1000) / 1000);
  return { n: sorted.length, p50_ms: round(at(50)), p99_ms: round(at(99)), max_ms: round(sorted.at(-1) ?? null) };
}

/** Calls `version` until it answers `want`; returns the time (performance.now()) it did. */
async function firstAnswerFrom(connection, want) {
  const poll = (async () => {
    for (let i = 0; i < 1_000_000; i++) {
      if ((await connection.invoke('version')) === want) return performance.now();
    }
    throw new Error('never answered');
  })();
  return withTimeout(poll, 30_000, `version ${want}`);
}

/** Echo loops on `connections` until `done()`; collects latencies and failures. */
async function callLoops(connections, done) {
  const latencies = [];
  let failures = 0;
  await Promise.all(
    connections.map(async (c, i) => {
      for (let n = 0; !done() && n < 10_000_000; n++) {
        const t0 = performance.now();
        try {
          await withTimeout(c.invoke('echo', n), 10_000, 'echo');
          latencies.push(performance.now() - t0);
        } catch {
          failures++;
        }
      }
    }),
  );
  return { latencies, failures };
}

const server = await startServer({ config: CONFIG, plugins: { 'demo/.keep': Buffer.alloc(0) } });
const connections = [];
try {
  const [v1, v2] = await Promise.all([wasmOf(V1), wasmOf(V2)]);
  const versions = [
    [v1, V1],
    [v2, V2],
  ];
  await deploy(server, 'demo', 'bench', v1);
  for (let i = 0; i < CLIENTS; i++) {
    const c = buildConnection(hubUrl(server, 'demo', 'bench'), { logLevel: LogLevel.None });
    await withTimeout(c.start(), 5_000, 'start');
    connections.push(c);
  }
  const probe = buildConnection(hubUrl(server, 'demo', 'bench'), { logLevel: LogLevel.None });
  await withTimeout(probe.start(), 5_000, 'start probe');
  connections.push(probe);
  const callers = connections.slice(0, CLIENTS);

  // Steady state.
  const steadyEnd = performance.now() + SECONDS * 1000;
  const steady = await callLoops(callers, () => performance.now() > steadyEnd);

  // Deploys through the API while the callers call.
  let deploying = true;
  const during = callLoops(callers, () => !deploying);
  const apiServe = [];
  const apiReturn = [];
  for (let d = 0; d < DEPLOYS; d++) {
    const [wasm, name] = versions[(d + 1) % 2];
    const t0 = performance.now();
    const served = firstAnswerFrom(probe, name);
    const r = await deploy(server, 'demo', 'bench', wasm);
    if (r.status !== 200) throw new Error(`deploy answered ${r.status} ${JSON.stringify(r.body)}`);
    apiReturn.push(performance.now() - t0);
    apiServe.push((await served) - t0);
  }
  deploying = false;
  const reload = await during;

  // File drops.
  const fileServe = [];
  const file = path.join(server.pluginsDir, 'demo', 'bench.wasm');
  let current = DEPLOYS % 2 === 0 ? V1 : V2;
  for (let d = 0; d < Math.min(DEPLOYS, 10); d++) {
    const [wasm, name] = current === V1 ? [v2, V2] : [v1, V1];
    const t0 = performance.now();
    await writeFile(`${file}.tmp`, wasm);
    await rename(`${file}.tmp`, file);
    fileServe.push((await firstAnswerFrom(probe, name)) - t0);
    current = name;
  }

  console.log(
    JSON.stringify(
      {
        deploys: DEPLOYS,
        clients: CLIENTS,
        api_deploy_until_served: stats(apiServe),
        api_deploy_request: stats(apiReturn),
        file_write_until_served: stats(fileServe),
        invocation_steady: { ...stats(steady.latencies), failures: steady.failures },
        invocation_during_reloads: { ...stats(reload.latencies), failures: reload.failures },
      },
      null,
      1,
    ),
  );
} finally {
  await Promise.all(connections.map((c) => c.stop().catch(() => {})));
  await server.stop();
}
