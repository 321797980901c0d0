// Switchboard nodes for the scenarios: the e2e helpers' real release-build processes, plus
// config keys a build may not know yet, and the checks every scenario ends with.

import { startServer, hubUrl, SWITCHBOARD_BIN } from '../../e2e/lib/server.js';
import { buildConnection } from '../../e2e/lib/client.js';
import { within, Failure } from './harness.mjs';

export { hubUrl, SWITCHBOARD_BIN };

export const API_KEY = 'reliability-suite-api-key-0123456789';
export const SIGNING_KEY = 'reliability-suite-signing-key-0123456789';

/** The tenant every scenario uses: anonymous clients, a signing key and an API key. */
export function demoTenant(extra = '') {
  return `
[tenants.demo]
allow_anonymous = true
signing_keys = ["${SIGNING_KEY}"]
api_keys = ["${API_KEY}"]
${extra}
`;
}

const UNKNOWN_FIELD = /unknown field `([A-Za-z0-9_]+)`/;

/**
 * Starts a node. `optional` holds top-level config keys (`{request_headers_timeout_secs: 2}`)
 * that a fix adds: a build that rejects one as unknown is started again without it, and
 * `onMissing(key)` is told, so a scenario still measures today's behaviour (and fails on it).
 */
export async function launchNode({ config = demoTenant(), optional = {}, onMissing = () => {}, ...options } = {}) {
  const keys = { ...optional };
  for (let attempt = 0; attempt <= Object.keys(optional).length; attempt++) {
    const top = Object.entries(keys)
      .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
      .join('\n');
    try {
      return await startServer({ ...options, config: `${top}\n${config}` });
    } catch (err) {
      const m = String(err.message).match(UNKNOWN_FIELD);
      if (!m || !(m[1] in keys)) throw err;
      delete keys[m[1]];
      onMissing(m[1]);
    }
  }
  throw new Error('unreachable: every optional key was dropped');
}

/** `GET /healthz`, bounded; resolves with the status (0 when no answer came). */
export async function healthz(node, ms = 5_000) {
  try {
    const r = await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(ms) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}

/**
 * What every scenario ends with: the node serves /healthz and an official client's echo
 * round trip on `demo/chat`. Throws a Failure saying which part did not hold.
 */
export async function assertServes(node, label = node.url) {
  if (!node.running()) throw new Failure(`${label} after the scenario`, 'the process still running', 'it exited');
  const status = await healthz(node);
  if (status !== 200) throw new Failure(`${label} GET /healthz after the scenario`, '200 within 5 s', status === 0 ? 'no answer' : String(status));
  const connection = buildConnection(hubUrl(node, 'demo', 'chat'));
  try {
    await within(5_000, connection.start(), `${label}: an official client's start after the scenario`);
    const nonce = `echo-${Date.now()}-${Math.random()}`;
    const got = await within(5_000, connection.invoke('echo', nonce), `${label}: echo after the scenario`);
    if (got !== nonce) throw new Failure(`${label}: echo after the scenario`, JSON.stringify(nonce), JSON.stringify(got));
  } finally {
    await within(5_000, connection.stop(), 'stop the check client').catch(() => {});
  }
}

/** A REST call on the demo tenant's hub; resolves with `{status, text}` (status 0: no answer). */
export async function rest(node, method, path, { body, hub = 'chat', headers = {}, ms = 5_000 } = {}) {
  try {
    const r = await fetch(`${node.url}/api/v1/tenants/demo/hubs/${hub}${path}`, {
      method,
      headers: { 'x-api-key': API_KEY, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body,
      signal: AbortSignal.timeout(ms),
    });
    return { status: r.status, text: await r.text() };
  } catch (err) {
    return { status: 0, text: String(err.message) };
  }
}
