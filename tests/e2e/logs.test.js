// Tokens never appear in the server's logs, even at trace level: client tokens in the
// `access_token` query (negotiate, WebSocket, Server-Sent Events, long polling) and in the
// Authorization header, rejected tokens, API keys and API tokens of the REST API. The server
// runs with RUST_LOG at trace for itself and the HTTP and WebSocket stacks, and its whole
// output is searched for each secret (and for each token's signature on its own).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { connect, invoke, WAIT_MS } from './lib/client.js';
import { hs256 } from './lib/jwt.js';
import { startNats } from './lib/nats.js';
import { parsePrometheus, select } from './lib/prometheus.js';
import { RS } from './lib/raw.js';
import { hubUrl, mintToken, pluginWasm, startServer, withTimeout } from './lib/server.js';

const SIGNING = 'logs-signing-secret-0123456789';
const API_KEY = 'logs-api-key-0123456789abcdef';
const CONFIG = `
[tenants.logs]
signing_keys = ["${SIGNING}"]
api_keys = ["${API_KEY}"]
`;

// Everything at trace except the compiler's own chatter (plugin compilation), which holds
// no request data.
const RUST_LOG = [
  'trace',
  'cranelift_codegen=info',
  'cranelift_frontend=info',
  'regalloc2=info',
  'wasmtime_internal_cranelift=info',
  'wasmtime_cranelift=info',
  'wasmtime_internal_environ=info',
  'wasmtime_environ=info',
  'wasmparser=info',
  'wasmtime_internal_wasm_encoder=info',
].join(',');

let server;
before(async () => {
  server = await startServer({
    config: CONFIG,
    plugins: { 'logs/testhub.wasm': pluginWasm('testhub') },
    env: { RUST_LOG },
  });
});
after(() => server?.stop());

async function post(url, headers = {}, body = '') {
  const r = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(WAIT_MS) });
  return { status: r.status, text: await r.text() };
}

