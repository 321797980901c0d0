// Wire details real clients depend on (TransportProtocols.md, HubProtocol.md): negotiate body,
// handshake variants of other clients, several records in one frame, a record split across
// frames.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { negotiate, openRaw, openSession, record, RS } from './lib/raw.js';
import { startChatServer } from './lib/server.js';

let server;
let chat;
before(async () => ({ server, chat } = await startChatServer()));
after(() => server?.stop());

describe('wire', { timeout: 30_000 }, () => {
  test('negotiate v1 returns connectionId, a URL-safe connectionToken and WebSockets', async () => {
    const { status, body } = await negotiate(chat);
    assert.equal(status, 200);
    assert.equal(body.negotiateVersion, 1);
    assert.equal(typeof body.connectionId, 'string');
    assert.match(body.connectionToken, /^[A-Za-z0-9_-]+$/, 'the token goes unencoded into ?id=');
    assert.notEqual(body.connectionToken, body.connectionId, 'the token is secret, not the public id');
    assert.ok(!('ProtocolVersion' in body), 'ProtocolVersion makes clients think this is ASP.NET SignalR 2.x');
    const ws = body.availableTransports.find((t) => t.transport === 'WebSockets');
    assert.ok(ws, `WebSockets is offered: ${JSON.stringify(body.availableTransports)}`);
    assert.ok(ws.transferFormats.includes('Text'));
  });

  for (const [name, handshake] of [
    ['version 0 (signalrcore)', '{"protocol":"json","version":0}'],
    ['spaces in the JSON (pysignalr)', '{"protocol": "json", "version": 1}'],
  ]) {
    test(`a handshake with ${name} is accepted`, async (t) => {
      const socket = await openRaw(t, chat);
      socket.send(handshake + RS);
      assert.deepEqual(await socket.nextRecord({ pings: true }), {});
      socket.send(record({ type: 1, invocationId: '0', target: 'echo', arguments: ['ok'] }));
      assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '0', result: 'ok' });
    });
  }

  test('the handshake and a first invocation may share one frame', async (t) => {
    const socket = await openRaw(t, chat);
    socket.send(`{"protocol":"json","version":1}${RS}${record({ type: 1, invocationId: '0', target: 'echo', arguments: [0] })}`);
    assert.deepEqual(await socket.nextRecord({ pings: true }), {});
    assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '0', result: 0 });
  });

  test('several records in one frame are all handled, in order', async (t) => {
    const socket = await openSession(t, chat);
    socket.send(
      [1, 2, 3].map((n) => record({ type: 1, invocationId: `b${n}`, target: 'echo', arguments: [n] })).join('') +
        record({ type: 6 }),
    );
    for (const n of [1, 2, 3]) {
      assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: `b${n}`, result: n });
    }
  });

  test('a record split across two frames is reassembled', async (t) => {
    const socket = await openSession(t, chat);
    const whole = record({ type: 1, invocationId: 's1', target: 'echo', arguments: ['split'] });
    const cut = Math.floor(whole.length / 2);
    socket.send(whole.slice(0, cut));
    socket.send(whole.slice(cut));
    assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: 's1', result: 'split' });
  });

  test('a void method answers with a Completion that has neither result nor error', async (t) => {
    const socket = await openSession(t, chat);
    socket.send(record({ type: 1, invocationId: 'v1', target: 'joinGroup', arguments: ['wire-group'] }));
    assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: 'v1' });
  });
});
