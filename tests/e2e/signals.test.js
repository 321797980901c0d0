// Operating a running node with signals: SIGHUP reloads the configuration (tenants, keys,
// limits, admin keys) without dropping a connection, and keeps the running config when the
// new one is invalid; SIGTERM drains (readiness fails at once, every transport's client is
// told to reconnect elsewhere, the process exits 0 within the configured drain timeout); in a
// cluster it leaves the registry on the way out, so the other nodes stop listing it at once.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { cli } from './lib/admin.js';
import { WAIT_MS, buildConnection, connect, invoke } from './lib/client.js';
import { startCluster } from './lib/cluster.js';
import { negotiate } from './lib/raw.js';
import { hubUrl, pluginWasm, startServer, withTimeout } from './lib/server.js';

const ADMIN_1 = 'admin-key-before-the-reload';
const ADMIN_2 = 'admin-key-after-the-reload-0';

const configWith = ({ keys, admin, connections, extra = '' }) => `
drain_timeout_secs = 3
[admin]
keys = ["${admin}"]
[tenants.acme]
signing_keys = [${keys.map((k) => `"${k}"`).join(', ')}]
[tenants.acme.limits]
connections = ${connections}
${extra}`;

const plugins = { 'acme/testhub.wasm': pluginWasm('testhub') };

async function token(server, user) {
  const { code, stdout, stderr } = await cli(['token', '--tenant', 'acme', '--user', user, '--config', server.configPath]);
  assert.equal(code, 0, stderr);
  return stdout.trim();
}

const adminStatus = async (server, key) =>
  (
    await fetch(`${server.url}/admin/v1/tenants`, {
      headers: { authorization: `Bearer ${key}` },
      signal: AbortSignal.timeout(WAIT_MS),
    })
  ).status;

