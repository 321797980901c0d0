// Point 5: the official client joins queued sends into one WebSocket message. 40 unawaited
// send() of 30 KB (records each under the 32 KiB limit) must all be handled, and the
// connection must stay open: the message-size limit applies per record, not per frame.

import { expect, within } from '../lib/harness.mjs';
import { demoTenant, hubUrl } from '../lib/node.mjs';
import { buildConnection } from '../../e2e/lib/client.js';

export const name = 'send-burst';
export const point = 5;
export const description = "the official client's 40 unawaited send() of 30 KB over WebSockets are all handled; the connection stays open";

export async function run(ctx) {
  const node = await ctx.startNode({ config: demoTenant() });
  const count = 40; // the figure, CI and soak alike
  const size = 30_000;
  const group = `burst-${ctx.rng.word(8)}`;

  // The sender sends to a group; an observer in it counts what arrives.
  const sender = buildConnection(hubUrl(node, 'demo', 'chat'));
  const observer = buildConnection(hubUrl(node, 'demo', 'chat'));
  ctx.defer(() => within(5_000, sender.stop(), 'stop the sender').catch(() => {}));
  ctx.defer(() => within(5_000, observer.stop(), 'stop the observer').catch(() => {}));
  let senderClosed = null;
  sender.onclose((err) => {
    senderClosed = err ? err.message : 'closed without an error';
  });
  const received = [];
  observer.on('addNewMessageToPage', (who, message) => {
    received.push(message);
  });
  await within(5_000, Promise.all([sender.start(), observer.start()]), 'start the sender and the observer');
  await within(5_000, observer.invoke('joinGroup', group), 'the observer joins the group');

  const bodies = Array.from({ length: count }, (_, i) => `${String(i).padStart(6, '0')}:${ctx.rng.word(32).repeat(Math.ceil(size / 32)).slice(0, size - 7)}`);
  const started = Date.now();
  // Unawaited on purpose: the client queues them and writes them as one message.
  const sends = bodies.map((body) => sender.send('sendToGroup', group, 'burst', body));
  const sendOutcome = await within(10_000, Promise.allSettled(sends), `the ${count} sends to be written`);
  const rejected = sendOutcome.filter((o) => o.status === 'rejected').length;

  const deadline = Date.now() + 15_000;
  while (received.length < count && senderClosed === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  ctx.figure('sends', count);
  ctx.figure('send_bytes_each', size);
  ctx.figure('delivered', received.length);
  ctx.figure('sends_rejected_by_client', rejected);
  ctx.figure('ms_to_deliver_all', received.length === count ? Date.now() - started : null);
  ctx.figure('sender_closed', senderClosed);

  expect(senderClosed === null, 'the sender after its burst', 'still connected', `closed: ${senderClosed}`);
  expect(received.length === count, 'messages delivered from the burst', `${count}`, `${received.length}`);
  const inOrder = received.every((m, i) => m === bodies[i]);
  expect(inOrder, 'the delivered burst', 'every message intact and in order', 'some message differs or is out of order');
  const echoed = await within(5_000, sender.invoke('echo', 'after the burst'), 'echo on the sender after its burst');
  expect(echoed === 'after the burst', 'echo after the burst', '"after the burst"', JSON.stringify(echoed));
}
