// Client tokens from an identity provider that publishes its keys at a JWKS URL: a JWKS
// server inside the test (node:http), RS256 and ES256 keys generated here (node:crypto), the
// official client connecting with tokens they sign. The provider rotates its key and the node
// picks the new one up without a restart; a token naming a key nobody published is refused
// with a 401 that says so; with the provider down the cached keys keep working.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildConnection, connect, HttpTransportType, invoke, LogLevel, WAIT_MS } from './lib/client.js';
import { ADMIN_SECTION, admin } from './lib/admin.js';
import { pluginWasm, startServer, SWITCHBOARD_BIN, withTimeout } from './lib/server.js';

const AUDIENCE = 'switchboard:acme';

/** A key pair with its JWK (public part, `kid`, `alg`, `use`). */
function keyPair(alg, kid) {
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  return { alg, kid, privateKey: pair.privateKey, jwk };
}

/** A JWT for `user` signed with `key` (its alg; header kid = `kid`, default the key's). */
function tokenFor(key, user, { kid = key.kid, aud = AUDIENCE } = {}) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: key.alg, typ: 'JWT', ...(kid ? { kid } : {}) };
  const body = `${b64(header)}.${b64({ sub: user, aud, iat: now, exp: now + 300 })}`;
  const signer = key.alg === 'ES256' ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey;
  return `${body}.${cryptoSign('sha256', Buffer.from(body), signer).toString('base64url')}`;
}

/** The identity provider's JWKS endpoint: serves `keys`, counts the fetches. */
async function startJwksServer() {
  const state = { keys: [], fetches: 0 };
  const server = http.createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    state.fetches += 1;
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' });
    res.end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    state,
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** `POST negotiate` with a bearer token: `{status, wwwAuthenticate}`. */
async function negotiateWith(url, token) {
  const response = await fetch(`${url}/negotiate?negotiateVersion=1`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'x-requested-with': 'XMLHttpRequest' },
    signal: AbortSignal.timeout(WAIT_MS * 2),
  });
  await response.arrayBuffer();
  return { status: response.status, wwwAuthenticate: response.headers.get('www-authenticate') };
}

/** The user id the chat hub sees for a connection started with `token` over `transport`. */
async function whoami(t, url, token, transport = HttpTransportType.WebSockets) {
  const connection = await connect(t, url, { token, transport });
  return (await invoke(connection, 'whoami')).userId;
}

