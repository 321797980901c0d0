// Test certificates made with Debian's `openssl`: a throwaway CA and leaf certificates it signs
// for 127.0.0.1, so a client that trusts the CA (NODE_EXTRA_CA_CERTS, `--ca-cert`) accepts
// every leaf, and a rotation from one leaf to another can be told apart by fingerprint.

import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { REPO_ROOT, withTimeout } from './server.js';

const run = promisify(execFile);
const OPENSSL_MS = 15_000;
const STEP_MS = 15_000;

async function openssl(args, cwd) {
  await run('openssl', args, { cwd, timeout: OPENSSL_MS });
}

/**
 * A CA in a temp folder. `leaf(name)` writes `name.crt`/`name.key` (P-256, for IP 127.0.0.1 and
 * localhost) and resolves with their paths. `remove()` deletes the folder.
 */
export async function makeCa() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-certs-'));
  await openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
      '-subj', '/CN=switchboard test CA', '-keyout', 'ca.key', '-out', 'ca.crt'],
    dir,
  );
  const ext = path.join(dir, 'leaf.ext');
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  return {
    dir,
    caCert: path.join(dir, 'ca.crt'),
    async leaf(name) {
      await openssl(
        ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`,
          '-keyout', `${name}.key`, '-out', `${name}.csr`],
        dir,
      );
      await openssl(
        ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
          '-days', '2', '-extfile', ext, '-out', `${name}.crt`],
        dir,
      );
      return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** The subject CN of the certificate a TLS server on 127.0.0.1:`port` presents now. */
export function servedName(port, ca) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
        const cn = socket.getPeerCertificate().subject?.CN;
        socket.end();
        resolve(cn);
      });
      socket.once('error', reject);
    }),
    5_000,
    `TLS handshake with 127.0.0.1:${port}`,
  );
}

/** Connects over each transport, echoes, waits for a line on stdin, then echoes again on the same connections. */
const CLIENT = `
import { HubConnectionBuilder, HttpTransportType, LogLevel } from '@microsoft/signalr';
const conns = [];
for (const t of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
  const c = new HubConnectionBuilder().withUrl(process.env.HUB_URL, { transport: HttpTransportType[t] })
    .configureLogging(LogLevel.Error).build();
  c.onclose(() => console.log(JSON.stringify({ t, closed: true })));
  await c.start();
  const who = await c.invoke('whoami');
  conns.push([t, c]);
  console.log(JSON.stringify({ t, phase: 'before', id: who.connectionId, echo: await c.invoke('echo', t) }));
}
console.log(JSON.stringify({ ready: true }));
process.stdin.once('data', async () => {
  for (const [t, c] of conns) {
    const who = await c.invoke('whoami');
    console.log(JSON.stringify({ t, phase: 'after', id: who.connectionId, echo: await c.invoke('echo', t) }));
  }
  for (const [, c] of conns) await c.stop();
  process.exit(0);
});
`;

/** Runs the client script; `lines()` are its JSON lines so far, `next(pred)` waits for one. */
export function startClient(hubUrl, caCert) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CLIENT], {
    cwd: path.join(REPO_ROOT, 'tests', 'e2e'),
    env: { ...process.env, HUB_URL: hubUrl, NODE_EXTRA_CA_CERTS: caCert },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines = [];
  let stderr = '';
  const waiters = new Set();
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line));
    } catch {
      lines.push({ text: line });
    }
    for (const w of waiters) w();
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const next = (pred, what) => {
    let check;
    return withTimeout(
      new Promise((resolve, reject) => {
        check = () => {
          const found = lines.find(pred);
          if (found) resolve(found);
          else if (child.exitCode !== null) reject(new Error(`client exited before ${what}: ${stderr}`));
        };
        waiters.add(check);
        exited.then(check);
        check();
      }),
      STEP_MS,
      `${what}; client stderr: ${stderr}`,
    ).finally(() => waiters.delete(check));
  };
  return { child, lines, next, exited, stderr: () => stderr };
}

