// Report only (--measure): the node's RSS and fds, and the echo latency of well-behaved
// official clients alone, then beside slow consumers, then beside slowloris sockets. The
// issue's goal is +10% p99 at most; nothing here is asserted, timings vary with the machine.

import { pool, quantile, sleep, within } from '../lib/harness.mjs';
import { demoTenant, hubUrl, rest } from '../lib/node.mjs';
import { dial, rawInvoke, signalrWs, watchClose } from '../lib/wire.mjs';
import { buildConnection } from '../../e2e/lib/client.js';

export const name = 'measure-latency';
export const point = 0;
export const group = 'measure';
export const description = 'echo p50/p99 of well-behaved clients alone, beside slow consumers, beside slowloris; RSS and fds';
export const timeoutMs = 300_000;

/** Each client echoes `rounds` times, one at a time; all clients at once. Latencies in ms. */
async function echoRound(clients, rounds, payload) {
  const all = [];
  await Promise.all(
    clients.map(async (c) => {
      for (let i = 0; i < rounds; i++) {
        const t0 = performance.now();
        await within(10_000, c.invoke('echo', payload), 'an echo');
        all.push(performance.now() - t0);
      }
    }),
  );
  return { samples: all.length, p50_ms: round(quantile(all, 0.5)), p99_ms: round(quantile(all, 0.99)), max_ms: round(quantile(all, 1)) };
}

const round = (x) => (x === null ? null : Math.round(x * 100) / 100);

export async function run(ctx) {
  const clientsN = ctx.size(20, 100);
  const rounds = ctx.size(50, 200);
  const slowN = ctx.size(20, 100);
  const lorisN = ctx.size(200, 1000);
  const node = await ctx.startNode({ config: demoTenant() });
  ctx.figure('idle', ctx.stats(node));

  const clients = await pool(clientsN, 10, async (i) => {
    const c = buildConnection(hubUrl(node, 'demo', 'chat'));
    ctx.defer(() => within(5_000, c.stop(), 'stop a client').catch(() => {}));
    await within(10_000, c.start(), `start client ${i}`);
    return c;
  });
  const payload = { text: ctx.rng.word(64) };
  await echoRound(clients, 5, payload); // warm-up
  ctx.figure('alone', { clients: clientsN, ...(await echoRound(clients, rounds, payload)), node: ctx.stats(node) });

  // Beside slow consumers: they joined a group, stopped reading, and 30 KB messages go to it.
  const group = `measure-slow-${ctx.rng.word(6)}`;
  const slow = [];
  ctx.defer(() => slow.forEach((ws) => ws.destroy()));
  for (let i = 0; i < slowN; i++) {
    const ws = await signalrWs(node);
    await rawInvoke(ws, 'joinGroup', [group]);
    ws.socket.pause();
    slow.push(ws);
  }
  const big = ctx.rng.word(64).repeat(470).slice(0, 30_000);
  let flooding = true;
  let floodSent = 0;
  const flood = (async () => {
    while (flooding && floodSent < 100_000) {
      await rest(node, 'POST', `/groups/${group}/:send`, { body: JSON.stringify({ target: 'addNewMessageToPage', arguments: ['flood', big] }) });
      floodSent++;
      await sleep(5);
    }
  })();
  await sleep(1_000);
  const besideSlow = await echoRound(clients, rounds, payload);
  const underSlow = ctx.stats(node);
  flooding = false;
  await flood;
  ctx.figure('beside_slow_consumers', { slow_consumers: slowN, messages_30KB_sent: floodSent, ...besideSlow, node: underSlow });
  slow.forEach((ws) => ws.destroy());
  await sleep(1_000);

  // Beside slowloris sockets: one header byte a second each.
  const loris = [];
  ctx.defer(() => loris.forEach((s) => s.destroy()));
  for (let i = 0; i < lorisN; i++) loris.push(watchClose(await dial(node.port)));
  const head = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${ctx.rng.word(400)}\r\n\r\n`;
  let offset = 0;
  const timer = setInterval(() => {
    for (const s of loris) if (!s.destroyed && s.closedAtMs === undefined) s.write(head[offset % head.length]);
    offset++;
  }, 1_000);
  ctx.defer(() => clearInterval(timer));
  await sleep(1_500);
  const besideLoris = await echoRound(clients, rounds, payload);
  ctx.figure('beside_slowloris', { sockets: lorisN, still_open: loris.filter((s) => s.closedAtMs === undefined).length, ...besideLoris, node: ctx.stats(node) });
  clearInterval(timer);
}
