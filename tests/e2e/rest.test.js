// The backend REST API (/api/v1/tenants/{tenant}/hubs/{hub}/...): every endpoint end to end
// with the official client receiving what the API sent, the notify scenario driven from a
// backend, every authentication failure, request errors, the OpenAPI document against the
// live routes, client tokens from an identity provider (RS256/ES256, PEM and JWKS), and the
// `switchboard send` / `switchboard token --api` CLI.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildConnection, connect, inbox, invoke, WAIT_MS } from './lib/client.js';
import { hs256 } from './lib/jwt.js';
import { jsonOrText, negotiate } from './lib/raw.js';
import {
  hubUrl,
  mintToken,
  pluginWasm,
  startServer,
  SWITCHBOARD_BIN,
  unique,
  withTimeout,
} from './lib/server.js';

const DEMO_KEY = 'demo-api-key-0123456789';
const DEMO_KEY_ROTATED = 'demo-api-key-rotated-0123456789';
const ACME_KEY = 'acme-api-key-0123456789';
const CONFIRMED = "Here's the message for confirmation";

// An identity provider's keys: RSA for RS256 (PEM for demo, JWKS for acme), EC for ES256.
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

let server;
let keyDir;
let base; // http://127.0.0.1:PORT
before(async () => {
  keyDir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-rest-keys-'));
  const rsaPem = path.join(keyDir, 'rsa.pub.pem');
  const ecPem = path.join(keyDir, 'ec.pub.pem');
  const jwks = path.join(keyDir, 'jwks.json');
  await writeFile(rsaPem, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  await writeFile(ecPem, ec.publicKey.export({ type: 'spki', format: 'pem' }));
  const jwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'idp-1', alg: 'RS256', use: 'sig' };
  await writeFile(jwks, JSON.stringify({ keys: [jwk] }));
  server = await startServer({
    config: `
[tenants.demo]
allow_anonymous = true
signing_keys = ["demo-signing-secret"]
api_keys = ["${DEMO_KEY}", "${DEMO_KEY_ROTATED}"]
public_keys = [${JSON.stringify(rsaPem)}, ${JSON.stringify(ecPem)}]
audience = "switchboard:demo"

[tenants.acme]
allow_anonymous = false
signing_keys = ["acme-signing-secret"]
api_keys = ["${ACME_KEY}"]
jwks_file = ${JSON.stringify(jwks)}
audience = "switchboard:acme"
user_claim = "nameid"
`,
    plugins: { 'acme/chat.wasm': pluginWasm('chat') },
  });
  base = server.url;
});
after(async () => {
  await server?.stop();
  if (keyDir) await rm(keyDir, { recursive: true, force: true });
});

const apiPath = (tenant, hub, rest = '') => `/api/v1/tenants/${tenant}/hubs/${hub}${rest}`;
const enc = encodeURIComponent;

/** A REST call with node's fetch (bounded); returns {status, body (parsed JSON or text), headers}. */
async function api(method, urlPath, { key = DEMO_KEY, token, body, contentType = 'application/json', raw } = {}) {
  const headers = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  else if (key !== null) headers['x-api-key'] = key;
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) payload = JSON.stringify(body);
  if (payload !== undefined && contentType) headers['content-type'] = contentType;
  const response = await fetch(`${base}${urlPath}`, {
    method,
    headers,
    body: payload,
    signal: AbortSignal.timeout(WAIT_MS),
  });
  return { status: response.status, body: await jsonOrText(response), headers: response.headers };
}

/** An RS256 or ES256 JWT with `claims`, signed with `privateKey`. */
function asymmetric(alg, claims, privateKey, kid) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const header = { alg, typ: 'JWT', ...(kid ? { kid } : {}) };
  const body = `${b64(header)}.${b64(claims)}`;
  const key = alg === 'ES256' ? { key: privateKey, dsaEncoding: 'ieee-p1363' } : privateKey;
  return `${body}.${cryptoSign('sha256', Buffer.from(body), key).toString('base64url')}`;
}

