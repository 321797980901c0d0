// The `chat` hub through the official client: broadcast, groups, users, echo, whoami; against
// the bundled Rust build and the JavaScript and Python builds of the same hub.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { barrier, ECHO_VALUES, expectGroupJoinAndLeave, MESSAGE, text } from './lib/chat.js';
import { connect, inbox, invoke, WAIT_MS } from './lib/client.js';
import {
  BUILDS,
  POLYGLOT_START_MS,
  hubUrl,
  mintToken,
  polyglotPlugins,
  startServer,
  unique,
  withTimeout,
} from './lib/server.js';

let server;
before(async () => {
  server = await startServer({ plugins: polyglotPlugins(['chat']), startTimeoutMs: POLYGLOT_START_MS });
});
after(() => server?.stop());

for (const build of BUILDS) {
  const chat = () => hubUrl(server, 'demo', `chat${build.suffix}`);

  /** Connects to chat and records its `addNewMessageToPage` calls. */
  async function member(t, options) {
    const connection = await connect(t, chat(), options);
    return { connection, box: inbox(connection, MESSAGE) };
  }

  describe(`chat (${build.lang})`, { timeout: 60_000 }, () => {
    test('send reaches every connection, the caller included, with name and message', async (t) => {
      const [a, b, c] = await Promise.all([member(t), member(t), member(t)]);
      const hello = unique('hello-');
      assert.equal(await invoke(a.connection, 'send', 'alice', hello), undefined, 'send is void');
      for (const m of [a, b, c]) {
        assert.deepEqual(await m.box.next(text(hello)), ['alice', hello]);
      }

      // Fire-and-forget (no invocationId) is delivered too.
      const quiet = unique('fire-and-forget-');
      await withTimeout(b.connection.send('send', 'bob', quiet), WAIT_MS, 'send()');
      for (const m of [a, b, c]) {
        assert.deepEqual(await m.box.next(text(quiet)), ['bob', quiet]);
      }
      // Each message arrived exactly once.
      for (const m of [a, b, c]) {
        assert.equal(m.box.messages.filter(text(hello)).length, 1);
        assert.equal(m.box.messages.filter(text(quiet)).length, 1);
      }
    });

    test('groups: members receive sendToGroup, non-members and leavers do not', async (t) => {
      const [a, b, c] = await Promise.all([member(t), member(t), member(t)]);
      const second = await expectGroupJoinAndLeave(a, b, c);
      assert.equal(c.box.has(second), false, 'a non-member received a group message');

      // A group nobody joined reaches nobody, and is not an error.
      const nobody = unique('nobody-');
      await invoke(a.connection, 'sendToGroup', unique('empty-'), 'alice', nobody);
      await barrier(a, a, b, c);
      for (const m of [a, b, c]) assert.equal(m.box.has(nobody), false);
    });

    test('sendToUser reaches every connection of that user only, named after the sender', async (t) => {
      const alice = unique('alice-');
      const bob = unique('bob-');
      const [aliceToken, bobToken] = await Promise.all([mintToken({ user: alice }), mintToken({ user: bob })]);
      const [a1, a2, b, anon] = await Promise.all([
        member(t, { token: aliceToken }),
        member(t, { token: aliceToken }),
        member(t, { token: bobToken }),
        member(t),
      ]);

      // From an anonymous connection: the sender name is `anonymous`.
      const fromAnon = unique('from-anon-');
      await invoke(anon.connection, 'sendToUser', alice, fromAnon);
      assert.deepEqual(await a1.box.next(text(fromAnon)), ['anonymous', fromAnon]);
      assert.deepEqual(await a2.box.next(text(fromAnon)), ['anonymous', fromAnon]);
      await barrier(anon, b, anon);
      assert.equal(b.box.has(fromAnon), false, "another user's connection received a user message");
      assert.equal(anon.box.has(fromAnon), false, 'the sender received its own user message');

      // From a connection with a token: the sender name is its user id.
      const fromBob = unique('from-bob-');
      await invoke(b.connection, 'sendToUser', alice, fromBob);
      assert.deepEqual(await a1.box.next(text(fromBob)), [bob, fromBob]);
      assert.deepEqual(await a2.box.next(text(fromBob)), [bob, fromBob]);
      await barrier(b, b, anon);
      assert.equal(b.box.has(fromBob), false);
      assert.equal(anon.box.has(fromBob), false);

      // Exactly once per connection.
      for (const m of [a1, a2]) {
        assert.equal(m.box.messages.filter(text(fromAnon)).length, 1);
        assert.equal(m.box.messages.filter(text(fromBob)).length, 1);
      }

      // A user with no connections: nothing is delivered and the call still succeeds.
      await invoke(b.connection, 'sendToUser', unique('nobody-'), unique('lost-'));
    });

    test('echo returns its argument unchanged for every JSON type', async (t) => {
      const { connection } = await member(t);
      const values = [
        ...ECHO_VALUES,
        'héllo wörld ✓ 日本語 한국어 العربية 🚀 👩‍👩‍👧 e\u0301',
        'quotes " backslash \\ slash / newline \n tab \t nul \u0000 unit \u001f',
      ];
      for (const value of values) {
        assert.deepEqual(await invoke(connection, 'echo', value), value, `echo(${JSON.stringify(value).slice(0, 80)})`);
      }
    });

    test('hub method names match case-insensitively', async (t) => {
      const { connection } = await member(t);
      assert.equal(await invoke(connection, 'ECHO', 'upper'), 'upper');
      assert.equal(await invoke(connection, 'Echo', 'title'), 'title');
    });

    test('whoami returns the connection id and user id', async (t) => {
      const user = unique('dana-');
      const token = await mintToken({ user });
      const [anon, anon2, named] = await Promise.all([member(t), member(t), member(t, { token })]);

      const me = await invoke(anon.connection, 'whoami');
      assert.equal(me.connectionId, anon.connection.connectionId, 'whoami connectionId = negotiate connectionId');
      assert.equal(me.userId ?? null, null, 'an anonymous connection has no user id');

      const other = await invoke(anon2.connection, 'whoami');
      assert.equal(other.connectionId, anon2.connection.connectionId);
      assert.notEqual(other.connectionId, me.connectionId, 'connection ids are unique');

      assert.deepEqual(await invoke(named.connection, 'whoami'), {
        connectionId: named.connection.connectionId,
        userId: user,
      });
    });
  });
}