describe('tokens in logs', { timeout: 60_000 }, () => {
  test('no token, key or signature appears in trace-level output', async (t) => {
    const url = hubUrl(server, 'logs', 'testhub');
    const q = (token) => `access_token=${encodeURIComponent(token)}`;
    const secrets = [];

    // 1. The official client: the token in the Authorization header.
    const headerToken = await mintToken({ tenant: 'logs', user: 'header-user', config: server.configPath });
    secrets.push(headerToken);
    const official = await connect(t, url, { token: headerToken });
    assert.equal(await invoke(official, 'echo', 'header'), 'header');

    // 2. The access_token query on negotiate and on the WebSocket, as browsers send it.
    const queryToken = await mintToken({ tenant: 'logs', user: 'query-user', config: server.configPath });
    secrets.push(queryToken);
    const negotiated = await post(`${url}/negotiate?negotiateVersion=1&${q(queryToken)}`);
    assert.equal(negotiated.status, 200, negotiated.text);
    const { connectionToken, connectionId } = JSON.parse(negotiated.text);
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}?id=${connectionToken}&${q(queryToken)}`);
    t.after(() => ws.close());
    const records = [];
    let wake = () => {};
    ws.on('message', (data) => {
      records.push(...data.toString('utf8').split(RS).filter(Boolean).map((r) => JSON.parse(r)));
      wake();
    });
    await withTimeout(new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)), WAIT_MS, 'open');
    const nextRecord = (pred) =>
      withTimeout(
        new Promise((resolve) => {
          const check = () => {
            const hit = records.find(pred);
            if (hit) resolve(hit);
          };
          wake = check;
          check();
        }),
        WAIT_MS,
        'a record',
      );
    ws.send(`{"protocol":"json","version":1}${RS}`);
    await nextRecord((r) => Object.keys(r).length === 0);
    ws.send(JSON.stringify({ type: 1, invocationId: '1', target: 'context', arguments: [] }) + RS);
    const completion = await nextRecord((r) => r.type === 3 && r.invocationId === '1');
    assert.equal(completion.result.userId, 'query-user');

    // 3. Long polling and Server-Sent Events with the token in the query.
    const lpToken = await mintToken({ tenant: 'logs', user: 'lp-user', config: server.configPath });
    secrets.push(lpToken);
    const lp = JSON.parse((await post(`${url}/negotiate?negotiateVersion=1&${q(lpToken)}`)).text);
    const lpUrl = `${url}?id=${lp.connectionToken}&${q(lpToken)}`;
    // The first poll opens the connection (and answers at once), then the handshake.
    const opened = await fetch(lpUrl, { signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(opened.status, 200);
    await opened.text();
    assert.equal((await post(lpUrl, { 'content-type': 'text/plain' }, `{"protocol":"json","version":1}${RS}`)).status, 200);
    const polled = await fetch(lpUrl, { signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(polled.status, 200);
    assert.equal(await polled.text(), `{}${RS}`, 'the handshake response');
    const sse = JSON.parse((await post(`${url}/negotiate?negotiateVersion=1&${q(lpToken)}`)).text);
    const stream = await fetch(`${url}?id=${sse.connectionToken}&${q(lpToken)}`, {
      headers: { accept: 'text/event-stream' },
      signal: AbortSignal.timeout(WAIT_MS),
    });
    assert.equal(stream.status, 200);
    await stream.body.cancel();
    await fetch(lpUrl, { method: 'DELETE', signal: AbortSignal.timeout(WAIT_MS) });

    // 4. Tokens that are refused: forged, expired, and garbage.
    const forged = hs256({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 600 }, 'not-the-key-0123456789');
    const expired = hs256({ sub: 'late', exp: Math.floor(Date.now() / 1000) - 600 }, SIGNING);
    const garbage = 'garbage-token-that-must-not-be-logged-0123456789';
    secrets.push(forged, expired, garbage);
    for (const bad of [forged, expired, garbage]) {
      assert.equal((await post(`${url}/negotiate?negotiateVersion=1&${q(bad)}`)).status, 401);
      assert.equal((await post(`${url}/negotiate?negotiateVersion=1`, { authorization: `Bearer ${bad}` })).status, 401);
    }

    // 5. The REST API: an API key header, an API token, and a wrong key.
    const api = `${server.url}/api/v1/tenants/logs/hubs/testhub/:send`;
    const payload = JSON.stringify({ target: 'message', arguments: ['x'] });
    const json = { 'content-type': 'application/json' };
    assert.equal((await post(api, { ...json, 'x-api-key': API_KEY }, payload)).status, 202);
    const apiToken = hs256({ aud: api, exp: Math.floor(Date.now() / 1000) + 300 }, API_KEY);
    secrets.push(apiToken, API_KEY);
    assert.equal((await post(api, { ...json, authorization: `Bearer ${apiToken}` }, payload)).status, 202);
    const wrongKey = 'wrong-api-key-that-must-not-be-logged-0123';
    secrets.push(wrongKey);
    assert.equal((await post(api, { ...json, 'x-api-key': wrongKey }, payload)).status, 401);

    await withTimeout(official.stop(), WAIT_MS, 'stop');
    ws.close();
    // The server has logged the end of the connections it served.
    await server.waitForLog(/disconnected/);

    const output = server.log();
    assert.ok(output.length > 10_000, `trace logging was on (${output.length} bytes of output)`);
    assert.match(output, /TRACE/, 'trace-level lines were written');
    // The search does see request data: the connection's id (not a secret) is logged.
    assert.ok(output.includes(connectionId), 'the connection id appears in the log');
    for (const secret of secrets) {
      const signature = secret.split('.').at(-1);
      for (const needle of new Set([secret, encodeURIComponent(secret), signature])) {
        const at = output.indexOf(needle);
        assert.equal(at, -1, `a secret appears in the log: ...${output.slice(Math.max(0, at - 200), at + 50)}...`);
      }
    }
    assert.ok(!output.includes(SIGNING), 'the signing key');
  });
});

describe('tokens in logs: a cluster forwarding requests', { timeout: 90_000 }, () => {
  let nats;
  let nodes = [];
  before(async () => {
    nats = await startNats();
    const config = `${CONFIG}\n[nats]\nregistry_ttl_secs = 3\n`;
    nodes = await Promise.all(
      [0, 1].map(() =>
        startServer({ config, plugins: { 'logs/testhub.wasm': pluginWasm('testhub') }, args: ['--nats', nats.url], env: { RUST_LOG } }),
      ),
    );
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await nats?.close();
  });

  test('a long-polling connection negotiated on one node and served through the other', async () => {
    const [owner, other] = nodes;
    const token = await mintToken({ tenant: 'logs', user: 'forwarded-user', config: owner.configPath });
    const q = `access_token=${encodeURIComponent(token)}`;
    const lp = JSON.parse((await post(`${hubUrl(owner, 'logs', 'testhub')}/negotiate?negotiateVersion=1&${q}`)).text);
    const viaOther = `${hubUrl(other, 'logs', 'testhub')}?id=${encodeURIComponent(lp.connectionToken)}&${q}`;
    // The other node learns where the connection lives from the cluster registry: retry
    // (bounded) until it forwards the first poll.
    let opened;
    for (let attempt = 0; attempt < 50; attempt++) {
      opened = await fetch(viaOther, { signal: AbortSignal.timeout(WAIT_MS) });
      await opened.text();
      if (opened.status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(opened.status, 200, 'the first poll, forwarded');
    assert.equal((await post(viaOther, { 'content-type': 'text/plain' }, `{"protocol":"json","version":1}${RS}`)).status, 200);
    const polled = await fetch(viaOther, { signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(await polled.text(), `{}${RS}`, 'the handshake response, forwarded');
    await fetch(viaOther, { method: 'DELETE', signal: AbortSignal.timeout(WAIT_MS) });
    await owner.waitForLog(/disconnected/);
    const metrics = parsePrometheus(await (await fetch(`${other.url}/metrics`)).text());
    const forwarded = select(metrics, 'switchboard_transport_forwarded_total').reduce((n, x) => n + x.value, 0);
    assert.ok(forwarded >= 3, `the other node forwarded the requests (${forwarded})`);

    for (const node of nodes) {
      const output = node.log();
      assert.match(output, /TRACE/);
      for (const needle of [token, encodeURIComponent(token), token.split('.').at(-1)]) {
        const at = output.indexOf(needle);
        assert.equal(at, -1, `the token appears in a node's log: ...${output.slice(Math.max(0, at - 200), at + 50)}...`);
      }
    }
  });
});
