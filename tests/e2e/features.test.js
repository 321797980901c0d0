// The SignalR features a hub offers, through the official client, over each transport and hub
// protocol: RPC with every JSON type, errors, void, streams both ways, cancellation, client
// results, groups, the hub context (query, headers, items). The `testhub` plugin has one method
// per feature in each language (plugins/testhub, plugins-js/testhub, plugins-python/testhub),
// and every scenario runs against all three builds over every transport and protocol: every
// scenario is expressed in all three languages. The whole matrix costs about twice the Rust
// one (9-11 s against 5 s on a shared 2-core machine once the components are compiled; compiling
// them is the same first-start cost as for the other polyglot files, and cached), so it is
// not cut down to WebSockets for JavaScript and Python.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HttpTransportType, HubConnectionBuilder, LogLevel, Subject } from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';
import { WAIT_MS, collect, inbox, invoke } from './lib/client.js';
import { BUILDS, POLYGLOT_START_MS, everyBuildPlugins, hubUrl, mintToken, startServer, withTimeout } from './lib/server.js';

const TRANSPORTS = (process.env.E2E_TRANSPORTS ?? 'WebSockets,ServerSentEvents,LongPolling').split(',');
const PROTOCOLS = ['json', 'messagepack'];

/** The transport and protocol passes: each one SignalR allows. */
function passes() {
  const all = [];
  for (const transport of TRANSPORTS) {
    for (const protocol of PROTOCOLS) {
      if (transport === 'ServerSentEvents' && protocol === 'messagepack') continue; // SSE is text-only
      all.push({ transport, protocol });
    }
  }
  return all;
}

let server;
before(async () => {
  server = await startServer({ plugins: everyBuildPlugins('testhub'), startTimeoutMs: POLYGLOT_START_MS });
});
after(() => server?.stop());

async function open(t, { build, transport, protocol, token, query = '' }) {
  const options = { transport: HttpTransportType[transport] };
  if (token) options.accessTokenFactory = () => token;
  const url = hubUrl(server, 'demo', `testhub${build.suffix}`) + query;
  let builder = new HubConnectionBuilder().withUrl(url, options).configureLogging(LogLevel.Error);
  if (protocol === 'messagepack') builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  t.after(() => withTimeout(connection.stop(), WAIT_MS, 'stop'));
  await withTimeout(connection.start(), WAIT_MS, `start ${build.lang} ${transport}/${protocol}`);
  return connection;
}

const VALUES = [
  'text',
  '',
  'unicode é ü 日本 🎉',
  0,
  -17,
  2 ** 40,
  1.5,
  true,
  false,
  null,
  [],
  [1, 'two', null, [3]],
  {},
  { nested: { list: [1, 2, { deep: true }], s: 'x' } },
];

