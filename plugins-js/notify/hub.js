// The notify hub in JavaScript: registerClient(id) maps an identifier to the caller's
// connection for 24 h; notifyClient(id, status) sends addMessage(text) to that connection only.
import { clients, kv, HubError } from '../../sdk-js/src/switchboard.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const MESSAGES = ["Here's the message for confirmation", "Here's the message for failure"];
const STATUSES = ['confirmed', 'failed'];

/** The key of an identifier: an integral JSON number, in canonical form. */
function key(id) {
  if (!Number.isInteger(id)) throw new HubError(`specificIdentifier must be an integer, got ${JSON.stringify(id)}`);
  return `notify:client:${id}`;
}

/** The text for a status sent by name (any case) or by number. */
function message(status) {
  const index = typeof status === 'string' ? STATUSES.indexOf(status.toLowerCase()) : STATUSES[status] ? status : -1;
  if (index < 0) throw new HubError(`Unknown status ${JSON.stringify(status)}: expected "Confirmed" (0) or "Failed" (1)`);
  return MESSAGES[index];
}

export function registerClient(ctx, id) {
  kv.set(key(id), ctx.connectionId, { ttlMs: DAY_MS });
}

export function notifyClient(ctx, id, status) {
  const text = message(status);
  const connection = kv.get(key(id));
  if (connection === null) throw new HubError('Unable to find connection');
  clients.connection(connection).send('addMessage', text);
}
