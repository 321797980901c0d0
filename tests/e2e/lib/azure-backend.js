// A backend written for Azure SignalR Service's data-plane REST API (2022-06-01), the way the
// Azure management SDK calls it: a connection string `Endpoint=...;AccessKey=...;Version=1.0;`,
// paths below `/api/hubs/{hub}` with `?application=...&api-version=2022-06-01`, and per request
// an HS256 token signed with the AccessKey whose `aud` is that URL (query included), valid for
// an hour. Only the connection string changes to point it at Switchboard.

import { hs256 } from './jwt.js';
import { jsonOrText } from './raw.js';

export const API_VERSION = '2022-06-01';
const enc = encodeURIComponent;

/** Parses `Endpoint=...;AccessKey=...;Version=1.0;` (keys case-insensitive). */
export function parseConnectionString(connectionString) {
  const fields = {};
  for (const part of connectionString.split(';')) {
    const at = part.indexOf('=');
    if (at > 0) fields[part.slice(0, at).trim().toLowerCase()] = part.slice(at + 1).trim();
  }
  if (!fields.endpoint || !fields.accesskey) throw new Error('the connection string needs Endpoint and AccessKey');
  return { endpoint: fields.endpoint.replace(/\/+$/, ''), accessKey: fields.accesskey };
}

/**
 * The backend's REST client. `application` is Azure's optional scope (Switchboard's tenant).
 * Every call is bounded by `timeoutMs` and answers `{status, body}` (body parsed when JSON).
 */
export function azureBackend(connectionString, { application, timeoutMs = 5_000 } = {}) {
  const { endpoint, accessKey } = parseConnectionString(connectionString);
  async function call(method, url, { body, extraQuery = [] } = {}) {
    const now = Math.floor(Date.now() / 1000);
    const token = hs256({ aud: url, iat: now, nbf: now, exp: now + 3600 }, accessKey);
    const extra = extraQuery.map(([k, v]) => `&${enc(k)}=${enc(v)}`).join('');
    const headers = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(url + extra, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: response.status, body: await jsonOrText(response) };
  }
  const query = () => `${application ? `application=${enc(application.toLowerCase())}&` : ''}api-version=${API_VERSION}`;
  const hubCall = (method, hub, rest, options) => call(method, `${endpoint}/api/hubs/${enc(hub.toLowerCase())}${rest}?${query()}`, options);
  const payload = (target, args) => ({ target, arguments: args });
  const excludedQuery = (excluded = []) => excluded.map((id) => ['excluded', id]);
  const closeQuery = ({ excluded, reason } = {}) => [...excludedQuery(excluded), ...(reason ? [['reason', reason]] : [])];
  return {
    health: () => call('HEAD', `${endpoint}/api/health?api-version=${API_VERSION}`),
    broadcast: (hub, target, args, excluded) => hubCall('POST', hub, '/:send', { body: payload(target, args), extraQuery: excludedQuery(excluded) }),
    sendToUser: (hub, user, target, args) => hubCall('POST', hub, `/users/${enc(user)}/:send`, { body: payload(target, args) }),
    sendToGroup: (hub, group, target, args, excluded) =>
      hubCall('POST', hub, `/groups/${enc(group)}/:send`, { body: payload(target, args), extraQuery: excludedQuery(excluded) }),
    sendToConnection: (hub, id, target, args) => hubCall('POST', hub, `/connections/${enc(id)}/:send`, { body: payload(target, args) }),
    addToGroup: (hub, group, id) => hubCall('PUT', hub, `/groups/${enc(group)}/connections/${enc(id)}`),
    removeFromGroup: (hub, group, id) => hubCall('DELETE', hub, `/groups/${enc(group)}/connections/${enc(id)}`),
    removeFromAllGroups: (hub, id) => hubCall('DELETE', hub, `/connections/${enc(id)}/groups`),
    addUserToGroup: (hub, group, user) => hubCall('PUT', hub, `/users/${enc(user)}/groups/${enc(group)}`),
    removeUserFromGroup: (hub, group, user) => hubCall('DELETE', hub, `/users/${enc(user)}/groups/${enc(group)}`),
    removeUserFromAllGroups: (hub, user) => hubCall('DELETE', hub, `/users/${enc(user)}/groups`),
    userInGroup: (hub, group, user) => hubCall('HEAD', hub, `/users/${enc(user)}/groups/${enc(group)}`),
    connectionExists: (hub, id) => hubCall('HEAD', hub, `/connections/${enc(id)}`),
    userExists: (hub, user) => hubCall('HEAD', hub, `/users/${enc(user)}`),
    groupExists: (hub, group) => hubCall('HEAD', hub, `/groups/${enc(group)}`),
    closeConnection: (hub, id, reason) => hubCall('DELETE', hub, `/connections/${enc(id)}`, { extraQuery: closeQuery({ reason }) }),
    closeAll: (hub, options) => hubCall('POST', hub, '/:closeConnections', { extraQuery: closeQuery(options) }),
    closeGroup: (hub, group, options) => hubCall('POST', hub, `/groups/${enc(group)}/:closeConnections`, { extraQuery: closeQuery(options) }),
    closeUser: (hub, user, options) => hubCall('POST', hub, `/users/${enc(user)}/:closeConnections`, { extraQuery: closeQuery(options) }),
    /** A raw call below the hub, for refusals (another hub in the token's aud, ...). */
    call,
  };
}
