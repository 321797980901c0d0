// The bundled `chat` hub through the official client over every transport (WebSockets,
// Server-Sent Events, long polling) with every hub protocol the client allows on it (JSON,
// and MessagePack except on SSE): RPC, broadcast, groups, users, errors, stop and close.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { inbox, invoke, LogLevel, WAIT_MS } from './lib/client.js';
import { mintToken, startChatServer, unique, withTimeout } from './lib/server.js';
import { buildHub, connectHub, MATRIX, transportOf } from './lib/transports.js';

const MESSAGE = 'addNewMessageToPage';

let server;
let chat;
before(async () => ({ server, chat } = await startChatServer()));
after(() => server?.stop());

/** True for a message whose text (second argument) is `text`. */
const text = (value) => (args) => args[1] === value;

/** Values echo must return unchanged, over both protocols. */
const VALUES = [
  'hello',
  '',
  0,
  42,
  -7,
  0.1,
  -2.5e-3,
  9007199254740991,
  true,
  false,
  null,
  [],
  {},
  [1, 'two', null, [3, [4, { five: 5 }]], false],
  { a: { b: { c: [1, { d: 'deep', e: null, f: [] }] } }, g: true },
  'héllo wörld ✓ 日本語 🚀 👩‍👩‍👧 e\u0301',
  'quotes " backslash \\ newline \n carriage return \r\n tab \t nul \u0000 unit \u001f',
  { 'ключ': 'значение', '🔑': ['🚪'], '': 'empty key' },
  'x'.repeat(16 * 1024),
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

    /** Makes sure `who` received everything `sender` sent before (delivery is in order). */
    async function barrier(sender, ...who) {
      const marker = unique('barrier-');
      await invoke(sender.connection, 'send', 'barrier', marker);
      await Promise.all(who.map((m) => m.box.next(text(marker))));
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
      const group = unique('room-');
      await invoke(a.connection, 'joinGroup', group);
      await invoke(b.connection, 'joinGroup', group);
      const first = unique('to-group-');
      await invoke(c.connection, 'sendToGroup', group, 'carol', first);
      assert.deepEqual(await a.box.next(text(first)), ['carol', first]);
      assert.deepEqual(await b.box.next(text(first)), ['carol', first]);
      await barrier(c, c);
      assert.equal(c.box.has(first), false, 'a non-member received a group message');

      await invoke(b.connection, 'leaveGroup', group);
      const second = unique('after-leave-');
      await invoke(a.connection, 'sendToGroup', group, 'alice', second);
      assert.deepEqual(await a.box.next(text(second)), ['alice', second]);
      await barrier(a, b, c);
      assert.equal(b.box.has(second), false, 'a connection that left still received the group message');
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
      const connection = buildHub(chat, { ...options, logLevel: LogLevel.None });
      t.after(() => connection.stop());
      const closed = new Promise((resolve) => connection.onclose(resolve));
      await withTimeout(connection.start(), WAIT_MS, 'start');
      // Larger than the server's 32 KiB message limit.
      await assert.rejects(withTimeout(connection.invoke('echo', 'z'.repeat(40 * 1024)), WAIT_MS, 'oversized invoke'));
      const error = await withTimeout(closed, WAIT_MS, 'onclose');
      assert.ok(error instanceof Error, 'onclose reports an error');
      assert.match(error.message, /^Server returned an error on close: .+/);
      assert.equal(connection.state, 'Disconnected');
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
