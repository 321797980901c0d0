// MessagePack's binary and timestamp types through a hub plugin, with the official client:
// a plugin reads them as base64 and ISO 8601 strings (what a JSON client sends) and marks the
// values it returns or sends (`{"$binary":...}`, `{"$date":...}`, the SDK's Binary and
// Timestamp), so a MessagePack client gets back a Uint8Array and a Date, and a JSON client the
// base64 and ISO strings ASP.NET would write. The same scenarios run against the test hub's
// Rust, JavaScript and Python builds (each SDK's own readers and markers: JS `bytesOf`/`dateOf`,
// `binary`/`date`; Python `bytes_of`/`datetime_of`, `binary`/`date`).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';
import { WAIT_MS, inbox, invoke } from './lib/client.js';
import { BUILDS, POLYGLOT_START_MS, everyBuildPlugins, hubUrl, startServer, withTimeout } from './lib/server.js';

let server;
before(async () => {
  server = await startServer({ plugins: everyBuildPlugins('testhub'), startTimeoutMs: POLYGLOT_START_MS });
});
after(() => server?.stop());

async function open(t, build, transport, protocol) {
  let builder = new HubConnectionBuilder()
    .withUrl(hubUrl(server, 'demo', `testhub${build.suffix}`), { transport: HttpTransportType[transport] })
    .configureLogging(LogLevel.Error);
  if (protocol === 'messagepack') builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  t.after(() => withTimeout(connection.stop(), WAIT_MS, 'stop'));
  await withTimeout(connection.start(), WAIT_MS, `start ${transport}/${protocol}`);
  return connection;
}

const BYTES = [0, 1, 2, 127, 128, 255];
const BASE64 = Buffer.from(BYTES).toString('base64');
const WHEN = new Date('2024-01-02T03:04:05.123Z');

for (const build of BUILDS) {
  describe(`${build.lang} hub`, { timeout: 120_000 }, () => {
    // Server-sent events carry text only: no MessagePack there.
    for (const transport of ['WebSockets', 'LongPolling']) {
      describe(transport, () => {
        test('MessagePack: a Uint8Array and a Date come back as such, in a result and a send', async (t) => {
          const c = await open(t, build, transport, 'messagepack');
          const typed = inbox(c, 'typed');
          const [data, at] = await invoke(c, 'echoTyped', new Uint8Array(BYTES), WHEN);
          assert.ok(data instanceof Uint8Array, `got ${Object.prototype.toString.call(data)}`);
          assert.deepEqual([...data], BYTES);
          assert.ok(at instanceof Date, `got ${Object.prototype.toString.call(at)}`);
          assert.equal(at.getTime(), WHEN.getTime());
          const [sentData, sentAt] = await typed.next();
          assert.deepEqual([...sentData], BYTES);
          assert.ok(sentAt instanceof Date);
          assert.equal(sentAt.getTime(), WHEN.getTime());
          // An empty array and a date before 1970 too.
          const [empty, old] = await invoke(c, 'echoTyped', new Uint8Array(), new Date(-1));
          assert.deepEqual([...empty], []);
          assert.equal(old.getTime(), -1);
        });

        test('JSON: the same method answers base64 and an ISO 8601 string', async (t) => {
          const c = await open(t, build, transport, 'json');
          const typed = inbox(c, 'typed');
          assert.deepEqual(await invoke(c, 'echoTyped', BASE64, WHEN.toISOString()), [BASE64, WHEN.toISOString()]);
          assert.deepEqual(await typed.next(), [BASE64, WHEN.toISOString()]);
          // Another offset reads as the same instant, written back in UTC.
          assert.deepEqual(await invoke(c, 'echoTyped', '', '2024-01-02T05:04:05.5+02:00'), ['', '2024-01-02T03:04:05.5Z']);
        });

        test('text that is not base64 or an ISO 8601 date fails the call by name; the connection stays', async (t) => {
          const c = await open(t, build, transport, 'json');
          const fails = (promise, text) =>
            assert.rejects(promise, (err) => {
              assert.ok(err.message.includes(text), `error ${JSON.stringify(err.message)} lacks ${JSON.stringify(text)}`);
              return true;
            });
          await fails(invoke(c, 'echoTyped', 'not base64!', WHEN.toISOString()), 'base64');
          await fails(invoke(c, 'echoTyped', 'AAE', WHEN.toISOString()), 'base64');
          await fails(invoke(c, 'echoTyped', BASE64, 'yesterday'), 'ISO 8601');
          await fails(invoke(c, 'echoTyped', BASE64, '2024-01-02T03:04:05'), 'ISO 8601');
          assert.deepEqual(await invoke(c, 'echoTyped', BASE64, WHEN.toISOString()), [BASE64, WHEN.toISOString()]);
        });

        test('a plugin that does not mark its values returns plain strings to MessagePack clients', async (t) => {
          const c = await open(t, build, transport, 'messagepack');
          assert.equal(await invoke(c, 'echo', new Uint8Array(BYTES)), BASE64);
          assert.equal(await invoke(c, 'echo', WHEN), WHEN.toISOString());
        });
      });
    }
  });
}
