// Bad input gets a clear error in SignalR's own terms, and the server keeps running:
// malformed handshakes and frames, oversized messages, unknown hubs, tenants and methods,
// and plugin files that are not valid components.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { buildConnection, connect, expectOversizedInvocationCloses, invoke, LogLevel, WAIT_MS } from './lib/client.js';
import { expectEcho, negotiate, openRaw, openSession, record, RS } from './lib/raw.js';
import { hubUrl, pluginWasm, startChatServer, startServer, withTimeout } from './lib/server.js';

let server;
let chat;
before(async () => ({ server, chat } = await startChatServer()));
after(() => server?.stop());

/** Asserts that the next frame is exactly one handshake error record, then that the socket closes. */
async function expectHandshakeError(socket) {
  const frame = await socket.nextFrame();
  assert.equal(frame.isBinary, false, 'a JSON handshake response travels in a text frame');
  assert.ok(frame.text.endsWith(RS), 'the handshake response ends with 0x1E');
  const records = frame.text.split(RS).slice(0, -1);
  assert.equal(records.length, 1, `one record expected, got ${JSON.stringify(frame.text)}`);
  const response = JSON.parse(records[0]);
  assert.deepEqual(Object.keys(response), ['error'], `a handshake error is {"error":...}, got ${records[0]}`);
  assert.equal(typeof response.error, 'string');
  assert.ok(response.error.length > 0);
  await socket.waitClosed();
  return response.error;
}

/** Asserts that the server answers with a Close message carrying an error, then closes the socket. */
async function expectCloseWithError(socket) {
  const close = await socket.nextRecord();
  assert.equal(close.type, 7, `a Close message expected, got ${JSON.stringify(close)}`);
  assert.equal(typeof close.error, 'string', `the Close message carries an error: ${JSON.stringify(close)}`);
  assert.ok(close.error.length > 0);
  await socket.waitClosed();
  return close;
}

describe('handshake errors', { timeout: 30_000 }, () => {
  test('a handshake that is not JSON gets {"error":...} and the socket closes', async (t) => {
    const socket = await openRaw(t, chat);
    socket.send(`not json${RS}`);
    await expectHandshakeError(socket);
  });

  test('an unknown protocol gets "The protocol \'bogus\' is not supported." and the socket closes', async (t) => {
    const socket = await openRaw(t, chat);
    socket.send(`{"protocol":"bogus","version":1}${RS}`);
    assert.equal(await expectHandshakeError(socket), "The protocol 'bogus' is not supported.");
  });
});

describe('bad messages after the handshake', { timeout: 30_000 }, () => {
  test('invalid JSON closes the connection with a Close error', async (t) => {
    const socket = await openSession(t, chat);
    socket.send(`{"type":1,"target":"echo",${RS}`);
    await expectCloseWithError(socket);
  });

  test('an invocation without a target closes the connection with a Close error', async (t) => {
    const socket = await openSession(t, chat);
    socket.send(record({ type: 1, invocationId: '1', arguments: ['x'] }));
    await expectCloseWithError(socket);
  });

  test('a message over 32 KiB closes the connection with a Close error', async (t) => {
    const socket = await openSession(t, chat);
    socket.send(record({ type: 1, invocationId: '1', target: 'echo', arguments: ['x'.repeat(40 * 1024)] }));
    await expectCloseWithError(socket);
  });

  test('a message just under the limit is fine', async (t) => {
    const socket = await openSession(t, chat);
    await expectEcho(socket, 'big', 'y'.repeat(30 * 1024));
  });

  test('the official client sees an oversized invocation close its connection with the error', async (t) => {
    await expectOversizedInvocationCloses(t, buildConnection(chat, { logLevel: LogLevel.None }));
  });

  test('an unknown message type is ignored (forward compatibility)', async (t) => {
    const socket = await openSession(t, chat);
    socket.send(record({ type: 99, invocationId: 'x', something: [1, 2, 3] }));
    await expectEcho(socket, 'after-unknown-type');
  });

  test('unknown fields and headers on an invocation are ignored', async (t) => {
    const socket = await openSession(t, chat);
    socket.send(
      record({
        type: 1,
        invocationId: 'h1',
        target: 'echo',
        arguments: ['with headers'],
        headers: { 'x-trace': 'abc' },
        aFieldFromTheFuture: { nested: true },
      }),
    );
    assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: 'h1', result: 'with headers' });
  });
});

describe('unknown hubs, tenants and methods', { timeout: 30_000 }, () => {
  test('negotiate for an unknown hub or tenant is 404', async () => {
    for (const url of [hubUrl(server, 'demo', 'nope'), hubUrl(server, 'nope', 'chat'), hubUrl(server, 'nope', 'nope')]) {
      const { status } = await negotiate(url);
      assert.equal(status, 404, `negotiate ${url}`);
    }
  });

  test('the official client cannot start against an unknown hub', async () => {
    const connection = buildConnection(hubUrl(server, 'demo', 'nope'), { logLevel: LogLevel.None });
    await assert.rejects(withTimeout(connection.start(), WAIT_MS, 'start'), /404/);
  });

  test("an unknown method fails with \"Unknown hub method 'nope'\" and the connection stays", async (t) => {
    const connection = await connect(t, chat);
    await assert.rejects(invoke(connection, 'nope'), (err) => {
      assert.equal(err.message, "Unknown hub method 'nope'");
      return true;
    });
    assert.equal(await invoke(connection, 'echo', 1), 1);
  });

  test('on the wire: the error Completion echoes the id and has no result', async (t) => {
    const socket = await openSession(t, chat);
    socket.send(record({ type: 1, invocationId: 'n1', target: 'nope', arguments: [] }));
    assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: 'n1', error: "Unknown hub method 'nope'" });
  });

  test('a fire-and-forget call to an unknown method gets no reply', async (t) => {
    const socket = await openSession(t, chat);
    socket.send(record({ type: 1, target: 'nope', arguments: [] }));
    await expectEcho(socket, 'after-nope');
  });
});

describe('the server survives all of the above', { timeout: 30_000 }, () => {
  test('still running and serving new connections', async (t) => {
    assert.ok(server.running(), 'the server process is still running');
    const connection = await connect(t, chat);
    assert.equal(await invoke(connection, 'echo', 'fine'), 'fine');
  });
});

describe('broken plugin files', { timeout: 60_000 }, () => {
  let broken;
  before(async () => {
    broken = await startServer({
      plugins: {
        'demo/wrongworld.wasm': pluginWasm('wrong_world'),
        'demo/garbage.wasm': randomBytes(4096),
      },
    });
  });
  after(() => broken?.stop());

  test('each bad file is logged as an error naming it', async () => {
    await broken.waitForLog(/ERROR[^\n]*wrongworld\.wasm/);
    await broken.waitForLog(/ERROR[^\n]*garbage\.wasm/);
  });

  test('the broken hubs are 404 at negotiate', async () => {
    for (const hub of ['wrongworld', 'garbage']) {
      const { status } = await negotiate(hubUrl(broken, 'demo', hub));
      assert.equal(status, 404, `negotiate demo/${hub}`);
    }
  });

  test('the bundled hubs still work', async (t) => {
    const connection = await connect(t, hubUrl(broken, 'demo', 'chat'));
    assert.equal(await invoke(connection, 'echo', 'chat works'), 'chat works');
    const notify = await connect(t, hubUrl(broken, 'demo', 'notify'));
    await assert.rejects(invoke(notify, 'notifyClient', 1, 'Confirmed'), { message: 'Unable to find connection' });
  });
});
