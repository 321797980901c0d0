// Real `@microsoft/signalr` clients for the end-to-end tests, with bounded waits.

import assert from 'node:assert/strict';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { withTimeout } from './server.js';

/** Default bound for one wait (a start, an invocation, a message). */
export const WAIT_MS = 5_000;

/**
 * Builds a HubConnection (not started). WebSockets only unless `transport` says otherwise, so
 * a test never silently falls back to another transport.
 */
export function buildConnection(url, { token, transport = HttpTransportType.WebSockets, logLevel = LogLevel.Warning } = {}) {
  const options = { transport };
  if (token !== undefined) options.accessTokenFactory = () => token;
  return new HubConnectionBuilder().withUrl(url, options).configureLogging(logLevel).build();
}

/**
 * Builds and starts a HubConnection (bounded), and stops it when the test `t` ends.
 * Pass `t` = a test context (or anything with `after(fn)`).
 */
export async function connect(t, url, options = {}) {
  const connection = buildConnection(url, options);
  t.after(() => withTimeout(connection.stop(), WAIT_MS, `stop ${url}`));
  await withTimeout(connection.start(), WAIT_MS, `start ${url}`);
  return connection;
}

/** `connection.invoke(method, ...args)`, bounded by `WAIT_MS`. */
export function invoke(connection, method, ...args) {
  return withTimeout(connection.invoke(method, ...args), WAIT_MS, `invoke ${method}`);
}

/**
 * Records every call of client method `target` on `connection` from now on. Create it before
 * the action that should cause the message, then `await box.next(pred)`.
 */
export function inbox(connection, target) {
  const messages = [];
  const waiters = new Set();
  connection.on(target, (...args) => {
    messages.push(args);
    for (const w of waiters) w();
  });
  return {
    /** Every argument list received so far, in order. */
    messages,
    /**
     * Resolves with the arguments of the first message (already received or still to come)
     * for which `pred(args)` holds; rejects after `timeoutMs`.
     */
    next(pred = () => true, timeoutMs = WAIT_MS) {
      let check;
      const found = new Promise((resolve) => {
        check = () => {
          const hit = messages.find((args) => pred(args));
          if (hit) resolve(hit);
        };
        waiters.add(check);
        check();
      });
      return withTimeout(found, timeoutMs, `a '${target}' message matching ${pred}; got ${JSON.stringify(messages)}`).finally(
        () => waiters.delete(check),
      );
    },
    /** Whether some message so far contains `value` among its arguments. */
    has(value) {
      return messages.some((args) => args.includes(value));
    },
  };
}

/** Collects a stream's items until it completes (bounded); rejects with `items` on error. */
export function collect(stream, timeoutMs = WAIT_MS) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const items = [];
      stream.subscribe({
        next: (item) => items.push(item),
        complete: () => resolve(items),
        error: (err) => reject(Object.assign(err, { items })),
      });
    }),
    timeoutMs,
    'stream',
  );
}

/**
 * Starts `connection` (built, not started; stopped when the test `t` ends), invokes `echo` with
 * more than the server's 32 KiB message limit, and asserts that the invocation fails and that
 * the server closes the connection with an error the client reports in `onclose`.
 */
export async function expectOversizedInvocationCloses(t, connection) {
  t.after(() => connection.stop());
  const closed = new Promise((resolve) => connection.onclose(resolve));
  await withTimeout(connection.start(), WAIT_MS, 'start');
  await assert.rejects(withTimeout(connection.invoke('echo', 'z'.repeat(40 * 1024)), WAIT_MS, 'oversized invoke'));
  const error = await withTimeout(closed, WAIT_MS, 'onclose');
  assert.ok(error instanceof Error, 'onclose reports an error');
  assert.match(error.message, /^Server returned an error on close: .+/);
  assert.equal(connection.state, 'Disconnected');
}

/** Asserts that `promise` rejects with an error whose message contains `text`. */
export async function rejectsWith(promise, text) {
  await assert.rejects(promise, (err) => {
    assert.ok(err.message.includes(text), `error ${JSON.stringify(err.message)} lacks ${JSON.stringify(text)}`);
    return true;
  });
}

export { HttpTransportType, LogLevel };
