// Hostile and odd input on every transport, spoken by hand: records split across POST bodies,
// polls never resumed, handshakes never sent, SSE clients that vanish, unknown and missing ids,
// the wrong transport for a connection, and binary frames on a JSON WebSocket.
//
// The server runs with short timeouts: handshake and disconnect 2 s, long-poll timeout 1 s.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { WAIT_MS } from './lib/client.js';
import { openRaw, openSession, record, RS } from './lib/raw.js';
import { hubUrl, startServer, withTimeout } from './lib/server.js';
import { RawLongPoll, RawSse, negotiated, records, request } from './lib/transports.js';

const TIMEOUT_SECS = 2;
const CONFIG = `
handshake_timeout_secs = ${TIMEOUT_SECS}
disconnect_timeout_secs = ${TIMEOUT_SECS}
long_poll_timeout_secs = 1

[tenants.demo]
allow_anonymous = true
`;

let server;
let chat;
before(async () => {
  server = await startServer({ config: CONFIG });
  chat = hubUrl(server, 'demo', 'chat');
});
after(() => server?.stop());

const HANDSHAKE = `{"protocol":"json","version":1}${RS}`;
const echo = (id, value) => record({ type: 1, invocationId: id, target: 'echo', arguments: [value] });

/** Polls until `count` records (pings skipped) have arrived; resolves with them. */
async function pollRecords(lp, count, timeoutMs = WAIT_MS) {
  const got = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < count) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`only ${JSON.stringify(got)} polled within ${timeoutMs} ms`);
    const { status, text } = await lp.pollData({ timeoutMs: left });
    assert.equal(status, 200, `poll status; got so far ${JSON.stringify(got)}`);
    got.push(...records(text).filter((r) => r.type !== 6));
  }
  return got;
}

/** The next `count` SSE records (pings skipped). */
async function sseRecords(sse, count) {
  const got = [];
  while (got.length < count) got.push(...records(await sse.nextEvent()).filter((r) => r.type !== 6));
  return got;
}

/** A started long-polling session: negotiated, first poll done, handshake answered. */
async function lpSession(t) {
  const lp = await RawLongPoll.negotiate(chat);
  t.after(() => lp.delete().catch(() => {}));
  const first = await lp.poll();
  assert.equal(first.status, 200);
  assert.equal(await lp.send(HANDSHAKE), 200);
  assert.deepEqual(await pollRecords(lp, 1), [{}]);
  return lp;
}

/** A started SSE session. */
async function sseSession(t) {
  const sse = await RawSse.negotiate(chat);
  t.after(() => sse.close());
  const response = await sse.open();
  assert.equal(response.status, 200);
  assert.equal(await sse.send(HANDSHAKE), 200);
  assert.deepEqual(await sseRecords(sse, 1), [{}]);
  return sse;
}

/** Attempts a WebSocket upgrade at `url` (http://...); resolves with the refusal's status. */
async function refusedUpgrade(url) {
  const socket = new WebSocket(url.replace(/^http/, 'ws'));
  socket.on('error', () => {});
  try {
    return await withTimeout(
      new Promise((resolve, reject) => {
        socket.once('unexpected-response', (_req, res) => resolve(res.statusCode));
        socket.once('open', () => reject(new Error(`the upgrade at ${url} was accepted`)));
      }),
      WAIT_MS,
      `the refused upgrade at ${url}`,
    );
  } finally {
    socket.terminate();
  }
}

/** Resolves once the server logged that connection `id` ended (after on-disconnected ran). */
function disconnected(id, timeoutMs) {
  return server.waitForLog(new RegExp(`disconnected connection=${id}`), timeoutMs);
}

