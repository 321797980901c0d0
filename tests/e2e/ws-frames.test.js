// WebSocket frames as they arrive: a message's records are read as its frames come (the
// per-record limit applies to records, not to messages), a message that never ends is closed
// once its partial record passes the limit, RFC 6455 violations close with 1002/1007, and the
// official client's burst of queued sends (joined into one large message) is all answered.
// Also the other protocol edges: a lone surrogate through REST, a reused upload stream id.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, invoke, WAIT_MS } from './lib/client.js';
import { expectEcho, openSession, record } from './lib/raw.js';
import { hubUrl, pluginWasm, startServer, withTimeout } from './lib/server.js';

const API_KEY = 'demo-api-key-0123456789';
const CONFIG = `
[tenants.demo]
allow_anonymous = true
api_keys = ["${API_KEY}"]
`;

let server;
let chat;
let testhub;
before(async () => {
  server = await startServer({ config: CONFIG, plugins: { 'demo/chat.wasm': pluginWasm('chat'), 'demo/testhub.wasm': pluginWasm('testhub') } });
  chat = hubUrl(server, 'demo', 'chat');
  testhub = hubUrl(server, 'demo', 'testhub');
});
after(() => server?.stop());

const MASK = Buffer.from([0x12, 0x34, 0x56, 0x78]);

/** One raw client frame: `first` is FIN/RSV/opcode; masked unless `masked` is false. */
function frame(first, payload, { masked = true } = {}) {
  const data = Buffer.from(payload);
  let head;
  if (data.length < 126) head = Buffer.from([first, data.length]);
  else if (data.length < 65536) {
    head = Buffer.alloc(4);
    head[0] = first;
    head[1] = 126;
    head.writeUInt16BE(data.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = first;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(data.length), 2);
  }
  if (!masked) return Buffer.concat([head, data]);
  head[1] |= 0x80;
  const body = Buffer.from(data.map((b, i) => b ^ MASK[i % 4]));
  return Buffer.concat([head, MASK, body]);
}

const FIN = 0x80;
const TEXT = 0x01;
const BINARY = 0x02;
const CONT = 0x00;

/** Writes raw bytes on the session's TCP socket, beside the `ws` library. */
function writeRaw(socket, bytes) {
  socket.ws._socket.write(bytes);
}

describe('records are read as their frames arrive', { timeout: 60_000 }, () => {
  test('a record in a message whose final frame has not come is answered', async (t) => {
    const socket = await openSession(t, chat);
    const call = record({ type: 1, invocationId: 'f1', target: 'echo', arguments: ['early'] });
    socket.ws.send(call, { fin: false });
    assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: 'f1', result: 'early' });
    // The message goes on with another record, cut across two frames.
    const next = record({ type: 1, invocationId: 'f2', target: 'echo', arguments: ['late'] });
    socket.ws.send(next.slice(0, 10), { fin: false });
    socket.ws.send(next.slice(10), { fin: true });
    assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: 'f2', result: 'late' });
  });

  test('a message that never ends is closed once its partial record passes the limit', async (t) => {
    const socket = await openSession(t, chat);
    // A record start, then 15 continuation frames of 64,000 bytes, no FIN and no 0x1E.
    writeRaw(socket, frame(TEXT, '{"type":1,"target":"echo","arguments":["'));
    const filler = Buffer.alloc(64_000, 'x');
    for (let i = 0; i < 15; i++) writeRaw(socket, frame(CONT, filler));
    const close = await socket.nextRecord();
    assert.equal(close.type, 7, `a Close message expected, got ${JSON.stringify(close)}`);
    assert.match(close.error, /maximum message size of 32768B was exceeded/);
    // RFC 6455's "message too big", after the hub protocol's Close message.
    const { code } = await socket.waitClosed();
    assert.equal(code, 1009);
    await server.waitForLog(/bad message from the client; closing.*exceeded/);
  });

  test("the official client's burst of 40 unawaited 30 KB invocations is all answered", async (t) => {
    const connection = await connect(t, chat);
    const value = 'y'.repeat(30_000);
    const calls = [];
    for (let i = 0; i < 40; i++) calls.push(invoke(connection, 'echo', `${i}:${value}`));
    const results = await withTimeout(Promise.all(calls), 4 * WAIT_MS, '40 echoes');
    assert.equal(results.length, 40);
    results.forEach((r, i) => assert.equal(r, `${i}:${value}`));
  });
});

