// Deploys on one node: through the admin API, the `switchboard deploy | rollback | plugins`
// commands and a file dropped in the plugin folder; hot reload while clients call in a loop
// (no failed invocation, no dropped connection, running calls finish on their version, the
// key-value store survives); rollback; invalid components rejected with the old version still
// serving; admin authentication; tenants created, rotated and deleted at run time.
//
// Versions are told apart by the `versioned-v1` / `versioned-v2` fixtures (one source built
// under two package names): every answer names the build that served it.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFile, writeFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LogLevel, WAIT_MS, buildConnection, connect, invoke } from './lib/client.js';
import { ADMIN_KEY, ADMIN_KEY_2, ADMIN_SECTION, V1, V2, admin, cli, deploy, wasmOf } from './lib/admin.js';
import { hubUrl, pluginWasm, startServer, unique, withTimeout } from './lib/server.js';

const API_KEY = 'demo-api-key-0123456789-deploy';
const CONFIG = `
${ADMIN_SECTION}
[tenants.demo]
allow_anonymous = true
signing_keys = ["demo-signing-key-deploy"]
api_keys = ["${API_KEY}"]
[tenants.demo.limits]
# slow() sleeps across a deploy; the default limit of one second is too short for that.
invocation_cpu_ms = 10000
`;

let server;
let v1;
let v2;
before(async () => {
  [v1, v2] = await Promise.all([wasmOf(V1), wasmOf(V2)]);
  server = await startServer({ config: CONFIG, plugins: { 'demo/.keep': Buffer.alloc(0) } });
});
after(() => server?.stop());

