// Point 8: a token is not valid before its `nbf` (RFC 7519 §4.1.5). The same token without
// `nbf` is accepted first, so a refusal can only come from the `nbf` claim.

import { expect } from '../lib/harness.mjs';
import { hs256 } from '../lib/jwt.mjs';
import { API_KEY, demoTenant, SIGNING_KEY } from '../lib/node.mjs';

export const name = 'jwt-nbf';
export const point = 8;
export const description = 'a client or API token valid from an hour from now is refused with 401';

async function negotiateStatus(node, token) {
  const r = await fetch(`${node.url}/hubs/demo/chat/negotiate?negotiateVersion=1`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(5_000),
  });
  await r.arrayBuffer();
  return r.status;
}

async function apiStatus(node, token) {
  const r = await fetch(`${node.url}/api/v1/tenants/demo/hubs/chat/groups/nbf-probe/:send`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ target: 'addNewMessageToPage', arguments: ['nbf', 'probe'] }),
    signal: AbortSignal.timeout(5_000),
  });
  await r.arrayBuffer();
  return r.status;
}

export async function run(ctx) {
  const node = await ctx.startNode({ config: demoTenant() });
  const now = Math.floor(Date.now() / 1000);
  const user = `user-${ctx.rng.word(8)}`;
  const client = { sub: user, iat: now, exp: now + 7200 };

  const control = await negotiateStatus(node, hs256(client, SIGNING_KEY));
  expect(control === 200, 'negotiate with a valid client token (control)', '200', String(control));
  const early = await negotiateStatus(node, hs256({ ...client, nbf: now + 3600 }, SIGNING_KEY));
  ctx.figure('client_token_nbf_plus_1h_status', early);

  const aud = `${node.url}/api/v1/tenants/demo/hubs/chat`;
  const api = { aud, iat: now, exp: now + 3000 };
  const apiControl = await apiStatus(node, hs256(api, API_KEY));
  expect(apiControl === 202, 'REST send with a valid API token (control)', '202', String(apiControl));
  const apiEarly = await apiStatus(node, hs256({ ...api, nbf: now + 3000 }, API_KEY));
  ctx.figure('api_token_nbf_plus_50min_status', apiEarly);

  expect(early === 401, 'negotiate with a client token whose nbf is an hour ahead', '401', String(early));
  expect(apiEarly === 401, 'REST send with an API token whose nbf is 50 minutes ahead', '401', String(apiEarly));
}
