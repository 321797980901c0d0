// The test hub in JavaScript: the methods of plugins/testhub that the end-to-end suites run
// against every language's build (features, plugin-errors, plugin-request, plugin-types,
// plugin-time). Not a sample: each method does one thing a test asserts.
import {
  HostError,
  HubError,
  UploadError,
  binary,
  bytesOf,
  clients,
  connection,
  date,
  dateOf,
  groups,
  invocation,
  kv,
  uploads,
} from '../../sdk-js/src/switchboard.js';

/** How long `clientResult` waits for the client's answer. */
const CLIENT_RESULT_TIMEOUT_MS = 10_000;

/** echo(value): any JSON value back, unchanged (a MessagePack client's bin reads as base64). */
export function echo(ctx, value) {
  return value;
}

/**
 * echoTyped(data, at): a binary value and a timestamp back, read and marked again by the SDK, as
 * the result and as typed(data, at) sent to the caller.
 */
export function echoTyped(ctx, data, at) {
  const typed = [binary(bytesOf(data)), date(dateOf(at))];
  clients.caller(ctx).send('typed', ...typed);
  return typed;
}

/** request(headers, cookies): the caller's transport and what the hub sees of each named header and cookie. */
export function request(ctx, headers, cookies) {
  const seen = (names, read) => Object.fromEntries(names.map((name) => [name, read(name)]));
  return {
    transport: connection.transport(),
    headers: seen(headers, connection.header),
    cookies: seen(cookies, connection.cookie),
  };
}

/** kvGet(key): the value at key in the tenant's store, or null. */
export function kvGet(ctx, key) {
  return kv.get(key);
}

/**
 * ticks(count, intervalMs), a stream: 0, 1, ... one every intervalMs, sleeping in between. When
 * the client cancels, it stores how many items it sent under `ticks:<connection id>` and returns.
 */
export function* ticks(ctx, count, intervalMs) {
  for (let i = 0; i < count; i++) {
    yield i;
    try {
      invocation.sleep(intervalMs);
    } catch (e) {
      if (!(e instanceof HostError)) throw e;
      kv.set(`ticks:${ctx.connectionId}`, String(i + 1));
      return;
    }
  }
}

/** wait(ms): sleeps ms, then returns it (sleeping costs no CPU time). */
export function wait(ctx, ms) {
  invocation.sleep(ms);
  return ms;
}

/**
 * sendToGroupAfter(ms, group, value): sleeps ms, then members of group receive message(value),
 * even when the caller's connection ended meanwhile (a plugin need not honour cancellation).
 */
export function sendToGroupAfter(ctx, ms, group, value) {
  try {
    invocation.sleep(ms);
  } catch (e) {
    if (!(e instanceof HostError)) throw e;
  }
  clients.group(group).send('message', value);
}

/** kvSetAfter(ms, key, value): sleeps ms, then stores value under key, cancelled or not (as sendToGroupAfter). */
export function kvSetAfter(ctx, ms, key, value) {
  try {
    invocation.sleep(ms);
  } catch (e) {
    if (!(e instanceof HostError)) throw e;
  }
  kv.set(key, value);
}

/** waitUntilCancelled(): sleeps until its connection ends, then stores whether it saw that under `waited:<connection id>`. */
export function waitUntilCancelled(ctx) {
  try {
    for (;;) invocation.sleep(50);
  } catch (e) {
    if (!(e instanceof HostError)) throw e;
  }
  kv.set(`waited:${ctx.connectionId}`, invocation.cancelled() ? 'cancelled' : 'not cancelled');
}

/** echoArgs(...): all arguments back as an array. */
export function echoArgs(ctx, ...args) {
  return args;
}

/** throw(message): fails with `message` as the client's error text. */
function fail(ctx, message) {
  throw new HubError(message);
}

/** void(): returns nothing. */
function nothing(ctx) {}

// `throw` and `void` are reserved words: exported under those names.
export { fail as throw, nothing as void };

/** crash(message): throws a TypeError, which the client reads only with detailed errors. */
export function crash(ctx, message) {
  throw new TypeError(message);
}

/** counter(count), a stream: 0 .. count - 1, then completes. */
export function* counter(ctx, count) {
  for (let i = 0; i < count; i++) yield i;
}

/** infinite(), a stream: 0, 1, 2, ... until the client cancels. */
export function* infinite(ctx) {
  for (let i = 0; ; i++) yield i;
}

/** failingStream(count, message), a stream: `count` items, then fails with `message`. */
export function* failingStream(ctx, count, message) {
  for (let i = 0; i < count; i++) yield i;
  throw new HubError(message);
}

/** concat(strings): joins an upload stream of strings. */
export const concat = uploads(1, (ctx, parts) => {
  let out = '';
  for (const part of parts) out += part;
  return out;
});

/** concatTwo(a, separator, b): joins two upload streams, the first's items first. */
export const concatTwo = uploads(2, (ctx, separator, a, b) => {
  let out = '';
  for (const part of a) out += part;
  out += separator;
  for (const part of b) out += part;
  return out;
});

/**
 * uploadOutcome(key, items): how the upload stream ended (its items, and the client's error or
 * the cancellation), returned and stored under `key`, where 'started' stands while it waits.
 */
export const uploadOutcome = uploads(1, (ctx, key, items) => {
  kv.set(key, 'started');
  const seen = [];
  let outcome = {};
  try {
    for (const item of items) seen.push(item);
  } catch (e) {
    if (!(e instanceof UploadError) || e.kind === 'host') throw e;
    outcome = e.kind === 'client' ? { client: e.message } : { cancelled: true };
  }
  outcome.items = seen;
  kv.set(key, JSON.stringify(outcome));
  return outcome;
});

/** uploadEcho(items), a stream fed by an upload stream: each item back. */
export const uploadEcho = uploads(1, function* (ctx, items) {
  yield* items;
});

/** clientResult(method, arg): what the caller's `method(arg)` returns; its error fails this call. */
export function clientResult(ctx, method, arg) {
  return clients.caller(ctx).invoke(method, [arg], { timeoutMs: CLIENT_RESULT_TIMEOUT_MS });
}

export function joinGroup(ctx, group) {
  groups.add(ctx.connectionId, group);
}

export function leaveGroup(ctx, group) {
  groups.remove(ctx.connectionId, group);
}

/** sendToGroup(group, value): members receive message(value). */
export function sendToGroup(ctx, group, value) {
  clients.group(group).send('message', value);
}

/** broadcast(value): every connection receives message(value). */
export function broadcast(ctx, value) {
  clients.all().send('message', value);
}

/** sendToUser(user, value): the user's connections receive message(value). */
export function sendToUser(ctx, user, value) {
  clients.user(user).send('message', value);
}

/** context(): what the hub knows of the caller's connection. */
export function context(ctx) {
  return {
    connectionId: ctx.connectionId,
    userId: ctx.userId,
    tenant: ctx.tenant,
    hub: ctx.hub,
    claims: ctx.claims,
    query: Object.fromEntries(connection.query()),
    userAgent: connection.header('user-agent'),
    authorization: connection.header('authorization'),
  };
}

/** setItem(key, value): keeps a value on the connection. */
export function setItem(ctx, key, value) {
  connection.setItem(key, value);
}

/** getItem(key): a value kept by an earlier call of this connection, or null. */
export function getItem(ctx, key) {
  return connection.getItem(key);
}