describe('signals', { timeout: 120_000 }, () => {
  test('SIGHUP reloads tenants, keys, limits and admin keys; connections stay; a bad config is refused', async (t) => {
    const server = await startServer({ config: configWith({ keys: ['key-one'], admin: ADMIN_1, connections: 10 }), plugins });
    t.after(() => server.stop());
    const url = hubUrl(server, 'acme', 'testhub');
    const oldToken = await token(server, 'ann');
    const kept = await connect(t, url, { token: oldToken });
    await invoke(kept, 'echo', 'before');
    assert.equal(await adminStatus(server, ADMIN_1), 200);

    // The new file: the signing key rotated, one connection at most, another admin key, a new tenant.
    await writeFile(
      server.configPath,
      configWith({
        keys: ['key-two'],
        admin: ADMIN_2,
        connections: 1,
        extra: '[tenants.beta]\nallow_anonymous = true\n',
      }),
    );
    process.kill(server.pid, 'SIGHUP');
    await server.waitForLog(/config reloaded/, WAIT_MS);

    // The open connection was not dropped, and still works.
    assert.equal(kept.state, 'Connected');
    assert.equal(await invoke(kept, 'echo', 'after'), 'after');
    // The old key no longer lets anyone in; the new one does, but the new limit (1) is full.
    const refused = await negotiate(url, { token: oldToken });
    assert.equal(refused.status, 401, JSON.stringify(refused.body));
    const newToken = await token(server, 'bob');
    const limited = await negotiate(url, { token: newToken });
    assert.match(String(limited.body.error), /allows at most 1 on this server/, JSON.stringify(limited.body));
    // The admin key rotated; the new tenant serves.
    assert.equal(await adminStatus(server, ADMIN_1), 401);
    assert.equal(await adminStatus(server, ADMIN_2), 200);
    const tenants = await (
      await fetch(`${server.url}/admin/v1/tenants`, {
        headers: { authorization: `Bearer ${ADMIN_2}` },
        signal: AbortSignal.timeout(WAIT_MS),
      })
    ).text();
    assert.match(tenants, /"beta"/, tenants);

    // An invalid file is refused with its position; the running config stays.
    await writeFile(server.configPath, configWith({ keys: ['key-three'], admin: ADMIN_2, connections: 0 }));
    process.kill(server.pid, 'SIGHUP');
    const [line] = await server.waitForLog(/config reload refused.*/, WAIT_MS);
    assert.match(line, /switchboard\.toml:\d+:\d+: tenant 'acme': limits\.connections must be positive/);
    assert.equal(await adminStatus(server, ADMIN_2), 200);
    assert.equal(await invoke(kept, 'echo', 'still'), 'still');
    assert.ok(server.running(), 'SIGHUP never stops the node');
    assert.equal((await fetch(`${server.url}/readyz`, { signal: AbortSignal.timeout(WAIT_MS) })).status, 200);
  });

  test('SIGTERM drains every transport: readyz fails, clients are told to reconnect, exit 0', async (t) => {
    const server = await startServer({ config: configWith({ keys: ['key-one'], admin: ADMIN_1, connections: 10 }), plugins });
    t.after(() => server.stop());
    const url = hubUrl(server, 'acme', 'testhub');
    const accessToken = await token(server, 'dee');
    const clients = [];
    for (const transport of [HttpTransportType.WebSockets, HttpTransportType.ServerSentEvents, HttpTransportType.LongPolling]) {
      const connection = new HubConnectionBuilder()
        .withUrl(url, { transport, accessTokenFactory: () => accessToken })
        // Reconnecting only starts when the server's Close allows it; the first retry is
        // far away, so the client is still waiting for it when the test ends.
        .withAutomaticReconnect([60_000])
        .configureLogging(LogLevel.None)
        .build();
      t.after(() => withTimeout(connection.stop(), WAIT_MS, 'stop'));
      await withTimeout(connection.start(), WAIT_MS, `start ${transport}`);
      const reconnecting = new Promise((resolve) => connection.onreconnecting(resolve));
      clients.push({ transport, connection, reconnecting });
    }
    // A slow client result keeps the WebSocket's invocation in flight during the drain.
    let release;
    clients[0].connection.on('slow', () => new Promise((resolve) => (release = resolve)));
    const inFlight = clients[0].connection.invoke('clientResult', 'slow', 0);
    await withTimeout(
      (async () => {
        while (!release) await new Promise((r) => setTimeout(r, 10));
      })(),
      WAIT_MS,
      'the server to invoke slow',
    );

    process.kill(server.pid, 'SIGTERM');
    await server.waitForLog(/draining connections/, WAIT_MS);
    const ready = await fetch(`${server.url}/readyz`, { signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(ready.status, 503, 'not ready while draining');
    const refused = await negotiate(url, { token: accessToken });
    assert.notEqual(refused.status, 200, 'no new negotiation while draining');
    release('late');
    assert.equal(await withTimeout(inFlight, WAIT_MS, 'in-flight invocation'), 'late');
    for (const { transport, reconnecting } of clients) {
      const error = await withTimeout(reconnecting, WAIT_MS, `${transport} told to reconnect`);
      assert.match(String(error), /Server is shutting down\./, `${transport}: ${error}`);
    }
    // Every connection gone: the node exits 0 before the drain timeout.
    const exit = await withTimeout(server.exited, 3_000 + WAIT_MS, 'exit after the drain');
    assert.deepEqual(exit, { code: 0, signal: null });
  });

  test('SIGTERM in a cluster: the node leaves the registry, and the others stop listing it at once', async (t) => {
    // The default registry TTL (30 s) and the 8 s down mark: only leaving explains a quick exit from the list.
    const cluster = await startCluster({
      size: 2,
      config: `drain_timeout_secs = 3
[admin]
keys = ["${ADMIN_1}"]
[tenants.demo]
allow_anonymous = true
`,
    });
    t.after(() => cluster.close());
    const [a, b] = cluster.nodes;
    const idB = (await b.waitForLog(/NATS backplane started node=([0-9a-f]{16})/))[1];
    const dashboard = buildConnection(`${a.url}/dashboard/hub`, { token: ADMIN_1 });
    t.after(() => dashboard.stop());
    let listed = [];
    dashboard.on('snapshot', (data) => {
      listed = data.nodes.map((n) => n.id);
    });
    await withTimeout(dashboard.start(), WAIT_MS, 'dashboard hub');
    const until = (check, what, ms = WAIT_MS) =>
      withTimeout(
        (async () => {
          while (!check()) await new Promise((r) => setTimeout(r, 50));
        })(),
        ms,
        what,
      );
    await until(() => listed.includes(idB), 'B listed on A', 10_000);

    process.kill(b.pid, 'SIGTERM');
    const exit = await withTimeout(b.exited, 3_000 + WAIT_MS, 'B exits after the drain');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.match(b.log(), /node left the cluster registry/);
    const gone = Date.now();
    await until(() => !listed.includes(idB), 'B no longer listed on A', 3_000);
    t.diagnostic(`B left A's list ${Date.now() - gone} ms after it exited`);
  });
});