describe('long polling', { timeout: 60_000 }, () => {
  test('first poll is an empty 200 at once; later polls hold, then an empty 200; no-cache headers', async (t) => {
    const lp = await RawLongPoll.negotiate(chat);
    t.after(() => lp.delete().catch(() => {}));
    const started = Date.now();
    const first = await lp.poll();
    assert.equal(first.status, 200);
    assert.equal(first.text, '');
    assert.ok(Date.now() - started < 500, 'the first poll is not held');
    assert.equal(await lp.send(HANDSHAKE), 200);
    const handshake = await lp.poll();
    assert.equal(handshake.status, 200);
    assert.equal(handshake.text, `{}${RS}`);
    assert.equal(handshake.headers.get('content-type'), 'application/octet-stream');
    assert.equal(handshake.headers.get('cache-control'), 'no-cache, no-store');
    assert.equal(handshake.headers.get('pragma'), 'no-cache');
    assert.equal(handshake.headers.get('expires'), 'Thu, 01 Jan 1970 00:00:00 GMT');

    // Nothing to send: held for the poll timeout (1 s here), then an empty 200 (never 204), and
    // no hub pings on long polling.
    const held = Date.now();
    const empty = await lp.poll();
    assert.equal(empty.status, 200);
    assert.equal(empty.text, '');
    assert.ok(Date.now() - held >= 900, `held ${Date.now() - held} ms`);
  });

  test('records split across POST bodies, and several in one, are all handled', async (t) => {
    const lp = await RawLongPoll.negotiate(chat);
    t.after(() => lp.delete().catch(() => {}));
    assert.equal((await lp.poll()).status, 200);
    const two = echo('2', 'two');
    const three = echo('3', { three: 3 });
    assert.equal(await lp.send('{"protocol":"js'), 200);
    assert.equal(await lp.send(`on","version":1}${RS}${echo('1', 'one').slice(0, 20)}`), 200);
    assert.equal(await lp.send(`${echo('1', 'one').slice(20)}${two}${three.slice(0, 5)}`), 200);
    assert.equal(await lp.send(three.slice(5)), 200);
    const got = await pollRecords(lp, 4);
    assert.deepEqual(got, [
      {},
      { type: 3, invocationId: '1', result: 'one' },
      { type: 3, invocationId: '2', result: 'two' },
      { type: 3, invocationId: '3', result: { three: 3 } },
    ]);
  });

  test('a newer poll ends the older one with 204 and gets the data', async (t) => {
    const lp = await lpSession(t);
    const older = lp.poll();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const newer = lp.poll();
    assert.equal((await older).status, 204);
    assert.equal(await lp.send(echo('n', 'to the newer poll')), 200);
    const { status, text } = await newer;
    assert.equal(status, 200);
    assert.deepEqual(records(text), [{ type: 3, invocationId: 'n', result: 'to the newer poll' }]);
  });

  test('DELETE answers 202 and ends a pending poll with 204; the late Close POST gets 404 quietly', async (t) => {
    const lp = await lpSession(t);
    const pending = lp.poll();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const logBefore = server.log().length;
    assert.equal(await lp.delete(), 202);
    assert.equal((await pending).status, 204);
    assert.equal(await lp.send(record({ type: 7 })), 404, 'the Close message after the DELETE');
    assert.equal((await lp.poll()).status, 404);
    assert.equal(await lp.delete(), 404);
    await disconnected(lp.negotiated.connectionId);
    assert.doesNotMatch(server.log().slice(logBefore), /ERROR|WARN/, 'nothing logged as a problem');
  });

  test('a poll never resumed: the connection is reaped within the disconnect timeout', async (t) => {
    const lp = await lpSession(t);
    assert.equal(await lp.send(record({ type: 1, invocationId: 'g', target: 'joinGroup', arguments: ['reaped'] })), 200);
    assert.deepEqual(await pollRecords(lp, 1), [{ type: 3, invocationId: 'g' }]);
    const lastPoll = Date.now();
    // No more polls: on-disconnected runs (logged after it), then the id is unknown.
    await disconnected(lp.negotiated.connectionId, (TIMEOUT_SECS + 5) * 1000);
    const after = Date.now() - lastPoll;
    assert.ok(after >= TIMEOUT_SECS * 1000 - 200, `reaped after ${after} ms, before the disconnect timeout`);
    assert.equal((await lp.poll()).status, 404);
    assert.equal(await lp.send(echo('x', 'late')), 404);
  });

  test('a client that keeps polling is never reaped', async (t) => {
    const lp = await lpSession(t);
    const until = Date.now() + (TIMEOUT_SECS + 2) * 1000;
    while (Date.now() < until) {
      const { status } = await lp.poll();
      assert.equal(status, 200);
    }
    assert.equal(await lp.send(echo('alive', 'still')), 200);
    assert.deepEqual(await pollRecords(lp, 1), [{ type: 3, invocationId: 'alive', result: 'still' }]);
  });

  test('a handshake never sent: the poll gets the handshake error, then 204, then 404', async (t) => {
    const lp = await RawLongPoll.negotiate(chat);
    t.after(() => lp.delete().catch(() => {}));
    assert.equal((await lp.poll()).status, 200);
    const { status, text } = await lp.pollData({ timeoutMs: (TIMEOUT_SECS + 3) * 1000 });
    assert.equal(status, 200);
    assert.deepEqual(records(text), [{ error: 'Handshake was canceled.' }]);
    assert.equal((await lp.poll()).status, 204, 'the transport is over');
    assert.equal((await lp.poll()).status, 404, 'and the connection forgotten');
  });

  test('MessagePack over long polling: binary bodies both ways', async (t) => {
    const lp = await RawLongPoll.negotiate(chat);
    t.after(() => lp.delete().catch(() => {}));
    assert.equal((await lp.poll()).status, 200);
    assert.equal(await lp.send(`{"protocol":"messagepack","version":1}${RS}`), 200);
    const hello = await lp.pollData();
    assert.equal(hello.text, `{}${RS}`);
    // [1, {}, "7", "echo", ["hi"], []] with a VarInt length prefix.
    const invocation = Buffer.from([0x96, 0x01, 0x80, 0xa1, 0x37, 0xa4, 0x65, 0x63, 0x68, 0x6f, 0x91, 0xa2, 0x68, 0x69, 0x90]);
    const framed = Buffer.concat([Buffer.from([invocation.length]), invocation]);
    const { status } = await request('POST', lp.url, { body: framed, headers: { 'Content-Type': 'application/octet-stream' } });
    assert.equal(status, 200);
    const reply = await request('GET', `${lp.url}&_=${Date.now()}`);
    assert.equal(reply.status, 200);
    // [3, {}, "7", 3, "hi"]
    const completion = Buffer.from([0x95, 0x03, 0x80, 0xa1, 0x37, 0x03, 0xa2, 0x68, 0x69]);
    assert.deepEqual([...reply.body], [completion.length, ...completion]);
  });
});

