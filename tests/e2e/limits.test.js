// Per-tenant limits, each reached on purpose with real clients: connections (refused at
// negotiate, and at the handshake when a client skips negotiation), invocations running at
// once, invocations per second per connection, groups per connection, message size, and the
// plugin's CPU time and memory, and the bytes a tenant's key-value store keeps in memory. Each refusal's text is asserted, and a neighbouring tenant
// with the same hub is served normally at the same moment.
//
// Each limit has a tenant of its own, so one test's connections never count against another.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HubConnectionBuilder, HttpTransportType, LogLevel } from '@microsoft/signalr';
import { connect, invoke, rejectsWith, WAIT_MS } from './lib/client.js';
import { expectCpuAndMemoryLimits } from './lib/hostile.js';
import { hubUrl, pluginWasm, startServer, withTimeout } from './lib/server.js';

const tenant = (name, limits) => `
[tenants.${name}]
allow_anonymous = true
[tenants.${name}.limits]
${limits}
`;

const CONFIG = [
  tenant('conn', 'connections = 2'),
  tenant('conc', 'concurrent_invocations = 2\ninvocation_queue_ms = 200'),
  tenant('rate', 'messages_per_second = 5\nmessages_burst = 5'),
  tenant('groups', 'groups_per_connection = 2'),
  tenant('size', 'max_message_size = 2048'),
  tenant('plugin', 'invocation_cpu_ms = 200\nmemory_mb = 32'),
  // Messages large enough to carry a value of the store's largest size.
  tenant('kvfull', 'max_message_size = 2097152'),
  // The neighbour: the same hubs, the built-in limits.
  '[tenants.roomy]\nallow_anonymous = true\n',
].join('\n');

const TENANTS = ['conn', 'conc', 'rate', 'groups', 'size', 'plugin', 'kvfull', 'roomy'];

let server;
before(async () => {
  const plugins = {};
  for (const t of TENANTS) plugins[`${t}/testhub.wasm`] = pluginWasm('testhub');
  plugins['plugin/hostile.wasm'] = pluginWasm('hostile');
  plugins['roomy/hostile.wasm'] = pluginWasm('hostile');
  server = await startServer({ config: CONFIG, plugins });
});
after(() => server?.stop());

/** The neighbour tenant answers while (and after) another tenant is at its limit. */
async function neighbourServes(t) {
  const roomy = await connect(t, hubUrl(server, 'roomy', 'testhub'));
  const values = Array.from({ length: 20 }, (_, i) => ({ i }));
  assert.deepEqual(await Promise.all(values.map((v) => invoke(roomy, 'echo', v))), values);
  return roomy;
}

