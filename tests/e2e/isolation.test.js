// Tenant isolation: two tenants with identical hub, group and user names, and identical
// key-value keys. Nothing crosses: sends to all, to a group, to a user and to a connection
// id, group adds and client results by connection id, KV get/set, and REST sends. The
// plugin passes hostile names (another tenant's name, path and subject syntax, wildcards)
// and still reaches only its own tenant: no host call takes a tenant, so there is none to
// forge. Run on one node, then on two nodes joined by a real NATS JetStream, with each
// tenant's clients spread over both nodes.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, inbox, invoke, WAIT_MS } from './lib/client.js';
import { startNats } from './lib/nats.js';
import { hubUrl, mintToken, pluginWasm, startServer, withTimeout } from './lib/server.js';

const KEYS = {
  alpha: { signing: 'alpha-signing-secret-0123456789', api: 'alpha-api-key-0123456789' },
  beta: { signing: 'beta-signing-secret-0123456789', api: 'beta-api-key-0123456789' },
};

const CONFIG = Object.entries(KEYS)
  .map(([name, k]) => `[tenants.${name}]\nsigning_keys = ["${k.signing}"]\napi_keys = ["${k.api}"]\n`)
  .join('\n');

const PLUGINS = { 'alpha/testhub.wasm': pluginWasm('testhub'), 'beta/testhub.wasm': pluginWasm('testhub') };

/** Names a plugin might try to reach another tenant with. */
const HOSTILE = [
  'beta',
  'beta/testhub',
  'beta/testhub/room',
  'beta:testhub:room',
  'beta.testhub.room',
  '../beta/room',
  '..%2Fbeta%2Froom',
  '*',
  '>',
  'room.>',
  'room.*',
  '$KV.beta.room',
  'room\u0000beta',
];

/** How long a message that must not arrive is given to arrive anyway. */
const QUIET_MS = 400;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