describe('server-sent events', { timeout: 60_000 }, () => {
  test('the stream opens with headers and the flushed comment', async (t) => {
    const sse = await RawSse.negotiate(chat);
    t.after(() => sse.close());
    const response = await sse.open();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/event-stream');
    assert.equal(response.headers.get('cache-control'), 'no-cache,no-store');
    assert.equal(response.headers.get('pragma'), 'no-cache');
    assert.equal(response.headers.get('content-encoding'), 'identity');
    // The preamble arrives before anything else is sent.
    await withTimeout(
      new Promise((resolve) => {
        const check = () => (sse.chunks.join('').startsWith(':\r\n') ? resolve() : setTimeout(check, 10));
        check();
      }),
      WAIT_MS,
      'the :\\r\\n preamble',
    );
    assert.equal(await sse.send(HANDSHAKE), 200);
    assert.equal(await sse.nextEvent(), `{}${RS}`);
  });

  test('records split across POST bodies, and several in one, are all handled', async (t) => {
    const sse = await RawSse.negotiate(chat);
    t.after(() => sse.close());
    await sse.open();
    const one = echo('1', 'one');
    assert.equal(await sse.send(HANDSHAKE.slice(0, 7)), 200);
    assert.equal(await sse.send(`${HANDSHAKE.slice(7)}${one.slice(0, 10)}`), 200);
    assert.equal(await sse.send(`${one.slice(10)}${echo('2', ['two', 2])}`), 200);
    assert.deepEqual(await sseRecords(sse, 3), [
      {},
      { type: 3, invocationId: '1', result: 'one' },
      { type: 3, invocationId: '2', result: ['two', 2] },
    ]);
  });

  test('a client that drops the stream without a Close message is disconnected', async (t) => {
    const sse = await sseSession(t);
    sse.close();
    await disconnected(sse.negotiated.connectionId, WAIT_MS);
    assert.equal(await sse.send(echo('x', 'late')), 404);
  });

  test('a handshake never sent: the error event, then the stream ends', async (t) => {
    const sse = await RawSse.negotiate(chat);
    t.after(() => sse.close());
    await sse.open();
    const event = await sse.nextEvent((TIMEOUT_SECS + 3) * 1000);
    assert.deepEqual(records(event), [{ error: 'Handshake was canceled.' }]);
    await sse.waitEnded();
  });

  test('MessagePack is refused with the handshake error ASP.NET gives', async (t) => {
    const sse = await RawSse.negotiate(chat);
    t.after(() => sse.close());
    await sse.open();
    assert.equal(await sse.send(`{"protocol":"messagepack","version":1}${RS}`), 200);
    assert.deepEqual(records(await sse.nextEvent()), [
      { error: "Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format." },
    ]);
    await sse.waitEnded();
  });

  test('a second stream is 409; a poll is 400; DELETE is 400', async (t) => {
    const sse = await sseSession(t);
    const url = `${chat}?id=${sse.id}`;
    const second = await request('GET', url, { headers: { Accept: 'text/event-stream' } });
    assert.equal(second.status, 409);
    const poll = await request('GET', url);
    assert.equal(poll.status, 400);
    assert.equal(poll.body.toString(), 'Cannot change transports mid-connection');
    const del = await request('DELETE', url);
    assert.equal(del.status, 400);
    // The first stream still works.
    assert.equal(await sse.send(echo('ok', 'still')), 200);
    assert.deepEqual(await sseRecords(sse, 1), [{ type: 3, invocationId: 'ok', result: 'still' }]);
  });
});

