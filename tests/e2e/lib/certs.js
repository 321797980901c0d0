// Test certificates made with Debian's `openssl`: a throwaway CA and leaf certificates it signs
// for 127.0.0.1, so a client that trusts the CA (NODE_EXTRA_CA_CERTS, `--ca-cert`) accepts
// every leaf, and a rotation from one leaf to another can be told apart by fingerprint.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { withTimeout } from './server.js';

const run = promisify(execFile);
const OPENSSL_MS = 15_000;

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
