// Transport fallback as the official client does it: it walks the server's list (WebSockets,
// ServerSentEvents, LongPolling) in order, skipping what it may not use and negotiating again
// after a transport fails to start.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HttpTransportType, LogLevel } from '@microsoft/signalr';
import { invoke } from './lib/client.js';
import { startChatServer } from './lib/server.js';
import { buildHub, connectHub, transportOf } from './lib/transports.js';

let server;
let chat;
before(async () => ({ server, chat } = await startChatServer()));
after(() => server?.stop());

/**
 * A WebSocket that never connects, as behind a proxy that blocks WebSockets: it reports an
 * error and closes before opening.
 */
class BlockedWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  constructor(url) {
    this.url = url;
    this.readyState = BlockedWebSocket.CONNECTING;
    BlockedWebSocket.attempts.push(url);
    setTimeout(() => {
      this.readyState = BlockedWebSocket.CLOSED;
      this.onerror?.({ type: 'error', message: 'blocked by the test' });
      this.onclose?.({ type: 'close', code: 1006, reason: 'blocked by the test', wasClean: false });
    }, 10);
  }

  send() {
    throw new Error('blocked by the test');
  }

  close() {}
}
BlockedWebSocket.attempts = [];

/** Counts the negotiate requests the client makes (one per transport attempt). */
function negotiations(logs) {
  return logs.filter(([, m]) => /^Sending negotiation request/.test(m)).length;
}

describe('fallback', { timeout: 60_000 }, () => {
  test('ServerSentEvents | LongPolling gets Server-Sent Events', async (t) => {
    const connection = await connectHub(t, chat, { transport: HttpTransportType.ServerSentEvents | HttpTransportType.LongPolling });
    assert.equal(transportOf(connection), 'ServerSentEvents');
    assert.equal(await invoke(connection, 'echo', 'over sse'), 'over sse');
  });

  test('LongPolling alone gets long polling', async (t) => {
    const connection = await connectHub(t, chat, { transport: HttpTransportType.LongPolling });
    assert.equal(transportOf(connection), 'LongPolling');
    assert.equal(await invoke(connection, 'echo', 'over lp'), 'over lp');
  });

  test('all transports allowed: WebSockets first', async (t) => {
    const connection = await connectHub(t, chat, { transport: HttpTransportType.WebSockets | HttpTransportType.ServerSentEvents | HttpTransportType.LongPolling });
    assert.equal(transportOf(connection), 'WebSockets');
  });

  test('a client whose WebSocket is blocked falls back to SSE by itself, negotiating again', async (t) => {
    const logs = [];
    BlockedWebSocket.attempts = [];
    const all = HttpTransportType.WebSockets | HttpTransportType.ServerSentEvents | HttpTransportType.LongPolling;
    const connection = await connectHub(t, chat, { transport: all, WebSocket: BlockedWebSocket, logs, logLevel: LogLevel.None });
    assert.equal(BlockedWebSocket.attempts.length, 1, 'WebSockets was tried first');
    assert.equal(transportOf(connection), 'ServerSentEvents');
    assert.equal(negotiations(logs), 2, 'one negotiate per transport attempt');
    assert.deepEqual(await invoke(connection, 'echo', { fell: 'back' }), { fell: 'back' });
  });

  test('with WebSocket blocked and SSE disallowed, long polling; MessagePack too', async (t) => {
    BlockedWebSocket.attempts = [];
    const connection = await connectHub(t, chat, {
      transport: HttpTransportType.WebSockets | HttpTransportType.LongPolling,
      protocol: 'messagepack',
      WebSocket: BlockedWebSocket,
      logLevel: LogLevel.None,
    });
    assert.equal(BlockedWebSocket.attempts.length, 1);
    assert.equal(transportOf(connection), 'LongPolling');
    assert.deepEqual(await invoke(connection, 'echo', [1, 'two', { three: 3 }]), [1, 'two', { three: 3 }]);
  });

  test('MessagePack never picks SSE: with WebSocket blocked it falls through to long polling', async (t) => {
    const logs = [];
    const connection = await connectHub(t, chat, {
      transport: HttpTransportType.WebSockets | HttpTransportType.ServerSentEvents | HttpTransportType.LongPolling,
      protocol: 'messagepack',
      WebSocket: BlockedWebSocket,
      logs,
      logLevel: LogLevel.None,
    });
    assert.equal(transportOf(connection), 'LongPolling');
    assert.ok(
      logs.some(([, m]) => /Skipping transport 'ServerSentEvents' because it does not support the requested transfer format 'Binary'/.test(m)),
      'the client skipped SSE for the binary protocol',
    );
  });

  test('the abandoned WebSocket negotiation does not leave a connection behind', async (t) => {
    // The blocked attempt negotiated a connection that no transport picked up: it stays
    // pending (and expires), and is never connected; only the SSE attempt's connection is.
    const connectedLines = () => [...server.log().matchAll(/\bconnected connection=([\w-]+)/g)].map((m) => m[1]);
    const before = connectedLines().length;
    BlockedWebSocket.attempts = [];
    const connection = await connectHub(t, chat, {
      transport: HttpTransportType.WebSockets | HttpTransportType.ServerSentEvents,
      WebSocket: BlockedWebSocket,
      logLevel: LogLevel.None,
    });
    assert.equal(BlockedWebSocket.attempts.length, 1);
    await server.waitForLog(new RegExp(`connected connection=${connection.connectionId}`));
    assert.deepEqual(connectedLines().slice(before), [connection.connectionId]);
  });
});
