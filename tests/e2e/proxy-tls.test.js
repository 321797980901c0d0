// TLS at the load balancer: haproxy and nginx (Debian's) terminate TLS with a certificate from a
// throwaway CA and pass plain HTTP to a node; the official client (trusting the CA through
// NODE_EXTRA_CA_CERTS) connects over wss:// and https:// on every transport through each.

import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeCa, startClient } from './lib/certs.js';
import { BALANCERS } from './lib/lb.js';
import { startServer, withTimeout } from './lib/server.js';

describe('TLS at the load balancer', () => {
  let ca;
  let tls;
  let node;

  before(async () => {
    ca = await makeCa();
    const leaf = await ca.leaf('proxy');
    // haproxy takes the chain and key in one file.
    const pem = path.join(ca.dir, 'proxy.pem');
    await writeFile(pem, Buffer.concat([await readFile(leaf.cert), await readFile(leaf.key)]));
    tls = { ...leaf, pem };
    node = await startServer();
  });
  after(async () => {
    await node?.stop();
    await ca?.remove();
  });

  for (const [name, start] of Object.entries(BALANCERS)) {
    test(`${name} terminates TLS for WebSockets, SSE and long polling`, async (t) => {
      const balancer = await start([node], { tls });
      t.after(() => balancer.close());
      assert.match(balancer.url, /^https:/);
      const client = startClient(`${balancer.url}/hubs/demo/chat`, ca.caCert);
      t.after(() => client.child.kill());
      await client.next((l) => l.ready, 'connections on every transport');
      client.child.stdin.write('go\n');
      await withTimeout(client.exited, 15_000, 'client to finish');
      const echoed = client.lines.filter((l) => l.echo).map((l) => [l.phase, l.t, l.echo === l.t]);
      assert.deepEqual(echoed, [
        ['before', 'WebSockets', true],
        ['before', 'ServerSentEvents', true],
        ['before', 'LongPolling', true],
        ['after', 'WebSockets', true],
        ['after', 'ServerSentEvents', true],
        ['after', 'LongPolling', true],
      ], client.stderr());
    });
  }
});