describe('client tokens verified with keys from a JWKS URL', { timeout: 120_000 }, () => {
  const rsa1 = keyPair('RS256', 'rsa-2026-01');
  const ec1 = keyPair('ES256', 'ec-2026-01');
  const rsa2 = keyPair('RS256', 'rsa-2026-02');
  const stranger = keyPair('RS256', 'rsa-2026-02'); // same kid, key nobody published
  let idp;
  let server;
  let url;

  before(async () => {
    idp = await startJwksServer();
    idp.state.keys = [rsa1.jwk, ec1.jwk];
    server = await startServer({
      config: `
[tenants.acme]
jwks_url = "${idp.url}"
jwks_min_refresh_secs = 1
audience = "${AUDIENCE}"
`,
      plugins: { 'acme/chat.wasm': pluginWasm('chat') },
    });
    url = `${server.url}/hubs/acme/chat`;
  });
  after(async () => {
    await server?.stop();
    await idp?.stop();
  });

  test('RS256 and ES256 tokens whose kids the JWKS publishes connect, on every transport', async (t) => {
    assert.equal(await whoami(t, url, tokenFor(rsa1, 'ann')), 'ann');
    assert.equal(await whoami(t, url, tokenFor(ec1, 'ben')), 'ben');
    assert.equal(await whoami(t, url, tokenFor(rsa1, 'cy'), HttpTransportType.ServerSentEvents), 'cy');
    assert.equal(await whoami(t, url, tokenFor(ec1, 'dee'), HttpTransportType.LongPolling), 'dee');
    // The wrong audience is refused even with a published key.
    assert.equal((await negotiateWith(url, tokenFor(rsa1, 'eve', { aud: 'switchboard:other' }))).status, 401);
  });

  test('the provider rotates its key: tokens with the new kid work without a restart', async (t) => {
    // Past jwks_min_refresh_secs since the node's first fetch, so the new kid may fetch.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const before = idp.state.fetches;
    idp.state.keys = [rsa2.jwk, ec1.jwk];
    assert.equal(await whoami(t, url, tokenFor(rsa2, 'fay')), 'fay');
    assert.equal(idp.state.fetches, before + 1, 'one fetch for the new kid');
    // Further tokens with the new kid use the cache.
    assert.equal(await whoami(t, url, tokenFor(rsa2, 'gus'), HttpTransportType.LongPolling), 'gus');
    assert.equal(idp.state.fetches, before + 1, 'the new key is cached');
    // A token signed by another key under the published kid is refused.
    assert.equal((await negotiateWith(url, tokenFor(stranger, 'mallory'))).status, 401);
  });

  test('an unknown kid is refused with a 401 that names it; fetches for unknown kids are rate limited', async () => {
    const unknown = tokenFor(rsa1, 'hal', { kid: 'not-published' });
    const { status, wwwAuthenticate } = await negotiateWith(url, unknown);
    assert.equal(status, 401);
    assert.match(wwwAuthenticate, /^Bearer error="invalid_token", error_description="the signature key was not found \(kid 'not-published'\)"$/);
    const connection = buildConnection(url, { token: unknown, logLevel: LogLevel.None });
    await assert.rejects(withTimeout(connection.start(), WAIT_MS, 'start'), /401|Unauthorized/);

    // A burst of made-up kids: the node fetches at most once per jwks_min_refresh_secs (1 s).
    const before = idp.state.fetches;
    const started = Date.now();
    const burst = await Promise.all(
      Array.from({ length: 30 }, (_, i) => negotiateWith(url, tokenFor(rsa1, 'hal', { kid: `made-up-${i}` }))),
    );
    const elapsedSecs = (Date.now() - started) / 1000;
    assert.ok(burst.every((r) => r.status === 401), JSON.stringify(burst.map((r) => r.status)));
    const fetched = idp.state.fetches - before;
    assert.ok(fetched <= Math.ceil(elapsedSecs) + 1, `${fetched} fetches for 30 unknown kids in ${elapsedSecs} s`);
  });

  test('with the provider down, the cached keys keep working and the node keeps serving', async (t) => {
    await idp.stop();
    // Past the rate limit, so an unknown kid does try (and fail) to fetch.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const refused = await negotiateWith(url, tokenFor(rsa1, 'ivy', { kid: 'while-down' }));
    assert.equal(refused.status, 401);
    await server.waitForLog(/JWKS fetch failed; the cached keys stay in use/, WAIT_MS * 2);
    assert.equal(await whoami(t, url, tokenFor(rsa2, 'jo')), 'jo');
    assert.equal(await whoami(t, url, tokenFor(ec1, 'kim'), HttpTransportType.ServerSentEvents), 'kim');
    assert.ok(server.running());
  });
});

/** Runs the CLI; resolves with `{code, stdout, stderr}`. */
function cli(args) {
  return new Promise((resolve) => {
    execFile(SWITCHBOARD_BIN, args, { timeout: 15_000, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) =>
      resolve({ code: err ? err.code : 0, stdout, stderr }),
    );
  });
}

test('the admin API refuses a tenant with a jwks_url or key files: they belong in the config file', async (t) => {
  const server = await startServer({ config: ADMIN_SECTION });
  t.after(() => server.stop());
  for (const [field, value, says] of [
    ['jwks_url', 'https://idp.example/.well-known/jwks.json', /jwks_url is set in the config file/],
    ['public_keys', ['keys/idp.pem'], /public_keys and jwks_file name files on the node/],
    ['jwks_file', 'keys/jwks.json', /public_keys and jwks_file name files on the node/],
  ]) {
    const refused = await admin(server, 'POST', '/tenants', {
      body: { name: 'issued', audience: AUDIENCE, [field]: value },
    });
    assert.equal(refused.status, 400, field);
    assert.match(refused.body.message, says, field);
  }
  const listed = await admin(server, 'GET', '/tenants');
  assert.ok(!JSON.stringify(listed.body).includes('issued'), 'no tenant was created');
});

test('a plain-http jwks_url to a host that is not loopback is refused at config load', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-jwks-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'switchboard.toml');
  await writeFile(file, '[tenants.acme]\naudience = "a"\njwks_url = "http://idp.example/jwks"\n');
  const refused = await cli(['check-config', file]);
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(refused.stderr, /switchboard\.toml:3:1: tenant 'acme': jwks_url: .*plain http.*jwks_allow_http = true/);
  await writeFile(file, '[tenants.acme]\naudience = "a"\njwks_url = "http://idp.example/jwks"\njwks_allow_http = true\n');
  const allowed = await cli(['check-config', file]);
  assert.equal(allowed.code, 0, allowed.stderr);
});