describe('WebSockets', { timeout: 60_000 }, () => {
  test('a handshake never sent: the handshake error, then the socket closes', async (t) => {
    const socket = await openRaw(t, chat);
    const first = await socket.nextRecord({ timeoutMs: (TIMEOUT_SECS + 3) * 1000, pings: true });
    assert.deepEqual(first, { error: 'Handshake was canceled.' });
    await socket.waitClosed();
  });

  test('a binary frame on a JSON connection is parsed like a text frame (as ASP.NET does)', async (t) => {
    const socket = await openSession(t, chat);
    socket.ws.send(Buffer.from(echo('b', 'from a binary frame')), { binary: true });
    assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: 'b', result: 'from a binary frame' });
    const frame = socket.frames.at(-1);
    assert.equal(frame.isBinary, false, 'answers stay text frames on a JSON connection');
    // Bytes that are not JSON records close the connection with an error, as on a text frame.
    socket.ws.send(Buffer.from([0xff, 0xfe, 0x00, 0x1e]), { binary: true });
    const close = await socket.nextRecord();
    assert.equal(close.type, 7);
    assert.ok(close.error, `the Close message says why: ${JSON.stringify(close)}`);
    await socket.waitClosed();
  });

  test('a POST to a WebSocket connection is 405; an SSE stream or poll for it is 400; DELETE is 400', async (t) => {
    const socket = await openSession(t, chat);
    const url = `${chat}?id=${socket.negotiated.connectionToken}`;
    assert.equal((await request('POST', url, { body: echo('p', 'x') })).status, 405);
    assert.equal((await request('GET', url, { headers: { Accept: 'text/event-stream' } })).status, 400);
    assert.equal((await request('GET', url)).status, 400);
    assert.equal((await request('DELETE', url)).status, 400);
    socket.send(echo('ok', 'unharmed'));
    assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: 'ok', result: 'unharmed' });
  });

  test('an upgrade for a long-polling connection is 400', async (t) => {
    const lp = await lpSession(t);
    assert.equal(await refusedUpgrade(`${chat}?id=${lp.negotiated.connectionToken}`), 400);
    assert.equal(await lp.send(echo('ok', 'unharmed')), 200);
    assert.deepEqual(await pollRecords(lp, 1), [{ type: 3, invocationId: 'ok', result: 'unharmed' }]);
  });
});

describe('ids', { timeout: 60_000 }, () => {
  test('an unknown id is 404 on every transport request', async () => {
    const url = `${chat}?id=no-such-connection`;
    for (const [method, headers] of [
      ['GET', {}],
      ['GET', { Accept: 'text/event-stream' }],
      ['POST', {}],
      ['DELETE', {}],
    ]) {
      const { status, body } = await request(method, url, { headers, body: method === 'POST' ? record({ type: 6 }) : undefined });
      assert.equal(status, 404, `${method} ${JSON.stringify(headers)}`);
      assert.equal(body.toString(), 'No Connection with that ID');
    }
    assert.equal(await refusedUpgrade(url), 404);
  });

  test('a missing id is 400 "Connection ID required" (except on a WebSocket upgrade)', async () => {
    for (const [method, headers] of [
      ['GET', {}],
      ['GET', { Accept: 'text/event-stream' }],
      ['POST', {}],
      ['DELETE', {}],
    ]) {
      const { status, body } = await request(method, chat, { headers });
      assert.equal(status, 400, `${method} ${JSON.stringify(headers)}`);
      assert.equal(body.toString(), 'Connection ID required');
    }
  });

  test('an id of another hub is 404', async (t) => {
    const { connectionToken } = await negotiated(chat);
    const notify = hubUrl(server, 'demo', 'notify');
    const { status } = await request('GET', `${notify}?id=${connectionToken}`);
    assert.equal(status, 404);
  });
});