/** Polls `fn` until it returns a truthy value (bounded); resolves with it. */
async function eventually(fn, what, ms = 10_000) {
  const poll = (async () => {
    for (;;) {
      const value = await fn().catch(() => undefined);
      if (value) return value;
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  return withTimeout(poll, ms, what);
}

async function deployed(hub, wasm) {
  const r = await deploy(server, 'demo', hub, wasm);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

describe('deploy on one node', { timeout: 180_000 }, () => {
  test('deploy through the API: the next invocation uses the new version, on the same connection', async (t) => {
    const hub = unique('api');
    const first = await deployed(hub, v1);
    assert.equal(first.version, 1);
    assert.equal(first.changed, true);
    assert.match(first.sha256, /^[0-9a-f]{64}$/);
    assert.equal(first.size, v1.length);
    assert.equal(first.source, 'api');
    assert.deepEqual(first.methods, ['echo', 'recall', 'slow', 'version']);

    const connection = await connect(t, hubUrl(server, 'demo', hub));
    assert.equal(await invoke(connection, 'version'), V1);
    const second = await deployed(hub, v2);
    assert.equal(second.version, 2);
    assert.notEqual(second.sha256, first.sha256);
    assert.equal(await invoke(connection, 'version'), V2);
    assert.equal(connection.state, 'Connected');

    // The same bytes again: nothing changes.
    const again = await deployed(hub, v2);
    assert.equal(again.changed, false);
    assert.equal(again.version, 2);
  });

  test('a call running across a deploy finishes on its version; on-connected state survives', async (t) => {
    const hub = unique('pin');
    await deployed(hub, v1);
    const connection = await connect(t, hubUrl(server, 'demo', hub));
    // on_connected stored the version that served when the client connected.
    assert.equal(await invoke(connection, 'recall'), V1);
    let finished = false;
    const running = withTimeout(connection.invoke('slow', 4000), 15_000, 'slow').finally(() => {
      finished = true;
    });
    await new Promise((r) => setTimeout(r, 300));
    await deployed(hub, v2);
    // Another connection (one connection's invocations run one at a time, as in SignalR).
    const other = await connect(t, hubUrl(server, 'demo', hub));
    assert.equal(await invoke(other, 'version'), V2, 'a new call uses the new version at once');
    assert.equal(finished, false, 'the slow call was still running when the new version went live');
    assert.equal(await running, V1, 'the running call finished on the version it started on');
    assert.equal(await invoke(connection, 'recall'), V1, 'the key-value store kept on-connected state');
  });

  test('hot reload under load: 20 deploys, zero failed invocations, zero dropped connections', async (t) => {
    const hub = unique('load');
    await deployed(hub, v1);
    const clients = await Promise.all([1, 2, 3].map(() => connect(t, hubUrl(server, 'demo', hub))));
    const closed = [];
    clients.forEach((c, i) => c.onclose((err) => closed.push(`client ${i}: ${err?.message ?? 'closed'}`)));

    let stop = false;
    const stats = { calls: 0, failures: [], seen: new Set(), switches: 0 };
    const loop = async (connection, i) => {
      let last;
      for (let n = 0; !stop && n < 1_000_000; n++) {
        try {
          const answer = await withTimeout(connection.invoke('echo', { i, n }), WAIT_MS, 'echo');
          assert.deepEqual(answer.value, { i, n });
          stats.calls++;
          stats.seen.add(answer.version);
          if (last !== undefined && answer.version !== last) stats.switches++;
          last = answer.version;
        } catch (err) {
          stats.failures.push(err.message);
        }
      }
    };
    const loops = clients.map(loop);

    // 20 deploys alternating between the two versions; after each one is live, a fresh call
    // must be answered by it.
    for (let d = 0; d < 20; d++) {
      const [wasm, name] = d % 2 === 0 ? [v2, V2] : [v1, V1];
      const r = await deploy(server, 'demo', hub, wasm);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.changed, true);
      assert.equal((await invoke(clients[d % 3], 'version')), name, `deploy ${d + 1}`);
    }
    stop = true;
    await withTimeout(Promise.all(loops), 10_000, 'call loops');

    assert.deepEqual(stats.failures, [], 'no invocation failed');
    assert.deepEqual(closed, [], 'no connection closed');
    for (const c of clients) assert.equal(c.state, 'Connected');
    assert.ok(stats.calls > 100, `the loops kept calling (${stats.calls} calls)`);
    assert.deepEqual([...stats.seen].sort(), [V1, V2]);
    assert.ok(stats.switches >= 3, `the answers switched versions (${stats.switches} switches)`);
    // Every client's on-connected state is still there.
    for (const c of clients) assert.equal(await invoke(c, 'recall'), V1);

    // Only the last versions are kept (keep_versions = 5), the current one among them.
    const listing = await admin(server, 'GET', '/tenants/demo/plugins');
    const entry = listing.body.hubs.find((h) => h.hub === hub);
    assert.equal(entry.current, 21);
    assert.deepEqual(entry.versions.map((v) => v.version), [17, 18, 19, 20, 21]);
  });

  test('rollback: the previous version serves again, then an explicit one', async (t) => {
    const hub = unique('roll');
    await deployed(hub, v1);
    await deployed(hub, v2);
    const connection = await connect(t, hubUrl(server, 'demo', hub));
    assert.equal(await invoke(connection, 'version'), V2);

    const back = await admin(server, 'POST', `/tenants/demo/hubs/${hub}/rollback`);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.equal(back.body.version, 1);
    assert.equal(await invoke(connection, 'version'), V1);

    const none = await admin(server, 'POST', `/tenants/demo/hubs/${hub}/rollback`);
    assert.equal(none.status, 409);
    assert.equal(none.body.code, 'NoEarlierVersion');
    assert.equal(await invoke(connection, 'version'), V1);

    const forward = await admin(server, 'POST', `/tenants/demo/hubs/${hub}/rollback`, { body: { version: 2 } });
    assert.equal(forward.status, 200, JSON.stringify(forward.body));
    assert.equal(await invoke(connection, 'version'), V2);

    const unknown = await admin(server, 'POST', `/tenants/demo/hubs/${hub}/rollback`, { body: { version: 9 } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'UnknownVersion');
    const noHub = await admin(server, 'POST', `/tenants/demo/hubs/${unique('none')}/rollback`);
    assert.equal(noHub.status, 404);
    assert.equal(noHub.body.code, 'UnknownHub');
    assert.equal(connection.state, 'Connected');
  });

  test('the CLI: deploy, plugins, rollback', async (t) => {
    const hub = unique('cli');
    const base = ['--url', server.url, '--tenant', 'demo'];
    const d1 = await cli(['deploy', ...base, '--hub', hub, '--admin-key', ADMIN_KEY, pluginWasm('versioned_v1')]);
    assert.equal(d1.code, 0, d1.stderr);
    assert.match(d1.stdout, new RegExp(`^deployed demo/${hub} version 1 sha256 [0-9a-f]{12} \\(${v1.length} bytes, api, `));
    // The key may come from the environment; the second admin key is as good as the first.
    const d2 = await cli(['deploy', ...base, '--hub', hub, pluginWasm('versioned_v2')], { env: { SWITCHBOARD_ADMIN_KEY: ADMIN_KEY_2 } });
    assert.equal(d2.code, 0, d2.stderr);
    assert.match(d2.stdout, /version 2 /);

    const connection = await connect(t, hubUrl(server, 'demo', hub));
    assert.equal(await invoke(connection, 'version'), V2);

    const list = await cli(['plugins', ...base, '--admin-key', ADMIN_KEY]);
    assert.equal(list.code, 0, list.stderr);
    const lines = list.stdout.split('\n');
    const at = lines.findIndex((l) => l.startsWith(`${hub}  (current: version 2; methods: echo, recall, slow, version)`));
    assert.ok(at >= 0, list.stdout);
    assert.match(lines[at + 1], /^ {4}v1 +[0-9a-f]{12} +\d+ B +api +\d{4}-\d\d-\d\dT/);
    assert.match(lines[at + 2], /^ {2}\* v2 +[0-9a-f]{12} +\d+ B +api +\d{4}-\d\d-\d\dT/);
    // The bundled hubs are listed too.
    assert.ok(lines.some((l) => l.startsWith('chat  (current: version 1;')), list.stdout);

    const back = await cli(['rollback', ...base, '--hub', hub, '--admin-key', ADMIN_KEY]);
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /^rolled back to demo\/\S+ version 1 /);
    assert.equal(await invoke(connection, 'version'), V1);

    const json = await cli(['plugins', ...base, '--admin-key', ADMIN_KEY, '--json']);
    const entry = JSON.parse(json.stdout).hubs.find((h) => h.hub === hub);
    assert.equal(entry.current, 1);
    assert.deepEqual(entry.versions.map((v) => [v.version, v.current]), [[1, true], [2, false]]);

    // Failures exit non-zero with the server's reason.
    const bad = await cli(['deploy', ...base, '--hub', hub, '--admin-key', ADMIN_KEY, pluginWasm('wrong_world')]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /^422 .*"code":"WrongWorld"/);
    const denied = await cli(['plugins', ...base, '--admin-key', 'not-an-admin-key-0123']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /^401 /);
  });

  test('invalid components are rejected with a clear error; the running version keeps serving', async (t) => {
    const hub = unique('bad');
    await deployed(hub, v1);
    const connection = await connect(t, hubUrl(server, 'demo', hub));
    const cases = [
      ['not wasm', Buffer.from('#!/bin/sh\necho not a plugin\n'), 400, 'NotAComponent', /not a WebAssembly file/],
      ['empty', Buffer.alloc(0), 400, 'NotAComponent', /empty/],
      // The smallest valid core module: magic and version 1, no sections.
      ['a core module', Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), 400, 'NotAComponent', /core WebAssembly module, not a component/],
      ['a truncated component', v2.subarray(0, v2.length >> 1), 400, 'InvalidComponent', /not a valid WebAssembly component/],
      ['the wrong world', await readFile(pluginWasm('wrong_world')), 422, 'WrongWorld', /does not implement the switchboard:hub world/],
      ['an import the host lacks', await readFile(pluginWasm('extra_import')), 422, 'UnsupportedImport', /switchboard-fixtures:extra\/telemetry/],
    ];
    for (const [what, wasm, status, code, message] of cases) {
      const r = await deploy(server, 'demo', hub, wasm);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, code, what);
      assert.match(r.body.message, message, what);
      assert.equal(await invoke(connection, 'version'), V1, `${what}: the old version still serves`);
    }
    const listing = await admin(server, 'GET', '/tenants/demo/plugins');
    assert.deepEqual(listing.body.hubs.find((h) => h.hub === hub).versions.map((v) => v.version), [1]);

    const unknownTenant = await deploy(server, 'nobody', hub, v1);
    assert.equal(unknownTenant.status, 404);
    assert.equal(unknownTenant.body.code, 'UnknownTenant');
    const badName = await deploy(server, 'demo', 'bad.name', v1);
    assert.equal(badName.status, 400);
    assert.ok(server.running());
  });

  test('a file dropped in the plugin folder is deployed; a half-written one is not', async (t) => {
    const hub = unique('file');
    const file = path.join(server.pluginsDir, 'demo', `${hub}.wasm`);
    // Written elsewhere, then renamed in: the usual atomic drop.
    await writeFile(`${file}.tmp`, v1);
    await rename(`${file}.tmp`, file);
    const connection = await eventually(async () => {
      const c = buildConnection(hubUrl(server, 'demo', hub), { logLevel: LogLevel.None });
      await withTimeout(c.start(), WAIT_MS, 'start');
      t.after(() => c.stop());
      return c;
    }, `hub ${hub} from the dropped file`);
    assert.equal(await invoke(connection, 'version'), V1);

    // Half of v2, left alone long enough to be read: rejected, v1 keeps serving.
    await writeFile(file, v2.subarray(0, 40_000));
    await server.waitForLog(new RegExp(`plugin file rejected.*hub=demo/${hub}`), 10_000);
    assert.equal(await invoke(connection, 'version'), V1);
    // The rest of the write: the next change is tried again.
    await writeFile(file, v2);
    await eventually(async () => (await invoke(connection, 'version')) === V2, 'v2 from the completed file');
    const listing = await admin(server, 'GET', '/tenants/demo/plugins');
    const entry = listing.body.hubs.find((h) => h.hub === hub);
    assert.deepEqual(entry.versions.map((v) => [v.version, v.source]), [[1, 'file'], [2, 'file']]);
    assert.equal(connection.state, 'Connected');
  });

  test('admin authentication: 401 without or with a wrong key, 403 for a tenant API key', async () => {
    const none = await admin(server, 'GET', '/tenants', { key: null });
    assert.equal(none.status, 401);
    assert.equal(none.body.code, 'Unauthorized');
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    const wrong = await admin(server, 'GET', '/tenants', { key: 'admin-key-0123456789-wrong' });
    assert.equal(wrong.status, 401);
    const tenantKey = await admin(server, 'GET', '/tenants', { key: API_KEY });
    assert.equal(tenantKey.status, 403);
    assert.equal(tenantKey.body.code, 'Forbidden');
    const viaHeader = await admin(server, 'GET', '/tenants', { key: null, headers: { 'x-admin-key': ADMIN_KEY_2 } });
    assert.equal(viaHeader.status, 200);
    const deployNoKey = await deploy(server, 'demo', unique('x'), v1, { key: null });
    assert.equal(deployNoKey.status, 401);
    const noRoute = await admin(server, 'GET', '/nothing/here');
    assert.equal(noRoute.status, 404);
    assert.equal(noRoute.body.code, 'NoRoute');
  });

  test('a node without [admin] keys refuses every admin request with 403', async () => {
    const plain = await startServer({ config: '[tenants.demo]\nallow_anonymous = true\n' });
    try {
      const r = await admin(plain, 'GET', '/tenants');
      assert.equal(r.status, 403);
      assert.match(r.body.message, /admin API is disabled/);
      const d = await deploy(plain, 'demo', 'x', v1);
      assert.equal(d.status, 403);
    } finally {
      await plain.stop();
    }
  });

  test('tenants at run time: create, rotate keys with two valid at once, delete closes connections', async (t) => {
    const name = unique('t-');
    const oldKey = `sign-old-${name}`;
    const newKey = `sign-new-${name}`;
    const created = await admin(server, 'POST', '/tenants', {
      body: { name, signing_keys: [oldKey], api_keys: [`api-${name}-0123456789`] },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.name, name);
    assert.equal(created.body.allow_anonymous, false);
    assert.equal(created.body.signing_keys.length, 1);
    assert.ok(!JSON.stringify(created.body).includes(oldKey), 'keys are never shown');
    const again = await admin(server, 'POST', '/tenants', { body: { name, signing_keys: ['x'] } });
    assert.equal(again.status, 409);
    const invalid = await admin(server, 'POST', '/tenants', { body: { name: unique('u-'), bogus: 1, signing_keys: ['y'] } });
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.code, 'BadRequest');
    const shared = await admin(server, 'POST', '/tenants', { body: { name: unique('s-'), signing_keys: [oldKey] } });
    assert.equal(shared.status, 400);
    assert.match(shared.body.message, /share a signing key/);
    const listed = await admin(server, 'GET', '/tenants');
    assert.ok(listed.body.tenants.some((x) => x.name === name));

    const hub = 'versioned';
    assert.equal((await deploy(server, name, hub, v1)).status, 200);
    const tokenWith = (key) => signToken(key, 'alice');
    const url = hubUrl(server, name, hub);
    const c1 = await connect(t, url, { token: tokenWith(oldKey) });
    assert.equal(await invoke(c1, 'version'), V1);
    await assert.rejects(connect(t, url), /401|Unauthorized/, 'no anonymous access');

    // Add the new key: both are valid.
    const added = await admin(server, 'POST', `/tenants/${name}/signing-keys`, { body: { key: newKey } });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    await connect(t, url, { token: tokenWith(oldKey) });
    const c2 = await connect(t, url, { token: tokenWith(newKey) });
    // Remove the old one: only the new one is.
    const oldId = created.body.signing_keys[0].id;
    const removed = await admin(server, 'DELETE', `/tenants/${name}/signing-keys/${oldId}`);
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual(removed.body.signing_keys, [{ id: added.body.id }]);
    await assert.rejects(connect(t, url, { token: tokenWith(oldKey) }), /401|Unauthorized/);
    await connect(t, url, { token: tokenWith(newKey) });
    const gone = await admin(server, 'DELETE', `/tenants/${name}/signing-keys/${oldId}`);
    assert.equal(gone.status, 404);
    // The last key cannot go: nobody could connect.
    const last = await admin(server, 'DELETE', `/tenants/${name}/signing-keys/${added.body.id}`);
    assert.equal(last.status, 400);

    // API keys rotate the same way; the REST API takes the new one at once.
    const apiKey2 = `api2-${name}-0123456789`;
    const addedApi = await admin(server, 'POST', `/tenants/${name}/api-keys`, { body: { key: apiKey2 } });
    assert.equal(addedApi.status, 201);
    const rest = await fetch(`${server.url}/api/v1/tenants/${name}/hubs/${hub}/:send`, {
      method: 'POST',
      headers: { 'x-api-key': apiKey2, 'content-type': 'application/json' },
      body: JSON.stringify({ target: 'hello', arguments: [] }),
    });
    assert.equal(rest.status, 202);

    // Delete: its connections close with the reason; its hubs and keys are gone.
    const reasons = [];
    const closedBoth = Promise.all(
      [c1, c2].map((c) => new Promise((resolve) => c.onclose((err) => { reasons.push(err?.message ?? ''); resolve(); }))),
    );
    const deleted = await admin(server, 'DELETE', `/tenants/${name}?reason=${encodeURIComponent('moved to another region')}`);
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
    assert.ok(deleted.body.closed_connections >= 2, JSON.stringify(deleted.body));
    await withTimeout(closedBoth, 10_000, 'connections closed');
    for (const r of reasons) assert.match(r, /moved to another region/);
    assert.equal((await admin(server, 'GET', `/tenants/${name}`)).status, 404);
    assert.equal((await deploy(server, name, hub, v1)).status, 404);
    await assert.rejects(connect(t, url, { token: tokenWith(newKey) }), /404|Not Found/);
  });
});

/** An HS256 client token for `user` signed with `key`, valid for a minute. */
function signToken(key, user) {
  const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: user, iat: now, exp: now + 60 })}`;
  const sig = createHmac('sha256', key).update(body).digest('base64url');
  return `${body}.${sig}`;
}
