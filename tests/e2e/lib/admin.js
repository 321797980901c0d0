// The admin API (`/admin/v1`) and the `switchboard deploy | rollback | plugins` commands,
// for the deploy tests. Every request is bounded.

import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { jsonOrText } from './raw.js';
import { SWITCHBOARD_BIN, pluginWasm } from './server.js';

/** Two admin keys (both valid at once, for rotation) and a config section with them. */
export const ADMIN_KEY = 'admin-key-0123456789-first';
export const ADMIN_KEY_2 = 'admin-key-0123456789-second';
export const ADMIN_SECTION = `
[admin]
keys = ["${ADMIN_KEY}", "${ADMIN_KEY_2}"]
keep_versions = 5
`;

/** The two builds of the hot-reload fixture: their answers name them. */
export const V1 = 'versioned-v1';
export const V2 = 'versioned-v2';
export const wasmOf = (version) => readFile(pluginWasm(version.replace('-', '_')));

/**
 * One admin request: resolves with `{status, body}` (body parsed when JSON).
 * `body` may be a Buffer (sent as application/wasm) or an object (sent as JSON).
 */
export async function admin(server, method, path, { body, key = ADMIN_KEY, headers = {}, timeoutMs = 30_000 } = {}) {
  const h = { ...headers };
  if (key !== null) h.authorization = `Bearer ${key}`;
  let payload;
  if (Buffer.isBuffer(body)) {
    h['content-type'] = 'application/wasm';
    payload = body;
  } else if (body !== undefined) {
    h['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch(`${server.url}/admin/v1${path}`, {
    method,
    headers: h,
    body: payload,
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: response.status, body: await jsonOrText(response), headers: response.headers };
}

/** Deploys `wasm` (a Buffer) to `tenant/hub` through the admin API. */
export function deploy(server, tenant, hub, wasm, options = {}) {
  return admin(server, 'POST', `/tenants/${tenant}/hubs/${hub}/deploy`, { body: wasm, ...options });
}

/** Runs `switchboard ARGS` (bounded); resolves with `{code, stdout, stderr}`. */
export function cli(args, { env = {} } = {}) {
  return new Promise((resolve) => {
    execFile(
      SWITCHBOARD_BIN,
      args,
      { timeout: 30_000, env: { ...process.env, NO_COLOR: '1', ...env } },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}
