// Point 9: a hub stream that yields as fast as it can, to a long-polling and to an SSE client,
// while others send to everyone: every item arrives, in order, and the connection stays open
// (the stream waits for room in the connection's queue instead of killing the connection).

import { expect, sleep, within } from '../lib/harness.mjs';
import { demoTenant, hubUrl } from '../lib/node.mjs';
import { buildHub } from '../../e2e/lib/transports.js';

export const name = 'fast-stream';
export const point = 9;
export const description = 'counter(N) streamed over LongPolling and SSE beside broadcasts: all items, connection kept';

const BUSY_MS_PER_1000 = 15;

async function streamOver(ctx, node, transport, items) {
  const client = buildHub(hubUrl(node, 'demo', 'chat'), { transport });
  const other = buildHub(hubUrl(node, 'demo', 'chat'), { transport: 'WebSockets' });
  ctx.defer(() => within(5_000, client.stop(), `stop the ${transport} client`).catch(() => {}));
  ctx.defer(() => within(5_000, other.stop(), 'stop the broadcaster').catch(() => {}));
  let closed = null;
  client.onclose((err) => {
    closed = err ? err.message : 'closed';
  });
  let broadcasts = 0;
  client.on('addNewMessageToPage', () => {
    broadcasts++;
  });
  other.on('addNewMessageToPage', () => {});
  await within(10_000, Promise.all([client.start(), other.start()]), `start a ${transport} client and a broadcaster`);

  const got = [];
  let outcome = null;
  const started = Date.now();
  const done = new Promise((resolve) => {
    client.stream('counter', items).subscribe({
      next: (v) => {
        got.push(v);
        // A client busy elsewhere now and then (a browser tab rendering): it reads slower
        // than the plugin yields, so the connection's queue fills and the stream must wait.
        if (got.length % 1_000 === 0) {
          const until = performance.now() + BUSY_MS_PER_1000;
          while (performance.now() < until);
        }
      },
      complete: () => resolve((outcome = 'complete')),
      error: (err) => resolve((outcome = `error: ${err.message}`)),
    });
  });
  // The next message from anyone must not close a connection whose queue the stream filled.
  let sent = 0;
  const broadcaster = (async () => {
    // Unawaited sends every few ms, so some land while the stream has the queue full.
    while (outcome === null && closed === null && sent < 2_000) {
      other.send('send', 'other', `tick-${sent}`).catch(() => {});
      sent++;
      await sleep(2);
    }
  })();
  await within(ctx.size(60_000, 300_000), done, `the ${transport} stream of ${items} items to end`).catch((err) => {
    outcome ??= `not ended: ${err.message}`;
  });
  await broadcaster.catch((err) => ctx.note(err.message));
  const ms = Date.now() - started;
  const inOrder = got.every((v, i) => v === i);
  await sleep(300);
  const report = { items, received: got.length, in_order: inOrder, outcome, closed, ms, broadcasts_sent: sent, broadcasts_received: broadcasts };
  ctx.figure(transport, report);
  return report;
}

export async function run(ctx) {
  const items = ctx.size(50_000, 200_000);
  const node = await ctx.startNode({ config: demoTenant() });
  const results = [];
  for (const transport of ['LongPolling', 'ServerSentEvents']) results.push([transport, await streamOver(ctx, node, transport, items)]);
  for (const [transport, r] of results) {
    expect(r.closed === null, `the ${transport} connection after the stream`, 'still connected', `closed: ${r.closed}`);
    expect(r.outcome === 'complete' && r.received === items && r.in_order, `the ${transport} stream`, `all ${items} items in order, then complete`, `${r.received} items (in order: ${r.in_order}), ${r.outcome}`);
  }
}
