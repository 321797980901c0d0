// The documented load balancer setups in front of a cluster: Debian's haproxy and nginx
// (lib/lb.js writes their configs as docs/cluster.md shows them), one nats-server with JetStream
// and three `switchboard serve --nats` nodes. Through each balancer: official clients on every
// transport and protocol talk across nodes while their requests are spread over all three; a
// connect refused by a dead node is retried on another one (the official client makes a single
// attempt to resume, so the balancer must retry); and a balancer restart, which drops every
// socket through it, is survived by `withStatefulReconnect()` clients on their own connection
// with every acknowledged message delivered once, in order.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';
import { inbox, invoke, WAIT_MS } from './lib/client.js';
import { clusterConfig, metricSum, startCluster } from './lib/cluster.js';
import { BALANCERS } from './lib/lb.js';
import { unique, until, withTimeout } from './lib/server.js';
import { connectHub, MATRIX, transportOf } from './lib/transports.js';

const MESSAGE = 'addNewMessageToPage';
const KEY = 'balancers-api-key-0123456789';
const CONFIG = clusterConfig({ signing: false, apiKeys: [KEY] });

let cluster;
before(async () => {
  cluster = await startCluster({ size: 3, config: CONFIG });
});
after(async () => {
  await cluster?.close();
});

/** POSTs a numbered message to group `group` through `node`'s REST API; resolves with the status. */
async function restSend(node, group, n) {
  const response = await fetch(`${node.url}/api/v1/tenants/demo/hubs/chat/groups/${group}/:send`, {
    method: 'POST',
    headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
    body: JSON.stringify({ target: MESSAGE, arguments: ['rest', n] }),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  await response.arrayBuffer();
  return response.status;
}

/** The nodes (0, 1, 2 in the cluster's order) a balancer's log says it sent requests to. */
function nodesUsed(lb) {
  const used = new Set();
  if (lb.name === 'haproxy') {
    for (const m of lb.output().matchAll(/ nodes\/node(\d+) /g)) used.add(Number(m[1]));
  } else {
    const index = new Map(cluster.nodes.map((node, i) => [`127.0.0.1:${node.port}`, i]));
    for (const m of lb.output().matchAll(/upstream=([\d.:]+)\s*$/gm)) if (index.has(m[1])) used.add(index.get(m[1]));
  }
  return used;
}

for (const [name, startBalancer] of Object.entries(BALANCERS)) {
  describe(name, () => {
    let lb;
    before(async () => {
      lb = await startBalancer(cluster.nodes);
    });
    after(async () => {
      await lb?.close();
    });

    test(`every transport and protocol through ${name}: requests spread over the nodes, a chat across them`, { timeout: 60_000 }, async (t) => {
      const forwardedBefore = await metricSum(cluster.nodes, 'switchboard_transport_forwarded_total');
      const group = unique('lb-chat-');
      const clients = [];
      for (const { transport, protocol } of MATRIX) {
        const connection = await connectHub(t, `${lb.url}/hubs/demo/chat`, { transport, protocol });
        assert.equal(transportOf(connection), transport);
        clients.push({ connection, box: inbox(connection, MESSAGE), label: `${transport}/${protocol}` });
        await invoke(connection, 'joinGroup', group);
      }
      for (const { connection, label } of clients) await invoke(connection, 'sendToGroup', group, label, `from ${label}`);
      for (const { box, label } of clients) {
        for (const from of clients) await box.next((args) => args[1] === `from ${from.label}`);
        assert.equal(box.messages.length, clients.length, `${label} got each message once`);
      }
      for (const { connection, label } of clients) {
        assert.deepEqual(await invoke(connection, 'echo', { label, n: [1, 2] }), { label, n: [1, 2] });
      }
      // Round robin with no stickiness: negotiate and the transport requests of one connection
      // land on different nodes, which forward them to the node holding it.
      assert.deepEqual([...nodesUsed(lb)].sort(), [0, 1, 2], `${name} used every node`);
      const forwarded = (await metricSum(cluster.nodes, 'switchboard_transport_forwarded_total')) - forwardedBefore;
      assert.ok(forwarded >= clients.length, `requests forwarded between nodes: ${forwarded}`);
    });

    test(`${name} retries a connect refused by a dead node on another node`, { timeout: 30_000 }, async () => {
      // A node that dies: it answers everything (health checks included) until the balancer
      // counts it healthy, then stops listening; the requests right after it are refused there
      // before any health check could take it out.
      const doomed = http.createServer((_req, res) => res.end('ok'));
      await new Promise((resolve) => doomed.listen(0, '127.0.0.1', resolve));
      const dead = { port: doomed.address().port };
      const withDead = await startBalancer([dead, ...cluster.nodes]);
      try {
        await sleep(1_200);
        doomed.closeAllConnections();
        await new Promise((resolve) => doomed.close(resolve));
        const statuses = [];
        for (let i = 0; i < 12; i++) {
          const r = await fetch(`${withDead.url}/hubs/demo/chat/negotiate?negotiateVersion=1`, {
            method: 'POST',
            signal: AbortSignal.timeout(WAIT_MS),
          });
          await r.arrayBuffer();
          statuses.push(r.status);
        }
        assert.deepEqual(statuses, Array(12).fill(200), 'every request answered by a live node');
        const retried =
          name === 'haproxy'
            ? /\d+\/\d+\/\d+\/\d+\/\+[1-9]/.test(withDead.output())
            : withDead.output().includes(`upstream=127.0.0.1:${dead.port}, `);
        assert.ok(retried, `${name} logged a retry on another node:\n${withDead.output()}`);
      } finally {
        doomed.close();
        await withDead.close();
      }
    });

    test(`${name} restarted twice: stateful-reconnect clients keep their connection, every acknowledged message once and in order`, { timeout: 90_000 }, async (t) => {
      const CLIENTS = 30;
      const PER_CLIENT = 60;
      const clients = [];
      for (let i = 0; i < CLIENTS; i++) {
        const logs = [];
        let builder = new HubConnectionBuilder()
          .withUrl(`${lb.url}/hubs/demo/chat`, { transport: HttpTransportType.WebSockets })
          .withStatefulReconnect()
          .withAutomaticReconnect([0, 200, 500])
          // Its connection events, for the failure message (bounded).
          .configureLogging({ log: (level, message) => level >= LogLevel.Debug && logs.length < 200 && logs.push(message) });
        if (i % 2 === 1) builder = builder.withHubProtocol(new MessagePackHubProtocol());
        const connection = builder.build();
        const client = { connection, group: unique(`lb-resume-${i}-`), received: [], reconnecting: 0, logs };
        connection.onreconnecting(() => client.reconnecting++);
        connection.on(MESSAGE, (_src, n) => {
          client.received.push(Number(n));
        });
        t.after(() => withTimeout(connection.stop(), WAIT_MS, 'stop a stateful client'));
        clients.push(client);
      }
      await withTimeout(Promise.all(clients.map((c) => c.connection.start())), 3 * WAIT_MS, 'start the clients');
      for (const c of clients) {
        c.id = c.connection.connectionId;
        await invoke(c.connection, 'joinGroup', c.group);
      }
      const resumesBefore = await metricSum(cluster.nodes, 'switchboard_stateful_reconnects_total');

      // A numbered stream per client through the REST API, each send acknowledged (202) before
      // the next; one node per group keeps the stream in the sender's order.
      let slowest = 0;
      const pumps = clients.map(async (c, i) => {
        const node = cluster.nodes[i % cluster.nodes.length];
        for (let n = 1; n <= PER_CLIENT; n++) {
          assert.equal(await restSend(node, c.group, n), 202, `send ${n} to ${c.group}`);
          if (i === 0) slowest = n;
          await sleep(20);
        }
      });
      for (const at of [PER_CLIENT / 3, (2 * PER_CLIENT) / 3]) {
        await until(() => slowest >= at, `${at} messages sent`);
        await lb.restart();
      }
      await withTimeout(Promise.all(pumps), 30_000, 'the REST senders');
      await until(
        () => clients.every((c) => c.received.length >= PER_CLIENT),
        `every client's ${PER_CLIENT} messages; short: ${JSON.stringify(
          clients
            .filter((c) => c.received.length < PER_CLIENT)
            .map((c) => ({ got: c.received.length, reconnecting: c.reconnecting, logs: c.logs.slice(c.logs.findIndex((l) => l.includes('1006')) - 3).slice(0, 14) })),
        )}`,
      );
      for (const c of clients) await invoke(c.connection, 'echo', 'sync');

      const expected = Array.from({ length: PER_CLIENT }, (_, k) => k + 1);
      for (const [i, c] of clients.entries()) {
        assert.deepEqual(c.received, expected, `client ${i}: each message once, in order`);
        assert.equal(c.connection.connectionId, c.id, `client ${i} kept its connection`);
        assert.equal(c.reconnecting, 0, `client ${i}: every resume succeeded (no onreconnecting)`);
      }
      // Both restarts dropped every socket: each client resumed twice.
      const resumes = (await metricSum(cluster.nodes, 'switchboard_stateful_reconnects_total')) - resumesBefore;
      assert.ok(resumes >= 2 * CLIENTS, `resumes counted by the nodes: ${resumes}`);
    });
  });
}
