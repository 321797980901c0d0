// Point 4: unfinished WebSocket messages. Connections each send a message start and 15
// continuation frames of 64,000 bytes with no FIN: the node must not hold them (bounded RSS)
// and closes each one with a protocol close code (1009 too big, or 1002/1008).

import { expect, quantile, samplePeak, sleep } from '../lib/harness.mjs';
import { demoTenant } from '../lib/node.mjs';
import { signalrWs } from '../lib/wire.mjs';

export const name = 'unfinished-messages';
export const point = 4;
export const description = 'message starts + 15 continuations of 64,000 bytes without FIN: bounded RSS, closed with 1009/1002/1008';

const FRAME = 64_000;
const CONTINUATIONS = 15;
const CLOSE_WITHIN_MS = 10_000;
const GROWTH_PER_CONNECTION_KIB = 256;
const CODES = [1002, 1008, 1009];

export async function run(ctx) {
  const connections = ctx.size(50, 200);
  const node = await ctx.startNode({ config: demoTenant() });
  const sockets = [];
  ctx.defer(() => sockets.forEach((ws) => ws.destroy()));
  for (let i = 0; i < connections; i++) sockets.push(await signalrWs(node));
  await sleep(300);
  const base = ctx.stats(node);
  ctx.figure('baseline', base);

  const rss = samplePeak(() => ctx.stats(node).rssKiB ?? 0, base.rssKiB, 50);
  const start = Buffer.from(`{"type":1,"target":"echo","arguments":["${'a'.repeat(FRAME - 40)}`);
  const more = Buffer.alloc(FRAME, 0x61);
  const sentAt = Date.now();
  for (const ws of sockets) {
    ws.send(0x1, start, { fin: false });
    for (let i = 0; i < CONTINUATIONS; i++) ws.send(0x0, more, { fin: false });
  }
  const deadline = Date.now() + CLOSE_WITHIN_MS;
  while (sockets.some((ws) => ws.socket.closedAtMs === undefined) && Date.now() < deadline) await sleep(100);
  await sleep(500);
  const peak = await rss.stop();
  const after = ctx.stats(node);

  const closed = sockets.filter((ws) => ws.socket.closedAtMs !== undefined);
  const codes = {};
  for (const ws of sockets) {
    const key = ws.socket.closedAtMs === undefined ? 'still open' : String(ws.closeCode ?? `no Close frame${ws.socketError ? ` (${ws.socketError})` : ''}`);
    codes[key] = (codes[key] ?? 0) + 1;
  }
  const times = closed.map((ws) => ws.socket.closedAtMs - sentAt);
  const perConnection = (peak - base.rssKiB) / connections;
  ctx.figure('connections', connections);
  ctx.figure('bytes_sent_each', FRAME * (CONTINUATIONS + 1));
  ctx.figure('close_codes', codes);
  ctx.figure('close_ms', { p50: quantile(times, 0.5), max: quantile(times, 1) });
  ctx.figure('rss_peak_growth_kib', peak - base.rssKiB);
  ctx.figure('rss_peak_growth_per_connection_kib', Math.round(perConnection));
  ctx.figure('after', after);

  expect(closed.length === connections, 'connections with an unfinished message closed by the node', `all ${connections} within ${CLOSE_WITHIN_MS} ms`, `${closed.length}`);
  const good = sockets.filter((ws) => CODES.includes(ws.closeCode)).length;
  const resets = sockets.filter((ws) => ws.closeCode === undefined && ws.socketError === 'ECONNRESET').length;
  const hint = resets > 0 ? ` (${resets} reset: the node closed with unread input instead of reading it away after its Close frame, so the client never saw a code)` : '';
  expect(good === connections, 'close codes', `${CODES.join('/')} for all ${connections}`, `${JSON.stringify(codes)}${hint}`);
  expect(perConnection < GROWTH_PER_CONNECTION_KIB, 'RSS growth per connection (peak)', `< ${GROWTH_PER_CONNECTION_KIB} KiB`, `${Math.round(perConnection)} KiB`);
}
