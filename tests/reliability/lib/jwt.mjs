// HS256 JSON Web Tokens minted in the test, so a scenario controls every claim.

import { createHmac } from 'node:crypto';

const b64url = (data) => Buffer.from(data).toString('base64url');

/** An HS256 JWT of `claims` signed with `key`. */
export function hs256(claims, key) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', key).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}
