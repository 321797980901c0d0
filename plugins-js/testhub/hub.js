// The test hub in JavaScript: the methods of plugins/testhub that the end-to-end suites run
// against every language's build (plugin-request, plugin-types, plugin-time). Not a sample:
// each method does one thing a test asserts.
import {
  HostError,
  binary,
  bytesOf,
  clients,
  connection,
  date,
  dateOf,
  invocation,
  kv,
} from '../../sdk-js/src/switchboard.js';

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

/** waitUntilCancelled(): sleeps until its connection ends, then stores whether it saw that under `waited:<connection id>`. */
export function waitUntilCancelled(ctx) {
  try {
    for (;;) invocation.sleep(50);
  } catch (e) {
    if (!(e instanceof HostError)) throw e;
  }
  kv.set(`waited:${ctx.connectionId}`, invocation.cancelled() ? 'cancelled' : 'not cancelled');
}