describe('tenant limits', { timeout: 120_000 }, () => {
  test('connections: refused at negotiate and at the handshake, with the reason', async (t) => {
    const url = hubUrl(server, 'conn', 'testhub');
    const a = await connect(t, url);
    await connect(t, url);
    const refusal = 'Too many connections: the tenant allows at most 2 on this server.';

    // Negotiate answers with an error body; the client reports its text.
    const third = new HubConnectionBuilder()
      .withUrl(url, { transport: HttpTransportType.WebSockets })
      .configureLogging(LogLevel.None)
      .build();
    await rejectsWith(withTimeout(third.start(), WAIT_MS, 'start a third'), refusal);

    // Without negotiation the handshake is refused instead.
    const skipping = new HubConnectionBuilder()
      .withUrl(url, { transport: HttpTransportType.WebSockets, skipNegotiation: true })
      .configureLogging(LogLevel.None)
      .build();
    await rejectsWith(withTimeout(skipping.start(), WAIT_MS, 'start without negotiate'), `Server returned handshake error: ${refusal}`);

    // The neighbour holds more than two at the same time.
    const roomy = await Promise.all([1, 2, 3].map(() => connect(t, hubUrl(server, 'roomy', 'testhub'))));
    assert.ok(roomy.every((c) => c.state === 'Connected'));
    await neighbourServes(t);

    // A closed connection frees its place (its end is processed just after the client's stop).
    await withTimeout(a.stop(), WAIT_MS, 'stop a');
    let again;
    for (let attempt = 0; attempt < 50 && !again; attempt++) {
      const c = new HubConnectionBuilder()
        .withUrl(url, { transport: HttpTransportType.WebSockets })
        .configureLogging(LogLevel.None)
        .build();
      try {
        await withTimeout(c.start(), WAIT_MS, 'start again');
        again = c;
      } catch (err) {
        assert.ok(err.message.includes(refusal), err.message);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(again, 'a place became free after a connection closed');
    t.after(() => again.stop());
    assert.equal(await invoke(again, 'echo', 'in'), 'in');
  });

  test('concurrent invocations: a third waits, then fails; slots free up', async (t) => {
    const url = hubUrl(server, 'conc', 'testhub');
    const [a, b, c] = await Promise.all([connect(t, url), connect(t, url), connect(t, url)]);
    // Each of a and b holds an invocation open: the plugin awaits a client result that the
    // test gives only later.
    const holders = [a, b].map((conn) => {
      let release;
      const released = new Promise((r) => {
        release = r;
      });
      let entered;
      const inside = new Promise((r) => {
        entered = r;
      });
      conn.on('hold', (arg) => {
        entered();
        return released.then(() => arg);
      });
      const call = conn.invoke('clientResult', 'hold', 'held');
      return { release, inside, call };
    });
    await withTimeout(Promise.all(holders.map((h) => h.inside)), WAIT_MS, 'both invocations running');

    await rejectsWith(
      invoke(c, 'echo', 1),
      'Too many concurrent invocations: the tenant allows at most 2 at once on this server.',
    );
    await neighbourServes(t);

    holders[0].release();
    assert.equal(await withTimeout(holders[0].call, WAIT_MS, 'first held call'), 'held');
    assert.equal(await invoke(c, 'echo', 2), 2, 'a slot is free again');
    holders[1].release();
    assert.equal(await withTimeout(holders[1].call, WAIT_MS, 'second held call'), 'held');
  });

  test('messages per second: invocations over the rate fail, the connection stays', async (t) => {
    const conn = await connect(t, hubUrl(server, 'rate', 'testhub'));
    const refusal = 'Rate limit exceeded: the tenant allows at most 5 invocations per second per connection.';
    // 20 at once: the burst of 5 (and whatever refilled meanwhile) runs, the rest are refused.
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => invoke(conn, 'echo', i)));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    assert.ok(ok.length >= 5, `the burst runs: ${ok.length} succeeded`);
    assert.ok(refused.length >= 1, 'some are refused');
    for (const r of refused) assert.ok(r.reason.message.includes(refusal), r.reason.message);
    for (const r of ok) assert.equal(typeof r.value, 'number');
    assert.equal(conn.state, 'Connected', 'refusals do not close the connection');
    await neighbourServes(t);

    // Tokens come back at 5 per second.
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(await invoke(conn, 'echo', 'later'), 'later');
  });

  test('streams per connection: one past 64 fails, its neighbours and the tenant go on', async (t) => {
    // 64 paced streams (an item a second, sleeping) of one connection run; the 65th is
    // refused with the reason, so one client cannot take all of its tenant's slots.
    const conn = await connect(t, hubUrl(server, 'roomy', 'testhub'));
    const streams = [];
    const first = [];
    for (let i = 0; i < 64; i += 1) {
      let started;
      first.push(new Promise((r) => {
        started = r;
      }));
      streams.push(conn.stream('ticks', 1000, 1000).subscribe({ next: () => started(), error: () => {}, complete: () => {} }));
    }
    await withTimeout(Promise.all(first), WAIT_MS, 'every stream sent its first item');
    const refused = new Promise((resolve, reject) => {
      conn.stream('ticks', 1, 1).subscribe({ next: () => reject(new Error('the 65th stream ran')), error: resolve, complete: () => reject(new Error('the 65th stream completed')) });
    });
    const error = await withTimeout(refused, WAIT_MS, 'the 65th stream refused');
    assert.ok(error.message.includes('Too many streaming invocations: a connection may run at most 64 at once.'), error.message);
    assert.equal(await invoke(conn, 'echo', 'plain calls go on'), 'plain calls go on');
    await neighbourServes(t);

    // A stream that ends frees its place.
    streams[0].dispose();
    let ran = false;
    for (let attempt = 0; attempt < 50 && !ran; attempt += 1) {
      ran = await new Promise((resolve) => {
        conn.stream('ticks', 1, 1).subscribe({ next: () => {}, error: () => resolve(false), complete: () => resolve(true) });
      });
      if (!ran) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ran, 'a stream runs again once one ended');
    for (const s of streams) s.dispose();
  });

  test('groups per connection: the plugin gets an error for one group too many', async (t) => {
    const conn = await connect(t, hubUrl(server, 'groups', 'testhub'));
    await invoke(conn, 'joinGroup', 'g1');
    await invoke(conn, 'joinGroup', 'g2');
    await invoke(conn, 'joinGroup', 'g1'); // already a member: no new group
    await rejectsWith(invoke(conn, 'joinGroup', 'g3'), 'a connection may be in at most 2 groups');
    await invoke(conn, 'leaveGroup', 'g1');
    await invoke(conn, 'joinGroup', 'g3');

    const roomy = await neighbourServes(t);
    for (const g of ['g1', 'g2', 'g3', 'g4']) await invoke(roomy, 'joinGroup', g);
  });

  test('message size: an oversized message closes the connection with the reason', async (t) => {
    const conn = await connect(t, hubUrl(server, 'size', 'testhub'));
    assert.equal(await invoke(conn, 'echo', 'x'.repeat(1500)), 'x'.repeat(1500));
    const closed = new Promise((resolve) => conn.onclose(resolve));
    conn.invoke('echo', 'x'.repeat(3000)).catch(() => {});
    const error = await withTimeout(closed, WAIT_MS, 'the close');
    assert.ok(error, 'closed with an error');
    assert.ok(
      error.message.includes('Server returned an error on close') &&
        error.message.includes('The maximum message size of 2048B was exceeded.'),
      error.message,
    );
    // The neighbour's limit is the node's default (32 KiB).
    const roomy = await neighbourServes(t);
    assert.equal(await invoke(roomy, 'echo', 'x'.repeat(3000)), 'x'.repeat(3000));
  });

  test("key-value store: a single node keeps at most 64 MiB of a tenant's keys and values; a write past it fails with the reason", async (t) => {
    const conn = await connect(t, hubUrl(server, 'kvfull', 'testhub'));
    const value = 'x'.repeat(1_000_000);
    // 67 entries of about 1 MB fit in 64 MiB (67,108,864 bytes); the 68th does not.
    let refused;
    let stored = 0;
    for (let i = 0; i < 80 && !refused; i++) {
      try {
        await invoke(conn, 'kvSet', `k${i}`, value);
        stored++;
      } catch (err) {
        refused = err;
      }
    }
    assert.equal(stored, 67, 'every write within the bound was stored');
    assert.match(String(refused?.message), /the tenant's key-value store is full: it holds at most 1000000 keys and 67108864 bytes/);
    // Replacing a value with a smaller one, or deleting, is still possible, and frees room.
    await invoke(conn, 'kvSet', 'k0', 'small');
    await invoke(conn, 'kvSet', 'k67', value);
    assert.equal((await invoke(conn, 'kvGet', 'k67')).length, value.length);
    // Another tenant's store is its own (its messages are at most 32 KiB).
    const roomy = await neighbourServes(t);
    await invoke(roomy, 'kvSet', 'k0', 'y'.repeat(30_000));
    assert.equal(await invoke(roomy, 'kvGet', 'k0'), 'y'.repeat(30_000));
  });

  test('CPU time and memory: the invocation fails, the neighbour is served meanwhile', async (t) => {
    const hostile = await connect(t, hubUrl(server, 'plugin', 'hostile'));
    const neighbour = await connect(t, hubUrl(server, 'roomy', 'testhub'));
    await expectCpuAndMemoryLimits(hostile, neighbour, 10_000);
    // The neighbour's own hostile hub has the default limits: 64 MiB is room for 32.
    const roomyHostile = await connect(t, hubUrl(server, 'roomy', 'hostile'));
    assert.equal(await invoke(roomyHostile, 'ping'), 'pong');
  });
});
