// The test hub in JavaScript: the methods of plugins/testhub that the end-to-end suites run
// against every language's build (plugin-request.test.js, plugin-types.test.js). Not a sample:
// each method does one thing a test asserts.
import { binary, bytesOf, clients, connection, date, dateOf } from '../../sdk-js/src/switchboard.js';

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
