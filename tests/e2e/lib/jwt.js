// HS256 JSON Web Tokens for the tests: API tokens (signed with an API key) and client tokens.

import { createHmac } from 'node:crypto';

/** An HS256 JWT with `claims`, signed with `secret`. */
export function hs256(claims, secret) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}