const now = () => Math.floor(Date.now() / 1000);
const apiToken = (aud, { secret = DEMO_KEY, exp = now() + 60 } = {}) => hs256({ aud, exp }, secret);

const chatUrl = () => hubUrl(server, 'demo', 'chat');

/**
 * A started client (chat unless `options.url` says otherwise) and an inbox for `target`. The
 * server sends the handshake response just before it makes the connection reachable, so wait
 * (bounded) until the API sees it: a REST send never races the connection's registration.
 */
async function member(t, target = 'msg', options = {}) {
  const url = options.url ?? chatUrl();
  const connection = await connect(t, url, options);
  const box = inbox(connection, target);
  const id = connection.connectionId;
  const [tenant, hub] = new URL(url).pathname.split('/').slice(-2);
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const r = await api('HEAD', apiPath(tenant, hub, `/connections/${enc(id)}`), {
      key: tenant === 'acme' ? ACME_KEY : DEMO_KEY,
    });
    if (r.status === 200) break;
    if (Date.now() > deadline) throw new Error(`connection ${id} never became reachable through the API`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return { connection, id, box };
}

/**
 * A fresh user (`unique(prefix)`) with two connections, `u1` and `u2`, and one anonymous
 * connection, `other`: members recording `msg`.
 */
async function userAndOther(t, prefix) {
  const user = unique(prefix);
  const token = await mintToken({ user, config: server.configPath });
  const [u1, u2, other] = await Promise.all([member(t, 'msg', { token }), member(t, 'msg', { token }), member(t)]);
  return { user, u1, u2, other };
}

/**
 * Proves `who` received everything sent to it before: sends a marker to its connection and
 * waits for it; returns the messages that came before the marker.
 */
async function drain(who, hub = 'chat') {
  const marker = unique('marker-');
  const sent = await api('POST', apiPath('demo', hub, `/connections/${enc(who.id)}/:send`), {
    body: { target: 'msg', arguments: [marker] },
  });
  assert.equal(sent.status, 202);
  await who.box.next((args) => args[0] === marker);
  const at = who.box.messages.findIndex((args) => args[0] === marker);
  const before = who.box.messages.slice(0, at);
  who.box.messages.splice(0, at + 1);
  return before;
}

describe('REST API', { timeout: 120_000 }, () => {
  test('send to all, with excluded connections', async (t) => {
    const [a, b, c] = await Promise.all([member(t), member(t), member(t)]);
    const text = unique('all-');
    const r = await api('POST', `${apiPath('demo', 'chat', '/:send')}?excluded=${enc(c.id)}&api-version=2022-06-01`, {
      body: { target: 'msg', arguments: [text, { n: 1 }] },
    });
    assert.equal(r.status, 202);
    assert.deepEqual(await a.box.next((m) => m[0] === text), [text, { n: 1 }]);
    assert.deepEqual(await b.box.next((m) => m[0] === text), [text, { n: 1 }]);
    assert.deepEqual(await drain(c), [], 'the excluded connection received the broadcast');
  });

  test('send to a user reaches all of its connections and no one else', async (t) => {
    const { user, u1, u2, other } = await userAndOther(t, 'u-');
    const r = await api('POST', apiPath('demo', 'chat', `/users/${enc(user)}/:send`), {
      body: { target: 'msg', arguments: ['to-user'] },
    });
    assert.equal(r.status, 202);
    assert.deepEqual(await u1.box.next(), ['to-user']);
    assert.deepEqual(await u2.box.next(), ['to-user']);
    assert.deepEqual(await drain(other), []);
    assert.equal((await api('HEAD', apiPath('demo', 'chat', `/users/${enc(user)}`))).status, 200);
    assert.equal((await api('HEAD', apiPath('demo', 'chat', `/users/${enc(unique('nobody-'))}`))).status, 404);
  });

  test('send to one connection; the Azure v1 casing Target/Arguments is accepted', async (t) => {
    const [a, b] = await Promise.all([member(t), member(t)]);
    const r = await api('POST', apiPath('demo', 'chat', `/connections/${enc(a.id)}/:send`), {
      body: { Target: 'msg', Arguments: ['just-a'] },
    });
    assert.equal(r.status, 202);
    assert.deepEqual(await a.box.next(), ['just-a']);
    assert.deepEqual(await drain(b), []);
  });

  test('groups: add and remove connections, send with excluded, HEAD', async (t) => {
    const [a, b, c] = await Promise.all([member(t), member(t), member(t)]);
    const group = unique('g/ü ');
    const g = enc(group);
    assert.equal((await api('HEAD', apiPath('demo', 'chat', `/groups/${g}`))).status, 404);
    for (const who of [a, b]) {
      const r = await api('PUT', apiPath('demo', 'chat', `/groups/${g}/connections/${enc(who.id)}`));
      assert.equal(r.status, 200);
    }
    assert.equal((await api('HEAD', apiPath('demo', 'chat', `/groups/${g}`))).status, 200);
    let r = await api('POST', `${apiPath('demo', 'chat', `/groups/${g}/:send`)}?excluded=${enc(b.id)}`, {
      body: { target: 'msg', arguments: ['group-1'] },
    });
    assert.equal(r.status, 202);
    assert.deepEqual(await a.box.next(), ['group-1']);
    assert.deepEqual(await drain(b), [], 'excluded member received the group send');
    assert.deepEqual(await drain(c), [], 'non-member received the group send');

    r = await api('DELETE', apiPath('demo', 'chat', `/groups/${g}/connections/${enc(a.id)}`));
    assert.equal(r.status, 200);
    await api('POST', apiPath('demo', 'chat', `/groups/${g}/:send`), { body: { target: 'msg', arguments: ['group-2'] } });
    assert.deepEqual(await b.box.next((m) => m[0] === 'group-2'), ['group-2']);
    assert.deepEqual(await drain(a), [['group-1']], 'removed member still received the group send');
    await api('DELETE', apiPath('demo', 'chat', `/groups/${g}/connections/${enc(b.id)}`));
    assert.equal((await api('HEAD', apiPath('demo', 'chat', `/groups/${g}`))).status, 404);
  });

  test("users in groups: PUT adds the user's current connections, DELETE removes them", async (t) => {
    const { user, u1, u2, other } = await userAndOther(t, 'gu-');
    const group = unique('ug-');
    let r = await api('PUT', apiPath('demo', 'chat', `/users/${enc(user)}/groups/${group}?ttl=0`));
    assert.equal(r.status, 200);
    assert.equal((await api('HEAD', apiPath('demo', 'chat', `/groups/${group}`))).status, 200);
    await api('POST', apiPath('demo', 'chat', `/groups/${group}/:send`), { body: { target: 'msg', arguments: ['ug-1'] } });
    assert.deepEqual(await u1.box.next(), ['ug-1']);
    assert.deepEqual(await u2.box.next(), ['ug-1']);
    assert.deepEqual(await drain(other), []);
    r = await api('DELETE', apiPath('demo', 'chat', `/users/${enc(user)}/groups/${group}`));
    assert.equal(r.status, 200);
    assert.equal((await api('HEAD', apiPath('demo', 'chat', `/groups/${group}`))).status, 404);
    await api('POST', apiPath('demo', 'chat', `/groups/${group}/:send`), { body: { target: 'msg', arguments: ['ug-2'] } });
    assert.deepEqual(await drain(u1), [['ug-1']], 'ug-2 reached a connection removed from the group');
  });

  test('HEAD and DELETE a connection: the client is closed with the reason', async (t) => {
    const a = await member(t);
    const id = a.id;
    assert.equal((await api('HEAD', apiPath('demo', 'chat', `/connections/${enc(id)}`))).status, 200);
    assert.equal((await api('HEAD', apiPath('demo', 'chat', '/connections/no-such-connection'))).status, 404);
    const closed = new Promise((resolve) => a.connection.onclose(resolve));
    const r = await api('DELETE', `${apiPath('demo', 'chat', `/connections/${enc(id)}`)}?reason=${enc('maintenance window')}`);
    assert.equal(r.status, 200);
    const error = await withTimeout(closed, WAIT_MS, 'onclose after DELETE');
    assert.match(String(error?.message), /maintenance window/);
    // Gone from the node once the connection has ended.
    const deadline = Date.now() + WAIT_MS;
    let status;
    while (Date.now() < deadline) {
      status = (await api('HEAD', apiPath('demo', 'chat', `/connections/${enc(id)}`))).status;
      if (status === 404) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(status, 404);
    const again = await api('DELETE', apiPath('demo', 'chat', `/connections/${enc(id)}`));
    assert.equal(again.status, 404);
    assert.equal(again.body.code, 'NoConnection');
  });

  test('notify driven from the backend: :invoke notifyClient reaches the registered client', async (t) => {
    const notifyUrl = hubUrl(server, 'demo', 'notify');
    const [registered, bystander] = await Promise.all([
      member(t, 'addMessage', { url: notifyUrl }),
      member(t, 'addMessage', { url: notifyUrl }),
    ]);
    const id = Math.floor(Math.random() * 1_000_000_000);
    await invoke(registered.connection, 'registerClient', id);
    const r = await api('POST', apiPath('demo', 'notify', '/:invoke'), {
      body: { target: 'notifyClient', arguments: [id, 'Confirmed'] },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { result: null });
    assert.deepEqual(await registered.box.next(), [CONFIRMED]);
    assert.deepEqual(bystander.box.messages, []);

    // The plugin's own error is a 422 with its text; unknown and streaming methods are refused.
    const unknownId = await api('POST', apiPath('demo', 'notify', '/:invoke'), {
      body: { target: 'notifyClient', arguments: [id + 1, 'Confirmed'] },
    });
    assert.equal(unknownId.status, 422);
    assert.deepEqual(unknownId.body, { code: 'InvocationFailed', message: 'Unable to find connection' });
    const noMethod = await api('POST', apiPath('demo', 'notify', '/:invoke'), { body: { target: 'nope' } });
    assert.equal(noMethod.status, 404);
    assert.equal(noMethod.body.code, 'UnknownMethod');
    const stream = await api('POST', apiPath('demo', 'chat', '/:invoke'), { body: { target: 'counter', arguments: [3] } });
    assert.equal(stream.status, 400);
    // A method's result comes back as `result`.
    const echo = await api('POST', apiPath('demo', 'chat', '/:invoke'), { body: { target: 'echo', arguments: [{ a: [1, 2] }] } });
    assert.deepEqual(echo.body, { result: { a: [1, 2] } });
  });

  test('authentication: API keys and tokens (with rotation); every failure is 401/403 and sends nothing', async (t) => {
    const a = await member(t);
    const sendPath = apiPath('demo', 'chat', `/connections/${enc(a.id)}/:send`);
    const fullUrl = `${base}${sendPath}`;
    const body = (text) => ({ body: { target: 'msg', arguments: [text] } });

    // Accepted: both keys, tokens whose aud is the URL (any host form), the path, the tenant or hub.
    const accepted = [
      { key: DEMO_KEY },
      { key: DEMO_KEY_ROTATED },
      { token: apiToken(fullUrl) },
      { token: apiToken(fullUrl.replace('127.0.0.1', 'localhost')) },
      { token: apiToken(`https://push.example.com${sendPath}`) },
      { token: apiToken(sendPath) },
      { token: apiToken(`${base}/api/v1/tenants/demo`, { secret: DEMO_KEY_ROTATED }) },
      { token: apiToken(`${base}/api/v1/tenants/demo/hubs/chat`) },
    ];
    for (const [i, auth] of accepted.entries()) {
      const r = await api('POST', sendPath, { ...auth, ...body(`ok-${i}`) });
      assert.equal(r.status, 202, `accepted case ${i}: ${JSON.stringify(r.body)}`);
    }

    const refused = [
      ['missing', { key: null }, 401],
      ['unknown API key', { key: 'not-a-key-0123456789' }, 401],
      ['another tenant\'s API key', { key: ACME_KEY }, 401],
      ['forged token', { token: apiToken(fullUrl, { secret: 'forged-0123456789' }) }, 401],
      ['token signed with another tenant\'s key', { token: apiToken(fullUrl, { secret: ACME_KEY }) }, 401],
      ['expired token', { token: apiToken(fullUrl, { exp: now() - 600 }) }, 401],
      ['token without exp', { token: hs256({ aud: fullUrl }, DEMO_KEY) }, 401],
      ['long-lived token', { token: apiToken(fullUrl, { exp: now() + 7 * 86_400 }) }, 401],
      ['token without aud', { token: hs256({ exp: now() + 60 }, DEMO_KEY) }, 401],
      ['garbage token', { token: 'a.b.c' }, 401],
      ['token for another tenant', { token: apiToken(`${base}/api/v1/tenants/acme`) }, 403],
      ['token for another hub', { token: apiToken(`${base}/api/v1/tenants/demo/hubs/notify`) }, 403],
      ['token for another route', { token: apiToken(`${base}${apiPath('demo', 'chat', '/:send')}`) }, 403],
    ];
    for (const [what, auth, status] of refused) {
      const r = await api('POST', sendPath, { ...auth, ...body(`refused-${what}`) });
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(typeof r.body.message, 'string', `${what}: JSON error body`);
      assert.equal(r.body.code, status === 401 ? 'Unauthorized' : 'Forbidden', what);
      if (status === 401) assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    }
    const got = await drain(a);
    assert.deepEqual(
      got.map((m) => m[0]),
      accepted.map((_, i) => `ok-${i}`),
      'exactly the accepted sends arrived, in order',
    );
    // The other tenant's key works on its own tenant.
    const acme = await api('HEAD', apiPath('acme', 'chat', '/users/nobody'), { key: ACME_KEY });
    assert.equal(acme.status, 404);
    assert.equal(acme.headers.get('content-type'), 'application/json');
  });

  test('request errors are 4xx with a JSON body that says what was wrong', async () => {
    const send = apiPath('demo', 'chat', '/:send');
    const cases = [
      ['malformed JSON', 'POST', send, { raw: '{"target": ' }, 400, 'BadRequest', /not valid JSON/],
      ['missing target', 'POST', send, { body: { arguments: [] } }, 400, 'BadRequest', /target/],
      ['arguments not an array', 'POST', send, { body: { target: 'm', arguments: 'x' } }, 400, 'BadRequest', /array/],
      ['empty body', 'POST', send, { raw: '' }, 400, 'BadRequest', /empty/],
      ['wrong content type', 'POST', send, { raw: '{"target":"m"}', contentType: 'text/plain' }, 415, 'UnsupportedMediaType', /text\/plain/],
      ['no content type', 'POST', send, { raw: '{"target":"m"}', contentType: null }, 415, 'UnsupportedMediaType', /Content-Type/],
      ['oversized body', 'POST', send, { body: { target: 'm', arguments: ['x'.repeat(1 << 20)] } }, 413, 'PayloadTooLarge', /1048576/],
      ['unknown tenant', 'POST', apiPath('nope', 'chat', '/:send'), { body: { target: 'm' } }, 404, 'UnknownTenant', /nope/],
      ['unknown hub', 'POST', apiPath('demo', 'nope', '/:send'), { body: { target: 'm' } }, 404, 'UnknownHub', /nope/],
      ['unknown route', 'POST', apiPath('demo', 'chat', '/:sendx'), { body: { target: 'm' } }, 404, 'NoRoute', /:sendx/],
      ['wrong method', 'GET', send, {}, 405, 'MethodNotAllowed', /POST/],
      ['name too long', 'POST', apiPath('demo', 'chat', `/groups/${'g'.repeat(1025)}/:send`), { body: { target: 'm' } }, 400, 'BadRequest', /1024/],
    ];
    for (const [what, method, urlPath, options, status, code, message] of cases) {
      const r = await api(method, urlPath, options);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, code, what);
      assert.match(r.body.message, message, what);
    }
  });

  test('the OpenAPI document matches the live routes, in both path styles', async (t) => {
    const doc = await api('GET', '/api/openapi.json', { key: null });
    assert.equal(doc.status, 200);
    assert.match(doc.body.openapi, /^3\./);
    const user = unique('oa-');
    const token = await mintToken({ user, config: server.configPath });
    const a = await member(t, 'msg', { token });
    const group = unique('oag-');
    const values = { tenant: 'demo', hub: 'chat', user, group };
    const bodyFor = (template) => (template.endsWith('/:invoke') ? { target: 'echo', arguments: [1] } : { target: 'msg', arguments: ['openapi'] });
    // Closing and leaving every group change what later calls find: they run last, each on
    // a connection of its own.
    const destructive = (template, method) =>
      template.endsWith('/:closeConnections') || (method === 'delete' && /\/connections\/\{connection\}(\/groups)?$|\/users\/\{user\}\/groups$/.test(template));

    const operations = [];
    for (const [template, item] of Object.entries(doc.body.paths)) {
      for (const method of Object.keys(item)) {
        if (method === 'parameters') continue;
        operations.push([template, method]);
      }
    }
    operations.sort((x, y) => destructive(...x) - destructive(...y));
    assert.ok(operations.length >= 40, `only ${operations.length} operations documented`);
    const styles = new Set(operations.map(([template]) => template.split('/')[2]));
    assert.deepEqual([...styles].sort(), ['health', 'hubs', 'openapi.json', 'v1']);
    for (const [template, method] of operations) {
      const own = destructive(template, method) ? await member(t, 'msg', { token }) : a;
      assert.equal((await api('PUT', apiPath('demo', 'chat', `/groups/${group}/connections/${enc(own.id)}`))).status, 200);
      const urlPath = template.replace(/\{(\w+)\}/g, (_, name) => {
        const value = name === 'connection' ? own.id : values[name];
        assert.ok(value !== undefined, `no value for {${name}} in ${template}`);
        return enc(value);
      });
      const op = doc.body.paths[template][method];
      const r = await api(method.toUpperCase(), urlPath, { body: op.requestBody ? bodyFor(template) : undefined });
      assert.ok(![404, 405].includes(r.status), `${method.toUpperCase()} ${template} answered ${r.status} ${JSON.stringify(r.body)}`);
      assert.ok(Object.keys(op.responses).includes(String(r.status)), `${method.toUpperCase()} ${template}: ${r.status} is not documented`);
    }
  });

  test('client tokens from an identity provider: RS256 and ES256 (PEM), RS256 (JWKS), tenants kept apart', async (t) => {
    const claims = (extra) => ({ exp: now() + 300, ...extra });
    const rs = asymmetric('RS256', claims({ sub: 'ann', aud: 'switchboard:demo' }), rsa.privateKey);
    const es = asymmetric('ES256', claims({ sub: 'ben', aud: 'switchboard:demo' }), ec.privateKey);
    for (const [token, user] of [[rs, 'ann'], [es, 'ben']]) {
      const c = await connect(t, chatUrl(), { token });
      assert.equal((await invoke(c, 'whoami')).userId, user);
    }
    // acme trusts the same RSA key through its JWKS, takes the user from `nameid`, and wants its own aud.
    const acmeUrl = hubUrl(server, 'acme', 'chat');
    const acmeToken = asymmetric('RS256', claims({ nameid: 'cy', sub: 'x', aud: 'switchboard:acme' }), rsa.privateKey, 'idp-1');
    const c = await connect(t, acmeUrl, { token: acmeToken });
    assert.equal((await invoke(c, 'whoami')).userId, 'cy');

    // A token for one tenant never opens the other; forged, expired and wrong-kid tokens fail.
    const refused = [
      [acmeUrl, rs, 'demo token on acme'],
      [chatUrl(), acmeToken, 'acme token on demo'],
      [chatUrl(), asymmetric('RS256', claims({ sub: 'ann', aud: 'switchboard:demo' }), otherRsa.privateKey), 'forged'],
      [chatUrl(), asymmetric('RS256', { sub: 'ann', aud: 'switchboard:demo', exp: now() - 600 }, rsa.privateKey), 'expired'],
      [chatUrl(), asymmetric('RS256', claims({ sub: 'ann' }), rsa.privateKey), 'no aud'],
      [acmeUrl, asymmetric('RS256', claims({ nameid: 'cy', aud: 'switchboard:acme' }), rsa.privateKey, 'idp-2'), 'unknown kid'],
    ];
    for (const [url, token, what] of refused) {
      const { status } = await negotiate(url, { token });
      assert.equal(status, 401, what);
    }
  });

  test('CLI: switchboard send (API key or minted token) and switchboard token --api', async (t) => {
    const user = unique('cli-');
    const token = await mintToken({ user, config: server.configPath });
    const [u, g] = await Promise.all([member(t, 'msg', { token }), member(t)]);
    const run = (args) =>
      new Promise((resolve) => {
        execFile(SWITCHBOARD_BIN, args, { timeout: 15_000, env: { ...process.env, NO_COLOR: '1', RUST_BACKTRACE: '0' } }, (err, stdout, stderr) =>
          resolve({ code: err ? err.code ?? 1 : 0, stdout, stderr }),
        );
      });
    const common = ['send', '--url', base, '--tenant', 'demo', '--hub', 'chat'];
    let r = await run([...common, '--config', server.configPath, '--user', user, 'msg', '["cli-user", 7]']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^202/);
    assert.deepEqual(await u.box.next(), ['cli-user', 7]);

    r = await run([...common, '--api-key', DEMO_KEY, '--connection', g.id, 'msg', '["cli-conn"]']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await g.box.next(), ['cli-conn']);

    r = await run([...common, '--api-key', DEMO_KEY, '--all', '--excluded', g.id, 'msg', '["cli-all"]']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await u.box.next((m) => m[0] === 'cli-all'), ['cli-all']);
    assert.deepEqual(await drain(g), [['cli-conn']], 'the excluded connection received --all');

    r = await run([...common, '--api-key', 'wrong-key-0123456789', '--all', 'msg', '[]']);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /^401/);

    const notifyUrl = hubUrl(server, 'demo', 'notify');
    const n = await member(t, 'addMessage', { url: notifyUrl });
    const id = Math.floor(Math.random() * 1_000_000_000);
    await invoke(n.connection, 'registerClient', id);
    r = await run(['send', '--url', base, '--tenant', 'demo', '--hub', 'notify', '--api-key', DEMO_KEY, '--invoke', 'notifyClient', JSON.stringify([id, 'Confirmed'])]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await n.box.next(), [CONFIRMED]);

    r = await run(['token', '--api', '--tenant', 'demo', '--hub', 'chat', '--url', base, '--config', server.configPath]);
    assert.equal(r.code, 0, r.stderr);
    const apiJwt = r.stdout.trim();
    const claims = JSON.parse(Buffer.from(apiJwt.split('.')[1], 'base64url').toString());
    assert.equal(claims.aud, `${base}/api/v1/tenants/demo/hubs/chat`);
    assert.ok(claims.exp - now() <= 300 + 30);
    const sent = await api('POST', apiPath('demo', 'chat', `/users/${enc(user)}/:send`), { token: apiJwt, body: { target: 'msg', arguments: ['by-token'] } });
    assert.equal(sent.status, 202);
    assert.deepEqual(await u.box.next((m) => m[0] === 'by-token'), ['by-token']);
  });
});