for (const build of BUILDS) {
  for (const { transport, protocol } of passes()) {
    describe(`${build.lang} hub, ${transport} + ${protocol}`, () => {
      const opts = { build, transport, protocol };
      /** Names (keys, groups, users) of this pass alone. */
      const pass = `${build.lang}-${transport}-${protocol}`;

      test('echo returns every JSON type unchanged', async (t) => {
        const c = await open(t, opts);
        for (const value of VALUES) {
          assert.deepEqual(await invoke(c, 'echo', value), value, JSON.stringify(value));
        }
        assert.deepEqual(await invoke(c, 'echoArgs', 1, 'a', null, { b: [true] }), [1, 'a', null, { b: [true] }]);
      });

      test('a thrown error reaches the caller as its text; void returns nothing', async (t) => {
        const c = await open(t, opts);
        await assert.rejects(invoke(c, 'throw', 'it went wrong'), { message: 'it went wrong' });
        assert.equal(await invoke(c, 'void'), null ?? undefined);
        await assert.rejects(invoke(c, 'nope'), { message: "Unknown hub method 'nope'" });
        assert.equal(await invoke(c, 'echo', 'still fine'), 'still fine');
      });

      test('a server stream delivers its items in order, then completes', async (t) => {
        const c = await open(t, opts);
        assert.deepEqual(await collect(c.stream('counter', 50)), [...Array(50).keys()]);
        assert.deepEqual(await collect(c.stream('counter', 0)), []);
      });

      test('a failing stream delivers its items, then the error', async (t) => {
        const c = await open(t, opts);
        await assert.rejects(collect(c.stream('failingStream', 3, 'stream broke')), (err) => {
          assert.deepEqual(err.items, [0, 1, 2]);
          assert.equal(err.message, 'stream broke');
          return true;
        });
      });

      test('a cancelled stream stops; the connection carries on', async (t) => {
        const c = await open(t, opts);
        const seen = [];
        await withTimeout(
          new Promise((resolve) => {
            const sub = c.stream('infinite').subscribe({
              next: (i) => {
                seen.push(i);
                if (seen.length === 20) {
                  sub.dispose();
                  resolve();
                }
              },
              complete: () => {},
              error: () => {},
            });
          }),
          WAIT_MS,
          'twenty items',
        );
        assert.deepEqual(seen.slice(0, 20), [...Array(20).keys()]);
        // Streams run beside plain invocations; a new stream and calls work at once.
        assert.deepEqual(await collect(c.stream('counter', 3)), [0, 1, 2]);
        assert.equal(await invoke(c, 'echo', 1), 1);
      });

      test('an upload stream reaches the method item by item', async (t) => {
        const c = await open(t, opts);
        const subject = new Subject();
        const result = invoke(c, 'concat', subject);
        for (const part of ['Hello', ', ', 'world', '!']) subject.next(part);
        subject.complete();
        assert.equal(await result, 'Hello, world!');
      });

      test('two upload streams and an upload-fed server stream', async (t) => {
        const c = await open(t, opts);
        const a = new Subject();
        const b = new Subject();
        // A plain argument between the streams: the JS client skips a stream right after another.
        const joined = invoke(c, 'concatTwo', a, '|', b);
        a.next('a1');
        b.next('b1');
        a.next('a2');
        a.complete();
        b.next('b2');
        b.complete();
        assert.equal(await joined, 'a1a2|b1b2');

        const items = new Subject();
        const echoed = collect(c.stream('uploadEcho', items));
        for (const v of [1, 'two', { three: 3 }]) items.next(v);
        items.complete();
        assert.deepEqual(await echoed, [1, 'two', { three: 3 }]);
      });

      test("an upload stream's error reaches the method", async (t) => {
        const c = await open(t, opts);
        const subject = new Subject();
        const result = invoke(c, 'concat', subject);
        subject.next('x');
        subject.error(new Error('upload broke'));
        // Propagated by the plugin (`?`), the client's own error comes back word for word.
        await assert.rejects(result, (err) => err.message === 'upload broke');
      });

      test("the method sees an upload's error as the client's, and a cancellation as such", async (t) => {
        const c = await open(t, opts);
        const subject = new Subject();
        const key = `outcome-${pass}-${Math.random()}`;
        const result = invoke(c, 'uploadOutcome', key, subject);
        subject.next(1);
        subject.error(new Error('client gave up'));
        assert.deepEqual(await result, { items: [1], client: 'client gave up' });

        const leaving = await open(t, opts);
        const cancelled = `${key}-cancelled`;
        const pending = leaving.invoke('uploadOutcome', cancelled, new Subject());
        pending.catch(() => {});
        /** The value under `cancelled` once it is not `skip` (bounded). */
        const stored = async (skip) => {
          const deadline = Date.now() + 10_000;
          while (Date.now() < deadline) {
            const value = await invoke(c, 'kvGet', cancelled);
            if (value !== null && value !== skip) return value;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          assert.fail(`the plugin never stored ${cancelled} past ${skip}`);
        };
        assert.equal(await stored(null), 'started');
        await withTimeout(leaving.stop(), WAIT_MS, 'stop');
        assert.deepEqual(JSON.parse(await stored('started')), { cancelled: true, items: [] });
      });

      test('client results: the value, a client error, no handler', async (t) => {
        const c = await open(t, opts);
        c.on('double', (x) => x * 2);
        c.on('fail', () => {
          throw new Error('client says no');
        });
        assert.equal(await invoke(c, 'clientResult', 'double', 21), 42);
        await assert.rejects(invoke(c, 'clientResult', 'fail', 0), (err) => err.message.includes('client says no'));
        await assert.rejects(invoke(c, 'clientResult', 'missing', 0), (err) =>
          err.message.includes("Client didn't provide a result."),
        );
      });

      test('groups, broadcast and users', async (t) => {
        const token = mintToken({ user: `u-${pass}` });
        const a = await open(t, { ...opts, token });
        const b = await open(t, opts);
        const aBox = inbox(a, 'message');
        const bBox = inbox(b, 'message');
        const group = `g-${pass}`;
        await invoke(a, 'joinGroup', group);
        await invoke(b, 'sendToGroup', group, 'to-group');
        await aBox.next((args) => args[0] === 'to-group');
        await invoke(b, 'sendToUser', `u-${pass}`, 'to-user');
        await aBox.next((args) => args[0] === 'to-user');
        await invoke(a, 'leaveGroup', group);
        await invoke(b, 'sendToGroup', group, 'after-leave');
        await invoke(b, 'broadcast', 'marker');
        await aBox.next((args) => args[0] === 'marker');
        await bBox.next((args) => args[0] === 'marker');
        assert.ok(!aBox.has('after-leave'), 'a left the group');
        assert.ok(!bBox.has('to-group') && !bBox.has('to-user'));
      });

      test('the hub context: query, headers, user, items that persist per connection', async (t) => {
        const token = mintToken({ user: 'ctx-user' });
        const c = await open(t, { ...opts, token, query: '?room=blue&lang=fr' });
        const ctx = await invoke(c, 'context');
        assert.equal(ctx.userId, 'ctx-user');
        assert.equal(ctx.claims.sub, 'ctx-user');
        assert.equal(ctx.tenant, 'demo');
        assert.equal(ctx.hub, `testhub${build.suffix}`);
        assert.equal(ctx.query.room, 'blue');
        assert.equal(ctx.query.lang, 'fr');
        assert.equal(ctx.query.access_token, undefined, 'tokens are never visible');
        assert.equal(ctx.query.id, undefined);
        assert.equal(ctx.authorization, null);
        assert.match(ctx.userAgent ?? '', /SignalR/);
        assert.equal(await invoke(c, 'getItem', 'k'), null);
        await invoke(c, 'setItem', 'k', 'v1');
        assert.equal(await invoke(c, 'getItem', 'k'), 'v1');
        const other = await open(t, opts);
        assert.equal(await invoke(other, 'getItem', 'k'), null, 'items belong to one connection');
      });
    });
  }
}
