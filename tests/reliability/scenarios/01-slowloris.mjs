// Point 1: slowloris. Sockets that send their request head one byte a second, sockets that
// send nothing, and keep-alive sockets idle after one request must all be closed within the
// configured header timeout (plus a little), and the node keeps serving meanwhile.

import { expect, quantile, sleep, within } from '../lib/harness.mjs';
import { demoTenant, healthz } from '../lib/node.mjs';
import { dial, watchClose } from '../lib/wire.mjs';

export const name = 'slowloris';
export const point = 1;
export const description = 'slow request heads, silent sockets and idle keep-alives are closed within the header timeout';

export async function run(ctx) {
  // CI: a 2 s timeout set in the config. Soak: the sizes against the default (30 s,
  // Kestrel's RequestHeadersTimeout), nothing configured.
  const timeoutSecs = ctx.size(2, 30);
  const dribblers = ctx.size(100, 1000);
  const silent = ctx.size(40, 200);
  const keepAlive = ctx.size(10, 50);
  const graceMs = ctx.size(6_000, 15_000);
  const optional = ctx.soak ? {} : { request_headers_timeout_secs: timeoutSecs };
  const node = await ctx.startNode({ config: demoTenant(), optional });
  ctx.figure('header_timeout_secs', timeoutSecs);
  const base = ctx.stats(node);
  ctx.figure('baseline', base);

  const sockets = [];
  ctx.defer(() => sockets.forEach((s) => s.destroy()));
  const open = async (kind) => {
    const socket = watchClose(await dial(node.port));
    socket.kind = kind;
    socket.openedAtMs = Date.now();
    sockets.push(socket);
    return socket;
  };
  // A head that will not be complete for minutes at one byte a second.
  const head = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${ctx.rng.word(400)}\r\n\r\n`;
  for (let i = 0; i < dribblers; i++) await open('dribbler');
  for (let i = 0; i < silent; i++) await open('silent');
  for (let i = 0; i < keepAlive; i++) {
    const socket = await open('keep-alive');
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  }
  const opened = Date.now();
  let offset = 0;
  const timer = setInterval(() => {
    for (const s of sockets) if (s.kind === 'dribbler' && !s.destroyed && s.closedAtMs === undefined) s.write(head[offset % head.length]);
    offset++;
  }, 1_000);
  ctx.defer(() => clearInterval(timer));

  // Meanwhile the node answers others.
  await sleep(500);
  const during = ctx.stats(node);
  const healthDuring = await healthz(node, 3_000);
  ctx.figure('under_attack', { ...during, healthz: healthDuring });

  const limitMs = timeoutSecs * 1000 + graceMs;
  const bounded = (async () => {
    while (sockets.some((s) => s.closedAtMs === undefined) && Date.now() - opened < limitMs) await sleep(100);
  })();
  await within(limitMs + 5_000, bounded, 'the wait for the slow sockets to close');
  clearInterval(timer);

  const report = {};
  for (const kind of ['dribbler', 'silent', 'keep-alive']) {
    const mine = sockets.filter((s) => s.kind === kind);
    const closed = mine.filter((s) => s.closedAtMs !== undefined);
    const times = closed.map((s) => s.closedAtMs - s.openedAtMs);
    report[kind] = { sockets: mine.length, closed: closed.length, close_ms_p50: quantile(times, 0.5), close_ms_max: quantile(times, 1) };
  }
  ctx.figure('closed', report);
  await sleep(500);
  ctx.figure('after', ctx.stats(node));

  expect(healthDuring === 200, 'GET /healthz beside the slow sockets', '200 within 3 s', healthDuring === 0 ? 'no answer' : String(healthDuring));
  for (const [kind, r] of Object.entries(report)) {
    expect(r.closed === r.sockets, `${kind} sockets closed by the node`, `all ${r.sockets} within ${limitMs} ms (timeout ${timeoutSecs} s)`, `${r.closed} closed`);
  }
}
