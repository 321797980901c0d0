// The harness's own parts, without a server: frames, the frame parser fed byte by byte, the
// accounting of lost/duplicated/reordered, the seeded PRNG and the bounded wait.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { Failure, quantile, seededRng, sequenceReport, within } from './lib/harness.mjs';
import { encodeFrame, RawWs, RS } from './lib/wire.mjs';

/** Unmasks a client frame made by encodeFrame; returns {fin, opcode, rsv, masked, payload}. */
function decodeClientFrame(bytes) {
  let len = bytes[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    len = bytes.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    len = Number(bytes.readBigUInt64BE(2));
    off = 10;
  }
  const masked = (bytes[1] & 0x80) !== 0;
  let payload = bytes.subarray(off + (masked ? 4 : 0));
  if (masked) {
    const key = bytes.subarray(off, off + 4);
    payload = Buffer.from(payload.map((b, i) => b ^ key[i & 3]));
  }
  assert.equal(payload.length, len, 'the length field matches the payload');
  return { fin: (bytes[0] & 0x80) !== 0, rsv: (bytes[0] >> 4) & 7, opcode: bytes[0] & 0x0f, masked, payload };
}

test('encodeFrame: every length encoding, masked and not, flags kept', () => {
  for (const len of [0, 1, 125, 126, 127, 65_535, 65_536, 200_000]) {
    const payload = Buffer.alloc(len, 0x5a);
    for (const mask of [true, false]) {
      const frame = decodeClientFrame(encodeFrame({ opcode: 0x2, payload, mask, fin: len % 2 === 0, rsv: 4 }));
      assert.deepEqual([frame.opcode, frame.masked, frame.fin, frame.rsv], [0x2, mask, len % 2 === 0, 4], `len ${len}`);
      assert.ok(frame.payload.equals(payload), `payload of ${len} bytes survives masking`);
    }
  }
});

/** A server frame (unmasked) as bytes. */
const serverFrame = (opcode, payload, fin = true) => encodeFrame({ opcode, payload, fin, mask: false });

test('RawWs parses frames and records split at every byte, and the Close code', () => {
  const socket = new EventEmitter();
  socket.destroyed = false;
  const written = [];
  socket.write = (bytes) => written.push(bytes);
  const ws = new RawWs(socket, Buffer.alloc(0));
  const bytes = Buffer.concat([
    serverFrame(0x1, `{}${RS}{"type":6}${RS}{"type":1,`),
    serverFrame(0x1, `"target":"x","arguments":[]}${RS}`),
    serverFrame(0x1, Buffer.alloc(300, 0x61), false),
    serverFrame(0x0, Buffer.from(RS)),
    serverFrame(0x8, Buffer.from([0x03, 0xf1, 0x62, 0x79, 0x65])),
  ]);
  for (const byte of bytes) socket.emit('data', Buffer.from([byte]));
  assert.deepEqual(ws.records.slice(0, 3).map((r) => JSON.parse(r)), [{}, { type: 6 }, { type: 1, target: 'x', arguments: [] }]);
  assert.equal(ws.records[3], 'a'.repeat(300), 'a record continued over a continuation frame');
  assert.equal(ws.closeCode, 1009);
  assert.equal(ws.closeReason, 'bye');
  assert.equal(ws.frames.length, 5);
  // The client answers the Close once, masked, with the same code.
  assert.equal(written.length, 1);
  const reply = decodeClientFrame(written[0]);
  assert.deepEqual([reply.opcode, reply.masked, reply.payload.readUInt16BE(0)], [0x8, true, 1009]);
});

test('sequenceReport counts lost, duplicated and reordered', () => {
  assert.deepEqual(sequenceReport(5, [0, 1, 2, 3, 4]), { sent: 5, received: 5, lost: 0, duplicated: 0, reordered: 0 });
  assert.deepEqual(sequenceReport(5, [0, 2, 1, 1, 4]), { sent: 5, received: 5, lost: 1, duplicated: 1, reordered: 2 });
  assert.deepEqual(sequenceReport(3, []), { sent: 3, received: 0, lost: 3, duplicated: 0, reordered: 0 });
});

test('seededRng repeats for a seed and differs between seeds', () => {
  const a = seededRng(42);
  const b = seededRng(42);
  const c = seededRng(43);
  const xs = Array.from({ length: 8 }, () => a());
  assert.deepEqual(xs, Array.from({ length: 8 }, () => b()));
  assert.notDeepEqual(xs, Array.from({ length: 8 }, () => c()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const r = seededRng(1);
  assert.ok(Array.from({ length: 1000 }, () => r.int(7)).every((n) => Number.isInteger(n) && n >= 0 && n < 7));
  assert.match(seededRng(5).word(12), /^[a-z0-9]{12}$/);
});

test('within rejects with a Failure saying what it waited for', async () => {
  await assert.rejects(within(20, new Promise(() => {}), 'the impossible'), (err) => err instanceof Failure && /the impossible/.test(err.message));
  assert.equal(await within(1_000, Promise.resolve(7), 'seven'), 7);
});

test('quantile: nearest rank', () => {
  assert.equal(quantile([], 0.5), null);
  assert.equal(quantile([3, 1, 2], 0.5), 2);
  assert.equal(quantile(Array.from({ length: 100 }, (_, i) => i + 1), 0.99), 99);
  assert.equal(quantile([5], 1), 5);
});