describe('RFC 6455 violations close with 1002 or 1007', { timeout: 60_000 }, () => {
  const cases = [
    ['an unmasked frame', frame(FIN | TEXT, 'hi', { masked: false }), 1002],
    ['a reserved bit', frame(FIN | 0x40 | TEXT, 'hi'), 1002],
    ['a reserved data opcode', frame(FIN | 0x03, 'hi'), 1002],
    ['a reserved control opcode', frame(FIN | 0x0b, ''), 1002],
    ['an orphan continuation', frame(FIN | CONT, 'hi'), 1002],
    ['a control frame over 125 bytes', frame(FIN | 0x09, Buffer.alloc(126)), 1002],
    ['a fragmented ping', frame(0x09, 'hi'), 1002],
    ['a new message inside another', Buffer.concat([frame(TEXT, '{'), frame(FIN | BINARY, 'x')]), 1002],
    ['invalid UTF-8 in a text frame', frame(FIN | TEXT, Buffer.from([0x7b, 0xff, 0x1e])), 1007],
    ['UTF-8 cut at the end of a message', Buffer.concat([frame(TEXT, 'a'), frame(FIN | CONT, Buffer.from([0xe2, 0x82]))]), 1007],
  ];
  for (const [name, bytes, expected] of cases) {
    test(`${name}: ${expected}`, async (t) => {
      const socket = await openSession(t, chat);
      writeRaw(socket, bytes);
      const { code } = await socket.waitClosed();
      assert.equal(code, expected, `${name}: close code`);
      await server.waitForLog(new RegExp(`code=${expected}.*WebSocket protocol violation|WebSocket protocol violation.*code=${expected}`));
    });
  }

  test('a ping is answered with its payload, and the session goes on', async (t) => {
    const socket = await openSession(t, chat);
    const pong = new Promise((resolve) => socket.ws.once('pong', resolve));
    writeRaw(socket, frame(FIN | 0x09, 'are you there'));
    const payload = await withTimeout(pong, WAIT_MS, 'pong');
    assert.equal(payload.toString(), 'are you there');
    await expectEcho(socket);
  });

  test('the server still serves after the violations', async (t) => {
    const socket = await openSession(t, chat);
    await expectEcho(socket);
  });
});

describe('other protocol edges', { timeout: 30_000 }, () => {
  test('a second upload stream with a live id is refused; the first goes on', async (t) => {
    const socket = await openSession(t, testhub);
    socket.send(record({ type: 1, invocationId: '1', target: 'concat', arguments: [], streamIds: ['s'] }));
    socket.send(record({ type: 1, invocationId: '2', target: 'concat', arguments: [], streamIds: ['s'] }));
    const refused = await socket.nextRecord();
    assert.equal(refused.invocationId, '2', `the second invocation is answered first: ${JSON.stringify(refused)}`);
    assert.equal(refused.error, "Stream ID 's' is already in use.");
    socket.send(record({ type: 2, invocationId: 's', item: 'one' }));
    socket.send(record({ type: 3, invocationId: 's' }));
    assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: 'one' });
    // The same id twice in one invocation.
    socket.send(record({ type: 1, invocationId: '3', target: 'concatTwo', arguments: ['|'], streamIds: ['d', 'd'] }));
    const twice = await socket.nextRecord();
    assert.equal(twice.error, "Stream ID 'd' is already in use.");
  });

  test('a lone surrogate sent through REST is a 400 that says so; nothing is delivered', async (t) => {
    const connection = await connect(t, chat);
    const got = [];
    connection.on('m', (x) => {
      got.push(x);
    });
    const post = (raw) =>
      fetch(`${server.url}/api/v1/tenants/demo/hubs/chat/:send`, {
        method: 'POST',
        headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
        body: raw,
        signal: AbortSignal.timeout(WAIT_MS),
      });
    const bad = await post('{"target":"m","arguments":["\\ud800"]}');
    assert.equal(bad.status, 400);
    const text = await bad.text();
    assert.match(text, /surrogate/, text);
    const good = await post('{"target":"m","arguments":["\\ud834\\udd1e"]}');
    assert.ok(good.status < 300, `a surrogate pair is accepted: ${good.status}`);
    await withTimeout(
      (async () => {
        for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      })(),
      WAIT_MS,
      'the good message',
    );
    assert.deepEqual(got, ['𝄞']);
  });
});

