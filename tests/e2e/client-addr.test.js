// The client's address behind a proxy: taken from X-Forwarded-For only when the socket's peer
// is in `trusted_proxies`. Real haproxy and nginx (Debian's, set up as docs/cluster.md shows, which
// appends the client's address to X-Forwarded-For) in front of a node; the clients connect from
// other loopback addresses (127.0.0.2, 127.0.0.3: all of 127/8 is the loopback), so the node
// can tell a direct client from the proxy (127.0.0.1). Every client sends a spoofed
// X-Forwarded-For; the address the node settled on is in its "connected" log line.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { BALANCERS } from './lib/lb.js';
import { startServer, withTimeout } from './lib/server.js';
import { WAIT_MS } from './lib/client.js';

const RS = '\x1e';
const SPOOFED = '203.0.113.7';

/** POST negotiate from `localAddress` with extra `headers`; resolves with the parsed body. */
function negotiate(base, localAddress, headers) {
  const url = new URL(`${base}/hubs/demo/chat/negotiate?negotiateVersion=1`);
  return withTimeout(
    new Promise((resolve, reject) => {
      const request = http.request(
        url,
        { method: 'POST', localAddress, headers: { 'content-length': '0', ...headers } },
        (response) => {
          let text = '';
          response.on('data', (chunk) => (text += chunk));
          response.on('end', () => {
            if (response.statusCode === 200) resolve(JSON.parse(text));
            else reject(new Error(`negotiate: ${response.statusCode} ${text}`));
          });
        },
      );
      request.on('error', reject);
      request.end();
    }),
    WAIT_MS,
    'negotiate',
  );
}

/**
 * A SignalR connection opened by hand from `localAddress`: negotiate, WebSocket, handshake.
 * Resolves with its connection id once the handshake is answered; the socket closes at `t`'s end.
 */
async function connectFrom(t, base, localAddress, headers = {}) {
  const negotiated = await negotiate(base, localAddress, headers);
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/hubs/demo/chat?id=${negotiated.connectionToken}`, {
    localAddress,
    headers,
  });
  t.after(() => ws.terminate());
  const answered = new Promise((resolve, reject) => {
    ws.once('open', () => ws.send(`{"protocol":"json","version":1}${RS}`));
    ws.once('message', (data) => resolve(data.toString('utf8')));
    ws.once('error', reject);
  });
  assert.equal(await withTimeout(answered, WAIT_MS, 'handshake'), `{}${RS}`);
  return negotiated.connectionId;
}

/** The client_addr of the node's "connected" line for connection `id`. */
async function loggedAddress(node, id) {
  const escaped = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const line = await node.waitForLog(new RegExp(`connected connection=${escaped}\\b[^\\n]*`), WAIT_MS);
  const match = line[0].match(/client_addr=(\S+)/);
  assert.ok(match, `a client_addr in: ${line[0]}`);
  return match[1];
}

describe('the client address', { timeout: 120_000 }, () => {
  let trusting; // trusts 127.0.0.1, where the balancers connect from
  let plain; // trusts nobody
  before(async () => {
    trusting = await startServer({ config: 'trusted_proxies = ["127.0.0.1/32"]\n[tenants.demo]\nallow_anonymous = true\n' });
    plain = await startServer({ config: '[tenants.demo]\nallow_anonymous = true\n' });
  });
  after(async () => {
    await trusting?.stop();
    await plain?.stop();
  });

  test('a direct client is its socket address: its own X-Forwarded-For and Forwarded are not believed', async (t) => {
    const headers = { 'x-forwarded-for': SPOOFED, forwarded: `for=${SPOOFED}` };
    const id = await connectFrom(t, trusting.url, '127.0.0.2', headers);
    assert.equal(await loggedAddress(trusting, id), '127.0.0.2');
  });

  for (const [name, start] of Object.entries(BALANCERS)) {
    test(`through ${name}: the trusted proxy's X-Forwarded-For names the client, not what the client sent`, async (t) => {
      const balancer = await start([trusting]);
      t.after(() => balancer.close());
      const id = await connectFrom(t, balancer.url, '127.0.0.3', { 'x-forwarded-for': SPOOFED });
      assert.equal(await loggedAddress(trusting, id), '127.0.0.3');
      const honest = await connectFrom(t, balancer.url, '127.0.0.4');
      assert.equal(await loggedAddress(trusting, honest), '127.0.0.4');
    });

    test(`through ${name} to a node that trusts no proxy: the proxy's address`, async (t) => {
      const balancer = await start([plain]);
      t.after(() => balancer.close());
      const id = await connectFrom(t, balancer.url, '127.0.0.3', { 'x-forwarded-for': SPOOFED });
      assert.equal(await loggedAddress(plain, id), '127.0.0.1');
    });
  }
});