for (const mode of ['one node', 'two nodes over NATS']) {
  describe(`isolation: ${mode}`, { timeout: 120_000 }, () => {
    let nats;
    let nodes = [];
    const tokens = {};
    before(async () => {
      if (mode === 'one node') {
        nodes = [await startServer({ config: CONFIG, plugins: PLUGINS })];
      } else {
        nats = await startNats();
        const config = `${CONFIG}\n[nats]\nregistry_ttl_secs = 3\n`;
        nodes = await Promise.all([1, 2].map(() => startServer({ config, plugins: PLUGINS, args: ['--nats', nats.url] })));
      }
      for (const tenant of ['alpha', 'beta']) {
        for (const user of ['u1', 'u2']) {
          tokens[`${tenant}/${user}`] = await mintToken({ tenant, user, config: nodes[0].configPath });
        }
      }
    });
    after(async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      await nats?.close();
    });

    /** Per tenant: u1 on the first node, u2 on the last, all in group "room", inboxes open. */
    async function population(t) {
      const out = {};
      for (const tenant of ['alpha', 'beta']) {
        const [c1, c2] = await Promise.all([
          connect(t, hubUrl(nodes[0], tenant, 'testhub'), { token: tokens[`${tenant}/u1`] }),
          connect(t, hubUrl(nodes.at(-1), tenant, 'testhub'), { token: tokens[`${tenant}/u2`] }),
        ]);
        for (const c of [c1, c2]) await invoke(c, 'joinGroup', 'room');
        out[tenant] = { c1, c2, box1: inbox(c1, 'message'), box2: inbox(c2, 'message') };
      }
      return out;
    }

    /** Asserts that no inbox of `tenant` holds a value starting with `prefix`. */
    function noneFrom(pop, tenant, prefix) {
      for (const box of [pop[tenant].box1, pop[tenant].box2]) {
        const leaked = box.messages.filter((args) => typeof args[0] === 'string' && args[0].startsWith(prefix));
        assert.deepEqual(leaked, [], `${tenant} received another tenant's messages`);
      }
    }

    test('all, group and user sends stay in their tenant', async (t) => {
      const pop = await population(t);
      for (const [tenant, other] of [
        ['alpha', 'beta'],
        ['beta', 'alpha'],
      ]) {
        const { c1, c2, box1, box2 } = pop[tenant];
        await invoke(c2, 'broadcast', `${tenant}-all`);
        await invoke(c2, 'sendToGroup', 'room', `${tenant}-group`);
        await invoke(c2, 'sendToUser', 'u1', `${tenant}-user`);
        for (const v of [`${tenant}-all`, `${tenant}-group`, `${tenant}-user`]) {
          await box1.next((args) => args[0] === v);
        }
        await box2.next((args) => args[0] === `${tenant}-all`);
        await box2.next((args) => args[0] === `${tenant}-group`);
        assert.ok(c1.state === 'Connected');
        await sleep(QUIET_MS);
        noneFrom(pop, other, `${tenant}-`);
      }
    });

    test('another tenant\'s connection ids reach nothing', async (t) => {
      const pop = await population(t);
      const { c1: a1 } = pop.alpha;
      for (const target of [pop.beta.c1, pop.beta.c2]) {
        const id = target.connectionId;
        assert.ok(id, 'the client knows its connection id');
        await invoke(a1, 'sendToConnection', id, 'alpha-direct');
        await invoke(a1, 'addToGroup', id, 'alpha-room');
        await assert.rejects(invoke(a1, 'invokeConnection', id, 'message', 'alpha-result'), /not found/);
      }
      await invoke(a1, 'sendToGroup', 'alpha-room', 'alpha-stolen');
      // The same calls within alpha do arrive (so the ones above were real attempts).
      await invoke(a1, 'sendToConnection', pop.alpha.c2.connectionId, 'alpha-own');
      await pop.alpha.box2.next((args) => args[0] === 'alpha-own');
      await sleep(QUIET_MS);
      noneFrom(pop, 'beta', 'alpha-');
    });

    test('hostile group and user names reach nothing in the other tenant', async (t) => {
      const pop = await population(t);
      for (const name of HOSTILE) {
        await invoke(pop.beta.c1, 'joinGroup', name);
      }
      for (const name of HOSTILE) {
        await invoke(pop.alpha.c1, 'sendToGroup', name, `alpha-group ${name}`);
        await invoke(pop.alpha.c1, 'sendToUser', name, `alpha-user ${name}`);
      }
      // Beta's own send to one of those groups arrives: the group exists there.
      await invoke(pop.beta.c2, 'sendToGroup', '>', 'beta-own');
      await pop.beta.box1.next((args) => args[0] === 'beta-own');
      await sleep(QUIET_MS);
      noneFrom(pop, 'beta', 'alpha-');
    });

    test('the key-value store: same keys, separate values, hostile keys included', async (t) => {
      const pop = await population(t);
      const [alpha, beta] = [pop.alpha.c1, pop.beta.c2];
      for (const key of ['shared', ...HOSTILE]) {
        await invoke(alpha, 'kvSet', key, `alpha:${key}`);
        assert.equal(await invoke(beta, 'kvGet', key), null, `beta sees no value at ${JSON.stringify(key)}`);
        await invoke(beta, 'kvSet', key, `beta:${key}`);
        assert.equal(await invoke(alpha, 'kvGet', key), `alpha:${key}`);
        assert.equal(await invoke(beta, 'kvGet', key), `beta:${key}`);
      }
      // A connection of alpha on the other node sees alpha's value.
      assert.equal(await invoke(pop.alpha.c2, 'kvGet', 'shared'), 'alpha:shared');
    });

    test('the plugin context names the caller\'s tenant', async (t) => {
      const pop = await population(t);
      const ctx = await invoke(pop.beta.c1, 'context');
      assert.equal(ctx.tenant, 'beta');
      assert.equal(ctx.userId, 'u1');
    });

    test('REST sends reach only the tenant of the URL, and keys only their own tenant', async (t) => {
      const pop = await population(t);
      const api = (node, method, tenant, rest, key, body) =>
        fetch(`${node.url}/api/v1/tenants/${tenant}/hubs/testhub${rest}`, {
          method,
          headers: { 'x-api-key': key, 'content-type': 'application/json' },
          body: body && JSON.stringify(body),
          signal: AbortSignal.timeout(WAIT_MS),
        });
      const send = (value) => ({ target: 'message', arguments: [value] });
      for (const [path, value] of [
        ['/:send', 'alpha-rest-all'],
        ['/groups/room/:send', 'alpha-rest-group'],
        ['/users/u1/:send', 'alpha-rest-user'],
      ]) {
        const r = await api(nodes.at(-1), 'POST', 'alpha', path, KEYS.alpha.api, send(value));
        assert.equal(r.status, 202, `${path}: ${r.status}`);
        await pop.alpha.box1.next((args) => args[0] === value);
      }
      // Alpha's key on beta's URLs is refused, and sends nothing.
      const refused = await api(nodes[0], 'POST', 'beta', '/:send', KEYS.alpha.api, send('alpha-via-beta-url'));
      assert.equal(refused.status, 401);
      // A connection id of beta under alpha's URL is not found.
      const byId = await api(nodes[0], 'POST', 'alpha', `/connections/${encodeURIComponent(pop.beta.c1.connectionId)}/:send`, KEYS.alpha.api, send('alpha-rest-direct'));
      assert.ok([202, 404].includes(byId.status), `status ${byId.status}`);
      await sleep(QUIET_MS);
      noneFrom(pop, 'beta', 'alpha-');
    });

    test('a client token of one tenant opens nothing in the other', async (t) => {
      const { HubConnectionBuilder, HttpTransportType, LogLevel } = await import('@microsoft/signalr');
      const conn = new HubConnectionBuilder()
        .withUrl(hubUrl(nodes[0], 'beta', 'testhub'), {
          transport: HttpTransportType.WebSockets,
          accessTokenFactory: () => tokens['alpha/u1'],
        })
        .configureLogging(LogLevel.None)
        .build();
      await assert.rejects(withTimeout(conn.start(), WAIT_MS, 'start with a foreign token'), /401|Unauthorized/);
      t.after(() => conn.stop());
    });
  });
}
