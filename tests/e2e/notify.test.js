// The `notify` hub: a client registers an identifier, another notifies it by that identifier,
// and only the registered connection receives `addMessage`. Against the bundled Rust build and
// the JavaScript and Python builds of the same hub.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { invoke } from './lib/client.js';
import { barrier, CONFIRMED, FAILED, freshId, notifyMember } from './lib/notify.js';
import { BUILDS, POLYGLOT_START_MS, hubUrl, polyglotPlugins, startServer } from './lib/server.js';

let server;
before(async () => {
  server = await startServer({ plugins: polyglotPlugins(['notify']), startTimeoutMs: POLYGLOT_START_MS });
});
after(() => server?.stop());

for (const build of BUILDS) {
  describe(`notify (${build.lang})`, { timeout: 60_000 }, () => {
    const client = (t) => notifyMember(t, hubUrl(server, 'demo', `notify${build.suffix}`));

    test('only the registered connection receives addMessage, for every status form', async (t) => {
      const [a, b, c] = await Promise.all([client(t), client(t), client(t)]);
      const id = freshId();
      await invoke(a.connection, 'registerClient', id);

      const cases = [
        ['Confirmed', CONFIRMED],
        ['Failed', FAILED],
        [0, CONFIRMED],
        [1, FAILED],
      ];
      for (const [status, expected] of cases) {
        const before = a.box.messages.length;
        await invoke(b.connection, 'notifyClient', id, status);
        await a.box.next(() => a.box.messages.length > before);
        assert.deepEqual(a.box.messages.slice(before), [[expected]], `notifyClient(id, ${JSON.stringify(status)})`);
      }

      // Neither the notifier nor a bystander received anything but their own markers.
      await barrier(b, b);
      await barrier(b, c);
      assert.deepEqual(b.box.messages, [[FAILED]]);
      assert.deepEqual(c.box.messages, [[FAILED]]);
      // And the registered connection got exactly the four messages.
      assert.equal(a.box.messages.length, cases.length);
    });

    test('registering an identifier again moves it to the new connection', async (t) => {
      const [first, second, sender] = await Promise.all([client(t), client(t), client(t)]);
      const id = freshId();
      await invoke(first.connection, 'registerClient', id);
      await invoke(second.connection, 'registerClient', id);

      await invoke(sender.connection, 'notifyClient', id, 'Confirmed');
      assert.deepEqual(await second.box.next(), [CONFIRMED]);
      await barrier(sender, first);
      assert.deepEqual(first.box.messages, [[FAILED]], 'the replaced registration still received the message');

      // The same connection registering again keeps working.
      await invoke(second.connection, 'registerClient', id);
      await invoke(sender.connection, 'notifyClient', id, 1);
      await second.box.next(() => second.box.messages.length === 2);
      assert.deepEqual(second.box.messages, [[CONFIRMED], [FAILED]]);
    });

    test('a connection can notify itself', async (t) => {
      const a = await client(t);
      const id = freshId();
      await invoke(a.connection, 'registerClient', id);
      await invoke(a.connection, 'notifyClient', id, 'Confirmed');
      assert.deepEqual(await a.box.next(), [CONFIRMED]);
    });

    test('an unknown identifier fails the invocation with "Unable to find connection"', async (t) => {
      const b = await client(t);
      await assert.rejects(invoke(b.connection, 'notifyClient', freshId(), 'Confirmed'), (err) => {
        assert.equal(err.message, 'Unable to find connection');
        return true;
      });
      // The connection is still usable afterwards.
      const id = freshId();
      await invoke(b.connection, 'registerClient', id);
      await invoke(b.connection, 'notifyClient', id, 0);
      assert.deepEqual(await b.box.next(), [CONFIRMED]);
    });
  });
}
