// Point 10: protocol violations close with the code RFC 6455 gives them (1002 protocol
// error, 1007 invalid payload, 1009 too big), a lone surrogate is refused at the REST edge,
// and a second upload naming a stream id already in use is an error.

import { expect, sleep } from '../lib/harness.mjs';
import { demoTenant, rest } from '../lib/node.mjs';
import { RS, signalrWs } from '../lib/wire.mjs';

export const name = 'protocol-edges';
export const point = 10;
export const description = 'bad frames close with 1002/1007/1009; REST lone surrogate is 400; a reused upload stream id is an error';

const MAX_MESSAGE = 32_768;

/** Each wire violation: what the client sends after the handshake, and the close code it must get. */
const CASES = [
  {
    case: 'invalid UTF-8 in a text frame',
    want: 1007,
    send: (ws) => ws.send(0x1, Buffer.concat([Buffer.from('{"type":1,"target":"echo","arguments":["'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(`"]}${RS}`)])),
  },
  { case: 'an unmasked frame', want: 1002, send: (ws) => ws.send(0x1, `{"type":6}${RS}`, { mask: false }) },
  { case: 'reserved opcode 0x3', want: 1002, send: (ws) => ws.send(0x3, 'x') },
  { case: 'reserved opcode 0xB (control)', want: 1002, send: (ws) => ws.send(0xb, '') },
  { case: 'an orphan continuation frame', want: 1002, send: (ws) => ws.send(0x0, `{"type":6}${RS}`) },
  { case: 'a ping of 126 bytes (control frames are at most 125)', want: 1002, send: (ws) => ws.send(0x9, Buffer.alloc(126, 0x61)) },
  { case: 'a fragmented ping', want: 1002, send: (ws) => ws.send(0x9, 'abc', { fin: false }) },
  { case: 'reserved bit RSV1 without an extension', want: 1002, send: (ws) => ws.send(0x1, `{"type":6}${RS}`, { rsv: 4 }) },
  {
    case: `a message larger than max_message_size (${MAX_MESSAGE + 8_000} bytes)`,
    want: 1009,
    send: (ws) => ws.send(0x1, `{"type":1,"target":"echo","arguments":["${'a'.repeat(MAX_MESSAGE + 8_000)}"]}${RS}`),
  },
];

async function wireCase(ctx, node, c) {
  const ws = await signalrWs(node);
  ctx.defer(() => ws.destroy());
  const sent = Date.now();
  c.send(ws);
  let seen;
  try {
    const { code } = await ws.waitClosed(5_000);
    seen = { code: code ?? 'no Close frame', ms: Date.now() - sent };
  } catch {
    seen = { code: 'still open after 5 s', ms: null };
  }
  ws.destroy();
  return { ...seen, ok: seen.code === c.want };
}

async function duplicateUpload(node) {
  const ws = await signalrWs(node);
  try {
    ws.sendRecords(
      { type: 1, invocationId: 'up-1', target: 'sum', arguments: [], streamIds: ['dup'] },
      { type: 1, invocationId: 'up-2', target: 'sum', arguments: [], streamIds: ['dup'] },
    );
    const second = await ws
      .waitFor('an answer to the second upload', (rs) => rs.find((r) => (r.type === 3 && r.invocationId === 'up-2') || r.type === 7), 3_000)
      .catch(() => null);
    // Finish the stream, so a build that took both shows what each got.
    ws.sendRecords({ type: 2, invocationId: 'dup', item: 5 }, { type: 3, invocationId: 'dup' });
    const first = await ws.waitFor('the first upload to complete', (rs) => rs.find((r) => r.type === 3 && r.invocationId === 'up-1'), 3_000).catch(() => null);
    await sleep(200);
    const later = ws.records.map((r) => JSON.parse(r)).find((r) => r.type === 3 && r.invocationId === 'up-2');
    return { second: second ?? later ?? null, secondBeforeStreamEnded: second, first };
  } finally {
    ws.destroy();
  }
}

export async function run(ctx) {
  const node = await ctx.startNode({ config: demoTenant() });
  const seen = {};
  const wrong = [];
  for (const c of CASES) {
    const got = await wireCase(ctx, node, c);
    seen[c.case] = got;
    if (!got.ok) wrong.push(`${c.case}: expected close code ${c.want}, seen ${got.code}`);
  }
  ctx.figure('close_codes', Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, v.code])));

  // A lone surrogate in a REST body: the JSON text itself carries the escape.
  const body = '{"target":"addNewMessageToPage","arguments":["x","\\ud800"]}';
  const surrogate = await rest(node, 'POST', '/:send', { body });
  ctx.figure('rest_lone_surrogate_status', surrogate.status);
  if (surrogate.status !== 400) wrong.push(`REST send with "\\ud800": expected 400, seen ${surrogate.status} ${surrogate.text.slice(0, 120)}`);

  const dup = await duplicateUpload(node);
  const secondIsError = dup.secondBeforeStreamEnded !== null && (dup.secondBeforeStreamEnded.type === 7 || typeof dup.secondBeforeStreamEnded.error === 'string');
  ctx.figure('duplicate_upload_second_answer', dup.second);
  if (!secondIsError) {
    wrong.push(`a second upload reusing stream id "dup": expected an error for it at once, seen ${JSON.stringify(dup.second)} (first got ${JSON.stringify(dup.first)})`);
  }
  expect(wrong.length === 0, 'protocol edges', 'every case refused as RFC 6455 / SignalR say', wrong.join('; '));
}
