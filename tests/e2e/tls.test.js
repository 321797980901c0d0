// TLS at the node: `serve --tls-cert/--tls-key` with a certificate from a throwaway CA. The
// official client (in a child process that trusts the CA through NODE_EXTRA_CA_CERTS) connects
// over wss:// and https:// on every transport; the certificate files are replaced while those
// connections are open, and new connections get the new certificate while the open ones carry
// on; the CLI sends through https:// with --ca-cert.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeCa, servedName, startClient } from './lib/certs.js';
import { startServer, SWITCHBOARD_BIN, withTimeout } from './lib/server.js';

const STEP_MS = 15_000;

function cli(args) {
  return new Promise((resolve) => {
    execFile(SWITCHBOARD_BIN, args, { timeout: STEP_MS }, (err, stdout, stderr) =>
      resolve({ code: err ? err.code ?? 1 : 0, stdout, stderr }),
    );
  });
}

describe('TLS at the node', () => {
  let ca;
  let first;
  let second;
  let live;
  let server;

  before(async () => {
    ca = await makeCa();
    first = await ca.leaf('first');
    second = await ca.leaf('second');
    live = { cert: path.join(ca.dir, 'live.crt'), key: path.join(ca.dir, 'live.key') };
    await copyFile(first.cert, live.cert);
    await copyFile(first.key, live.key);
    server = await startServer({ args: ['--tls-cert', live.cert, '--tls-key', live.key] });
  });
  after(async () => {
    await server?.stop();
    await ca?.remove();
  });

  test('a plain-HTTP request to a TLS node gets no answer, and the node keeps serving', async () => {
    await assert.rejects(fetch(`http://127.0.0.1:${server.port}/healthz`, { signal: AbortSignal.timeout(5_000) }));
    assert.equal(await servedName(server.port, [await readCa(ca)]), 'first');
  });

  test('the official client over wss and https keeps its connections through a certificate rotation', async (t) => {
    const client = startClient(`https://127.0.0.1:${server.port}/hubs/demo/chat`, ca.caCert);
    t.after(() => client.child.kill());
    await client.next((l) => l.ready, 'connections on every transport');
    const before = client.lines.filter((l) => l.phase === 'before');
    assert.deepEqual(before.map((l) => [l.t, l.echo]), [
      ['WebSockets', 'WebSockets'],
      ['ServerSentEvents', 'ServerSentEvents'],
      ['LongPolling', 'LongPolling'],
    ]);

    // Replace the files as a certificate manager does: write aside, rename over.
    await copyFile(second.key, `${live.key}.new`);
    await copyFile(second.cert, `${live.cert}.new`);
    await rename(`${live.key}.new`, live.key);
    await rename(`${live.cert}.new`, live.cert);
    await server.waitForLog(/TLS certificate reloaded/, 10_000);
    const caPem = await readCa(ca);
    assert.equal(await servedName(server.port, [caPem]), 'second', 'a new connection gets the new certificate');

    client.child.stdin.write('go\n');
    await withTimeout(client.exited, STEP_MS, 'client to finish');
    const afterLines = client.lines.filter((l) => l.phase === 'after');
    assert.equal(afterLines.length, 3, client.stderr());
    for (const line of afterLines) {
      const was = before.find((b) => b.t === line.t);
      assert.equal(line.id, was.id, `${line.t} kept its connection`);
      assert.equal(line.echo, line.t);
    }
    assert.equal(client.lines.filter((l) => l.closed).length, 3, 'each closed once, by stop()');
  });

  test('a certificate that does not load leaves the previous one serving', async () => {
    const caPem = await readCa(ca);
    const current = await servedName(server.port, [caPem]);
    await copyFile(first.key, `${live.key}.new`); // the key of another certificate
    await rename(`${live.key}.new`, live.key);
    await server.waitForLog(/TLS certificate changed but does not load/, 10_000);
    assert.equal(await servedName(server.port, [caPem]), current);
    // Put the matching key back for the tests that follow.
    await copyFile(current === 'second' ? second.key : first.key, `${live.key}.new`);
    await rename(`${live.key}.new`, live.key);
  });

  test('the CLI sends over https with --ca-cert, and refuses an untrusted certificate without it', async () => {
    const base = ['send', '--url', `https://127.0.0.1:${server.port}`, '--tenant', 'demo', '--hub', 'chat', '--all'];
    const ok = await cli([...base, '--ca-cert', ca.caCert, 'addNewMessageToPage', '["cli","hello"]']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^202/);
    const refused = await cli([...base, 'addNewMessageToPage', '["cli","hello"]']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /certificate|UnknownIssuer/i);
  });
});

const readCa = (ca) => readFile(ca.caCert);
