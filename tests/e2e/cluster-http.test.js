// A cluster behind a plain round-robin load balancer (no sticky sessions): one nats-server
// with JetStream, three `switchboard serve --nats` nodes, and `lib/balancer.js` sending each
// request to the next node in turn. Negotiate lands on one node and the requests after it
// (the WebSocket upgrade, the SSE stream, each long poll, POST and DELETE) on others; the node
// that gets one forwards it to the node holding the connection. The official client holds a
// whole conversation over every transport and protocol through the balancer.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, inbox, invoke, WAIT_MS } from './lib/client.js';
import { clusterConfig, startCluster } from './lib/cluster.js';
import { hubUrl, mintToken, unique, withTimeout } from './lib/server.js';
import { connectHub, MATRIX, request, transportOf } from './lib/transports.js';
import { parsePrometheus, select } from './lib/prometheus.js';

const MESSAGE = 'addNewMessageToPage';
const CONFIG = clusterConfig();

let cluster;
let nodes = [];
let balancer;
before(async () => ({ nodes, balancer } = cluster = await startCluster({ config: CONFIG, balanced: true })));
after(() => cluster?.close());

const text = (value) => (args) => args[1] === value;
const chatVia = (server) => `${server.url}/hubs/demo/chat`;

/** Requests the nodes forwarded so far, by kind (websocket, sse, poll, send, delete), summed over nodes. */
async function forwarded() {
  const total = {};
  for (const node of nodes) {
    const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(WAIT_MS) })).text();
    for (const s of select(parsePrometheus(text), 'switchboard_transport_forwarded_total')) {
      total[s.labels.kind] = (total[s.labels.kind] ?? 0) + s.value;
    }
  }
  return total;
}

/** The node (index) each request of one connection reached, from the balancer's log. */
function requestsOf(from, to) {
  return balancer.log.slice(from, to).filter((r) => r.url.startsWith('/hubs/demo/chat'));
}

for (const { transport, protocol } of [...MATRIX]) {
  test(`${transport} with ${protocol} through a round-robin balancer: negotiate and transport on different nodes`, { timeout: 60_000 }, async (t) => {
    const user = unique('lb-');
    const token = await mintToken({ user });
    // Senders connect to each node directly, so at least two of them are on another node
    // than the one holding the connection under test.
    const senders = await Promise.all(nodes.map((n) => connect(t, hubUrl(n, 'demo', 'chat'))));

    const forwardedBefore = await forwarded();
    const start = balancer.log.length;
    const connection = await connectHub(t, chatVia(balancer), { transport, protocol, token });
    assert.equal(transportOf(connection), transport);
    const box = inbox(connection, MESSAGE);

    // RPC with a result.
    assert.deepEqual(await invoke(connection, 'echo', { n: [1, 'two'] }), { n: [1, 'two'] });
    assert.deepEqual(await invoke(connection, 'whoami'), { connectionId: connection.connectionId, userId: user });
    // A broadcast it sent reaches it (and the senders on every node).
    const hello = unique('hello-');
    const senderBoxes = senders.map((s) => inbox(s, MESSAGE));
    await invoke(connection, 'send', 'me', hello);
    assert.deepEqual(await box.next(text(hello)), ['me', hello]);
    for (const b of senderBoxes) await b.next(text(hello));
    // A send to its user from every node, in order per sender.
    for (const [i, s] of senders.entries()) {
      await invoke(s, 'sendToUser', user, `from-${i}-a`);
      await invoke(s, 'sendToUser', user, `from-${i}-b`);
    }
    for (let i = 0; i < senders.length; i++) await box.next(text(`from-${i}-b`), 10_000);
    for (let i = 0; i < senders.length; i++) {
      const mine = box.messages.filter((m) => m[1].startsWith(`from-${i}-`)).map((m) => m[1]);
      assert.deepEqual(mine, [`from-${i}-a`, `from-${i}-b`], 'once each, in order');
    }
    // A group it joined through the balancer, sent to from another node.
    const group = unique('g-');
    await invoke(connection, 'joinGroup', group);
    await invoke(senders[1], 'sendToGroup', group, 's1', 'to the group');
    assert.deepEqual(await box.next(text('to the group'), 10_000), ['s1', 'to the group']);

    await withTimeout(connection.stop(), WAIT_MS, 'stop');
    const requests = requestsOf(start, balancer.log.length);
    const negotiate = requests.find((r) => r.url.includes('/negotiate'));
    const transportRequests = requests.filter((r) => r.url.includes('id='));
    assert.ok(negotiate, 'negotiated through the balancer');
    assert.ok(transportRequests.length >= 1);
    assert.notEqual(transportRequests[0].node, negotiate.node, 'the transport started on another node than negotiate');
    // The nodes forwarded the transport request (and, without WebSockets, sends and polls).
    const forwardedAfter = await forwarded();
    const grew = (kind) => (forwardedAfter[kind] ?? 0) > (forwardedBefore[kind] ?? 0);
    const streamKind = { WebSockets: 'websocket', ServerSentEvents: 'sse', LongPolling: 'poll' }[transport];
    assert.ok(grew(streamKind), `${streamKind} requests forwarded: ${JSON.stringify(forwardedAfter)}`);
    if (transport !== 'WebSockets') {
      assert.ok(grew('send'), 'POSTs forwarded');
      // Sends (POST), polls and the DELETE spread over every node.
      assert.equal(new Set(transportRequests.map((r) => r.node)).size, nodes.length, JSON.stringify(transportRequests));
    }
  });
}

describe('requests for connections that do not exist', { timeout: 30_000 }, () => {
  test('an unknown id is a 404 on every node, whether or not its tag names a live node', async (t) => {
    const probe = await connect(t, hubUrl(nodes[0], 'demo', 'chat'));
    const liveNode = probe.connectionId.split('.').at(-1);
    assert.match(liveNode, /^[0-9a-f]{16}$/, 'connection ids name their node');
    for (const id of [`AAAAAAAAAAAAAAAAAAAAAA.${liveNode}`, 'AAAAAAAAAAAAAAAAAAAAAA.0123456789abcdef', 'no-tag']) {
      for (let i = 0; i < nodes.length; i++) {
        const url = `${chatVia(balancer)}?id=${id}`;
        assert.equal((await request('GET', url)).status, 404, `poll ${id}`);
        assert.equal((await request('POST', url, { body: 'x' })).status, 404, `send ${id}`);
        assert.equal((await request('DELETE', url)).status, 404, `delete ${id}`);
        const sse = await request('GET', url, { headers: { accept: 'text/event-stream' } });
        assert.equal(sse.status, 404, `sse ${id}`);
      }
    }
  });

  test('a forwarded request is never forwarded again', async () => {
    // A request that says it was forwarded already is handled where it lands: the id of a
    // connection-to-be on node 1 is unknown on node 2.
    const { body } = await request('POST', `${chatVia(nodes[0])}/negotiate?negotiateVersion=1`);
    const { connectionToken } = JSON.parse(body.toString());
    const url = `${chatVia(nodes[1])}?id=${connectionToken}`;
    assert.equal((await request('GET', url, { headers: { 'sb-forwarded': 'x' } })).status, 404);
    // Without the header node 2 forwards it, and the first poll starts the connection on node 1.
    const first = await request('GET', url);
    assert.equal(first.status, 200);
    assert.equal((await request('DELETE', `${chatVia(nodes[2])}?id=${connectionToken}`)).status, 202);
  });
});
