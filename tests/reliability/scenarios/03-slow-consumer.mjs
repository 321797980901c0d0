// Point 3: slow consumers. WebSocket clients in a group stop reading while 30 KB messages go
// to the group: each is closed within seconds and its memory freed (the node grows less than
// 2 MiB per slow client), while a normal client in the same group gets every message in order.

import { expect, pool, quantile, samplePeak, sleep, within } from '../lib/harness.mjs';
import { demoTenant, hubUrl, rest } from '../lib/node.mjs';
import { rawInvoke, signalrWs } from '../lib/wire.mjs';
import { buildConnection } from '../../e2e/lib/client.js';

export const name = 'slow-consumer';
export const point = 3;
export const description = 'clients that stop reading are closed within seconds, < 2 MiB each; a normal client gets everything';

const CLOSE_WITHIN_MS = 10_000;
const GROWTH_PER_SLOW_KIB = 2048;

export async function run(ctx) {
  const slowCount = ctx.size(3, 100);
  const messages = ctx.size(600, 3000);
  const size = 30_000;
  const node = await ctx.startNode({ config: demoTenant() });
  const group = `slow-${ctx.rng.word(8)}`;

  const normal = buildConnection(hubUrl(node, 'demo', 'chat'));
  ctx.defer(() => within(5_000, normal.stop(), 'stop the normal client').catch(() => {}));
  let normalClosed = null;
  normal.onclose((err) => {
    normalClosed = err ? err.message : 'closed';
  });
  const got = [];
  normal.on('addNewMessageToPage', (i) => {
    got.push(i);
  });
  await within(5_000, normal.start(), 'start the normal client');
  await within(5_000, normal.invoke('joinGroup', group), 'the normal client joins');

  const slow = [];
  ctx.defer(() => slow.forEach((ws) => ws.destroy()));
  for (let i = 0; i < slowCount; i++) {
    const ws = await signalrWs(node);
    slow.push(ws);
    const done = await rawInvoke(ws, 'joinGroup', [group]);
    expect(!done.error, 'a slow client joins the group', 'no error', done.error);
  }
  const payload = ctx.rng.word(64).repeat(Math.ceil(size / 64)).slice(0, size);
  const send = (i) => rest(node, 'POST', `/groups/${group}/:send`, { body: JSON.stringify({ target: 'addNewMessageToPage', arguments: [i, payload] }) });

  // Warm up with everyone reading, then measure from there.
  for (let i = 0; i < 10; i++) await send(-1);
  await sleep(500);
  const base = ctx.stats(node);
  ctx.figure('baseline', base);

  for (const ws of slow) ws.socket.pause();
  const rss = samplePeak(() => ctx.stats(node).rssKiB ?? 0, base.rssKiB, 100);
  let sampling = true;
  const echoMs = [];
  const echoes = (async () => {
    while (sampling && normalClosed === null) {
      const t0 = performance.now();
      await within(5_000, normal.invoke('echo', 'x'), 'echo on the normal client during the attack');
      echoMs.push(performance.now() - t0);
      await sleep(50);
    }
  })();

  const started = Date.now();
  // One at a time, so the order the node accepted them in is 0, 1, 2, ...
  const statuses = await pool(messages, 1, send);
  const sendMs = Date.now() - started;
  const refused = statuses.filter((s) => s.status !== 202).length;

  // When did the node let go of each slow client? (HEAD on the connection: 404 once gone.)
  const closedAfter = await Promise.all(
    slow.map(async (ws) => {
      const deadline = started + sendMs + CLOSE_WITHIN_MS;
      while (Date.now() < deadline) {
        if ((await rest(node, 'HEAD', `/connections/${ws.connectionId}`)).status === 404) return Date.now() - started;
        await sleep(200);
      }
      return null;
    }),
  );
  const deliverDeadline = Date.now() + 10_000;
  while (got.filter((i) => i >= 0).length < messages && normalClosed === null && Date.now() < deliverDeadline) await sleep(50);
  sampling = false;
  const peak = await rss.stop();
  await echoes.catch((err) => ctx.note(err.message));
  await sleep(1_000);
  const after = ctx.stats(node);

  const numbered = got.filter((i) => i >= 0);
  const closed = closedAfter.filter((ms) => ms !== null);
  ctx.figure('slow_clients', slowCount);
  ctx.figure('messages', { count: messages, bytes_each: size, send_ms: sendMs, refused_by_rest: refused });
  ctx.figure('slow_closed', { closed: closed.length, ms_from_first_send_max: quantile(closed, 1) });
  ctx.figure('rss_peak_growth_kib', peak - base.rssKiB);
  ctx.figure('rss_peak_growth_per_slow_kib', Math.round((peak - base.rssKiB) / slowCount));
  ctx.figure('after_close', after);
  ctx.figure('rss_growth_after_close_kib', after.rssKiB - base.rssKiB);
  ctx.figure('normal_client', { delivered: numbered.length, in_order: numbered.every((v, i) => v === i), closed: normalClosed, echo_ms_p50: quantile(echoMs, 0.5), echo_ms_p99: quantile(echoMs, 0.99) });

  expect(normalClosed === null, 'the normal client', 'still connected', `closed: ${normalClosed}`);
  expect(refused === 0, 'REST sends to the group', 'all 202', `${refused} not 202`);
  expect(numbered.length === messages && numbered.every((v, i) => v === i), 'messages the normal client got', `all ${messages} in order`, `${numbered.length}`);
  expect(closed.length === slowCount, 'slow clients closed by the node', `all ${slowCount} within ${CLOSE_WITHIN_MS} ms of the last send`, `${closed.length}`);
  const perSlow = (peak - base.rssKiB) / slowCount;
  expect(perSlow < GROWTH_PER_SLOW_KIB, 'RSS growth per slow client (peak)', `< ${GROWTH_PER_SLOW_KIB} KiB`, `${Math.round(perSlow)} KiB`);
}
