// The bundled `chat` hub through the official client over every transport (WebSockets,
// Server-Sent Events, long polling) with every hub protocol the client allows on it (JSON,
// and MessagePack except on SSE): RPC, broadcast, groups, users, errors, stop and close.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { barrier, ECHO_VALUES, expectGroupJoinAndLeave, MESSAGE, text } from './lib/chat.js';
import { expectOversizedInvocationCloses, inbox, invoke, LogLevel, WAIT_MS } from './lib/client.js';
import { mintToken, startChatServer, unique, withTimeout } from './lib/server.js';
import { buildHub, connectHub, MATRIX, transportOf } from './lib/transports.js';

let server;
let chat;
before(async () => ({ server, chat } = await startChatServer()));
after(() => server?.stop());

/** Values echo must return unchanged, over both protocols. */
const VALUES = [
  ...ECHO_VALUES,
  'héllo wörld ✓ 日本語 🚀 👩‍👩‍👧 e\u0301',
  'quotes " backslash \\ newline \n carriage return \r\n tab \t nul \u0000 unit \u001f',
];

for (const { transport, protocol } of MATRIX) {
  describe(`${transport} with ${protocol}`, { timeout: 60_000 }, () => {
    const options = { transport, protocol };

    /** Connects to chat over this transport and records its `addNewMessageToPage` calls. */
    async function member(t, extra = {}) {
      const connection = await connectHub(t, chat, { ...options, ...extra });
      assert.equal(transportOf(connection), transport, 'the connection uses the transport under test');
      return { connection, box: inbox(connection, MESSAGE) };
    }

    test('RPC: echo returns every JSON type unchanged; whoami knows the connection', async (t) => {
      const { connection } = await member(t);
      for (const value of VALUES) {
        assert.deepEqual(await invoke(connection, 'echo', value), value, `echo(${JSON.stringify(value).slice(0, 60)})`);
      }
      // Several calls in flight at once come back matched to their callers.
      const many = Array.from({ length: 20 }, (_, i) => ({ i, s: `n${i}` }));
      assert.deepEqual(await Promise.all(many.map((v) => invoke(connection, 'echo', v))), many);
      const me = await invoke(connection, 'whoami');
      assert.equal(me.connectionId, connection.connectionId);
    });

    test('broadcast reaches 3 connections, each exactly once, fire-and-forget too', async (t) => {
      const [a, b, c] = await Promise.all([member(t), member(t), member(t)]);
      const hello = unique('hello-');
      assert.equal(await invoke(a.connection, 'send', 'alice', hello), undefined, 'send is void');
      const quiet = unique('quiet-');
      await withTimeout(b.connection.send('send', 'bob', quiet), WAIT_MS, 'send()');
      for (const m of [a, b, c]) {
        assert.deepEqual(await m.box.next(text(hello)), ['alice', hello]);
        assert.deepEqual(await m.box.next(text(quiet)), ['bob', quiet]);
      }
      await barrier(c, a, b, c);
      for (const m of [a, b, c]) {
        assert.equal(m.box.messages.filter(text(hello)).length, 1);
        assert.equal(m.box.messages.filter(text(quiet)).length, 1);
      }
    });

    test('a burst of broadcasts arrives complete and in order', async (t) => {
      const [a, b] = await Promise.all([member(t), member(t)]);
      const prefix = unique('burst-');
      const count = 200;
      await Promise.all(Array.from({ length: count }, (_, i) => a.connection.send('send', 'a', `${prefix}-${i}`)));
      await b.box.next(text(`${prefix}-${count - 1}`), 10_000);
      const got = b.box.messages.filter((args) => String(args[1]).startsWith(`${prefix}-`)).map((args) => args[1]);
      assert.deepEqual(got, Array.from({ length: count }, (_, i) => `${prefix}-${i}`));
    });

    test('groups: members receive sendToGroup, non-members and leavers do not', async (t) => {
      const [a, b, c] = await Promise.all([member(t), member(t), member(t)]);
      await expectGroupJoinAndLeave(a, b, c);
    });

    test('sendToUser reaches every connection of that user only', async (t) => {
      const alice = unique('alice-');
      const bob = unique('bob-');
      const [aliceToken, bobToken] = await Promise.all([mintToken({ user: alice }), mintToken({ user: bob })]);
      const [a1, a2, b] = await Promise.all([
        member(t, { token: aliceToken }),
        member(t, { token: aliceToken }),
        member(t, { token: bobToken }),
      ]);
      assert.deepEqual(await invoke(a1.connection, 'whoami'), { connectionId: a1.connection.connectionId, userId: alice });
      const note = unique('for-alice-');
      await invoke(b.connection, 'sendToUser', alice, note);
      assert.deepEqual(await a1.box.next(text(note)), [bob, note]);
      assert.deepEqual(await a2.box.next(text(note)), [bob, note]);
      await barrier(b, b);
      assert.equal(b.box.has(note), false, "another user's connection received a user message");
    });

    test('errors: an unknown method fails its invocation only', async (t) => {
      const { connection } = await member(t);
      await assert.rejects(invoke(connection, 'nope'), (err) => {
        assert.equal(err.message, "Unknown hub method 'nope'");
        return true;
      });
      assert.equal(await invoke(connection, 'echo', 'still here'), 'still here');
      assert.equal(connection.state, 'Connected');
    });

    test('stop: the client closes cleanly and the server ends the connection', async (t) => {
      const { connection } = await member(t);
      const id = connection.connectionId;
      const closed = new Promise((resolve) => connection.onclose(resolve));
      await withTimeout(connection.stop(), WAIT_MS, 'stop');
      assert.equal(await withTimeout(closed, WAIT_MS, 'onclose'), undefined, 'onclose without an error');
      assert.equal(connection.state, 'Disconnected');
      await server.waitForLog(new RegExp(`disconnected connection=${id}`));
      assert.doesNotMatch(server.log(), new RegExp(`ERROR[^\\n]*${id}`), 'a clean stop logs no error');
    });

    test('close: the server closes a connection with an error, and the client hears why', async (t) => {
      await expectOversizedInvocationCloses(t, buildHub(chat, { ...options, logLevel: LogLevel.None }));
    });
  });
}

describe('negotiate', () => {
  test('lists WebSockets, ServerSentEvents (Text) and LongPolling (Text, Binary), in that order', async () => {
    const response = await fetch(`${chat}/negotiate?negotiateVersion=1`, { method: 'POST', signal: AbortSignal.timeout(WAIT_MS) });
    const body = await response.json();
    assert.deepEqual(body.availableTransports, [
      { transport: 'WebSockets', transferFormats: ['Text', 'Binary'] },
      { transport: 'ServerSentEvents', transferFormats: ['Text'] },
      { transport: 'LongPolling', transferFormats: ['Text', 'Binary'] },
    ]);
  });
});
