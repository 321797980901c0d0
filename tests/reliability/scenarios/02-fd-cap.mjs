// Point 2: a node-wide connection cap. A node started with 256 open files and 306 silent
// TCP sockets still answers /healthz and /metrics, answers a negotiate and a WebSocket
// upgrade at once (served, or refused cleanly with 503), and recovers when they leave.

import { expect, sleep, within } from '../lib/harness.mjs';
import { demoTenant, healthz } from '../lib/node.mjs';
import { dial, RawWs, watchClose } from '../lib/wire.mjs';

export const name = 'fd-cap';
export const point = 2;
export const description = 'ulimit -n 256 and 306 silent sockets: health and new clients answered (or 503), node recovers';

const ANSWER_MS = 3_000;

async function status(url, init = {}) {
  const started = Date.now();
  try {
    const r = await fetch(url, { ...init, signal: AbortSignal.timeout(ANSWER_MS) });
    await r.arrayBuffer();
    return { status: r.status, ms: Date.now() - started };
  } catch {
    return { status: 'no answer', ms: Date.now() - started };
  }
}

export async function run(ctx) {
  const limit = 256;
  const attackers = 306;
  const node = await ctx.startNode({ config: demoTenant(), wrap: ['prlimit', `--nofile=${limit}:${limit}`, '--'] });
  ctx.figure('nofile_limit', limit);
  ctx.figure('baseline', ctx.stats(node));

  const sockets = [];
  ctx.defer(() => sockets.forEach((s) => s.destroy()));
  let refusedAtConnect = 0;
  for (let i = 0; i < attackers; i++) {
    try {
      sockets.push(watchClose(await dial(node.port, 2_000)));
    } catch {
      refusedAtConnect++;
    }
  }
  await sleep(1_000);
  const held = sockets.filter((s) => s.closedAtMs === undefined).length;
  ctx.figure('attack', { sockets: attackers, refused_at_connect: refusedAtConnect, still_open_after_1s: held, node: ctx.stats(node) });

  const health = await status(`${node.url}/healthz`);
  const metrics = await status(`${node.url}/metrics`);
  const negotiate = await status(`${node.url}/hubs/demo/chat/negotiate?negotiateVersion=1`, { method: 'POST' });
  let upgrade;
  try {
    const ws = await RawWs.open(node.port, '/hubs/demo/chat', { ms: ANSWER_MS });
    upgrade = '101';
    ws.destroy();
  } catch (err) {
    const m = String(err.message).match(/HTTP\/1\.1 (\d{3})/);
    upgrade = m ? m[1] : /closed the connection/.test(err.message) ? 'closed' : 'no answer';
  }
  ctx.figure('during_attack', { healthz: health, metrics, negotiate, websocket_upgrade: upgrade });
  const accepting = (node.log().match(/Too many open files/g) ?? []).length;
  ctx.figure('log_lines_too_many_open_files', accepting);

  for (const s of sockets) s.destroy();
  const recoveredFrom = Date.now();
  const back = await within(15_000, (async () => {
    while ((await healthz(node, 1_000)) !== 200) await sleep(100);
    return Date.now() - recoveredFrom;
  })(), 'the node to answer /healthz after the attackers left').catch(() => null);
  ctx.figure('ms_to_recover_after_attack', back);
  ctx.figure('after', ctx.stats(node));

  expect(health.status === 200, 'GET /healthz at the cap', `200 within ${ANSWER_MS} ms`, String(health.status));
  expect(metrics.status === 200, 'GET /metrics at the cap', `200 within ${ANSWER_MS} ms`, String(metrics.status));
  expect([200, 503].includes(negotiate.status), 'a negotiate at the cap', `200 or 503 within ${ANSWER_MS} ms`, String(negotiate.status));
  // An upgrade without a negotiate is a 404 "no connection" when served; 503 or a close when refused.
  expect(['101', '400', '404', '503', 'closed'].includes(upgrade), 'a WebSocket upgrade at the cap', `an answer within ${ANSWER_MS} ms`, upgrade);
  expect(back !== null, '/healthz after the attackers left', 'answered within 15 s', 'no answer');
}
