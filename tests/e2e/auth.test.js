// Client tokens: HS256 JWTs from `switchboard token`, checked at negotiate against the
// tenant's signing keys; the user id is the token's `sub`.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { buildConnection, connect, invoke, LogLevel, WAIT_MS } from './lib/client.js';
import { negotiate } from './lib/raw.js';
import { hubUrl, mintToken, pluginWasm, startChatServer, startServer, unique, withTimeout } from './lib/server.js';

const ACME_SECRET = 'acme-secret';
const ACME_CONFIG = `
[tenants.demo]
allow_anonymous = true

[tenants.acme]
allow_anonymous = false
signing_keys = ["${ACME_SECRET}"]
`;

/** The parts of a JWT, with header and claims decoded. */
function decode(token) {
  const [header, claims, signature] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString('utf8')),
    claims: JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')),
    signature,
  };
}

/** Signs `claims` as an HS256 JWT with `secret`. */
function sign(claims, secret) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** Asserts that negotiate with `token` (or none) is refused with 401, and that the official client cannot start. */
async function expectUnauthorized(url, token) {
  const { status } = await negotiate(url, { token });
  assert.equal(status, 401, `negotiate ${url} with ${token === undefined ? 'no token' : 'a bad token'}`);
  const connection = buildConnection(url, { token, logLevel: LogLevel.None });
  await assert.rejects(withTimeout(connection.start(), WAIT_MS, 'start'), /401/);
}

describe('tenant demo (built-in config, anonymous allowed)', { timeout: 60_000 }, () => {
  let server;
  let chat;
  before(async () => ({ server, chat } = await startChatServer()));
  after(() => server?.stop());

  test('switchboard token prints an HS256 JWT whose sub is the user', async () => {
    const { header, claims } = decode(await mintToken({ user: 'erin' }));
    assert.equal(header.alg, 'HS256');
    assert.equal(claims.sub, 'erin');
  });

  test('--ttl-secs sets the expiry', async () => {
    const now = Math.floor(Date.now() / 1000);
    const { claims } = decode(await mintToken({ user: 'erin', ttlSecs: 120 }));
    assert.equal(typeof claims.exp, 'number');
    assert.ok(Math.abs(claims.exp - (now + 120)) <= 30, `exp ${claims.exp} is not about now + 120 (${now + 120})`);
  });

  test('a token gives the connection its user id', async (t) => {
    const user = unique('frank-');
    const connection = await connect(t, chat, { token: await mintToken({ user }) });
    const me = await invoke(connection, 'whoami');
    assert.equal(me.userId, user);
    assert.equal(me.connectionId, connection.connectionId);
  });

  test('anonymous connections are allowed', async (t) => {
    const connection = await connect(t, chat);
    assert.equal((await invoke(connection, 'whoami')).userId ?? null, null);
  });

  test('a token signed with the wrong key is refused with 401', async () => {
    const { claims } = decode(await mintToken({ user: 'mallory' }));
    await expectUnauthorized(chat, sign(claims, 'not-the-key'));
  });

  test('a token whose claims were altered is refused with 401', async () => {
    const token = await mintToken({ user: 'mallory' });
    const [header, , signature] = token.split('.');
    const claims = { ...decode(token).claims, sub: 'admin' };
    await expectUnauthorized(chat, `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`);
  });

  test('a token that is not a JWT is refused with 401', async () => {
    await expectUnauthorized(chat, 'not-a-jwt');
  });
});

describe('tenant acme (config file, anonymous not allowed)', { timeout: 60_000 }, () => {
  let server;
  let acmeChat;
  before(async () => {
    // The chat component is installed for acme explicitly, whether or not bundled hubs
    // are offered to every tenant.
    server = await startServer({ config: ACME_CONFIG, plugins: { 'acme/chat.wasm': pluginWasm('chat') } });
    acmeChat = hubUrl(server, 'acme', 'chat');
  });
  after(() => server?.stop());

  test('negotiate without a token is refused with 401', async () => {
    await expectUnauthorized(acmeChat, undefined);
  });

  test('a token from `switchboard token --tenant acme --config FILE` connects as its user', async (t) => {
    const user = unique('grace-');
    const token = await mintToken({ tenant: 'acme', user, config: server.configPath });
    assert.equal(decode(token).claims.sub, user);
    const connection = await connect(t, acmeChat, { token });
    const me = await invoke(connection, 'whoami');
    assert.equal(me.userId, user);
    assert.equal(me.connectionId, connection.connectionId);
    assert.equal(await invoke(connection, 'echo', 'acme works'), 'acme works');
  });

  test('a token signed with another key (the built-in demo key) is refused with 401', async () => {
    await expectUnauthorized(acmeChat, await mintToken({ user: 'heidi' }));
  });

  test('an expired token signed with the right key is refused with 401', async () => {
    const { claims } = decode(await mintToken({ tenant: 'acme', user: 'ivan', config: server.configPath }));
    const now = Math.floor(Date.now() / 1000);
    const expired = { ...claims, iat: now - 7200, exp: now - 3600 };
    if ('nbf' in claims) expired.nbf = now - 7200;
    await expectUnauthorized(acmeChat, sign(expired, ACME_SECRET));
  });

  test('tenant demo in the same config still allows anonymous connections', async (t) => {
    const connection = await connect(t, hubUrl(server, 'demo', 'chat'));
    assert.equal(await invoke(connection, 'echo', 'demo works'), 'demo works');
  });
});
