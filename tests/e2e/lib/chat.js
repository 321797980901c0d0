// The bundled `chat` hub's conversation, shared by the files that test it through different
// clients and transports. A member is `{connection, box}`: a started connection and an inbox of
// its `addNewMessageToPage` calls (`[name, text]`).

import assert from 'node:assert/strict';
import { invoke } from './client.js';
import { unique } from './server.js';

/** The client method chat calls with `(name, text)`. */
export const MESSAGE = 'addNewMessageToPage';

/** True for a message whose text (second argument) is `value`. */
export const text = (value) => (args) => args[1] === value;

/**
 * Values `echo` must return unchanged: every JSON type, nesting, the extremes of a safe
 * integer, an object with odd keys and a 16 KiB string. Each file adds the strings it checks.
 */
export const ECHO_VALUES = [
  'hello',
  '',
  0,
  42,
  -7,
  0.1,
  -2.5e-3,
  9007199254740991,
  true,
  false,
  null,
  [],
  {},
  [1, 'two', null, [3, [4, { five: 5 }]], false],
  { a: { b: { c: [1, { d: 'deep', e: null, f: [] }] } }, g: true },
  { 'ключ': 'значение', '🔑': ['🚪'], '': 'empty key' },
  'x'.repeat(16 * 1024),
];

/**
 * Makes sure `who` has received everything `sender` sent before: `sender` broadcasts a fresh
 * marker and `who` waits for it (delivery is in order per sender and target).
 */
export async function barrier(sender, ...who) {
  const marker = unique('barrier-');
  await invoke(sender.connection, 'send', 'barrier', marker);
  await Promise.all(who.map((m) => m.box.next(text(marker))));
}

/**
 * Groups: `a` and `b` join a fresh group; `c`, not a member, sends to it and both receive it,
 * `c` does not; `b` leaves, `a` sends again and receives it, `b` does not. Resolves with the
 * text of that second message (sent after `c` and `b` were brought up to date).
 */
export async function expectGroupJoinAndLeave(a, b, c) {
  const group = unique('room-');
  await invoke(a.connection, 'joinGroup', group);
  await invoke(b.connection, 'joinGroup', group);

  // c is not a member; it can still send to the group.
  const first = unique('to-group-');
  await invoke(c.connection, 'sendToGroup', group, 'carol', first);
  assert.deepEqual(await a.box.next(text(first)), ['carol', first]);
  assert.deepEqual(await b.box.next(text(first)), ['carol', first]);
  await barrier(c, c);
  assert.equal(c.box.has(first), false, 'a non-member received a group message');

  // b leaves; only a receives the next one.
  await invoke(b.connection, 'leaveGroup', group);
  const second = unique('after-leave-');
  await invoke(a.connection, 'sendToGroup', group, 'alice', second);
  assert.deepEqual(await a.box.next(text(second)), ['alice', second]);
  await barrier(a, b, c);
  assert.equal(b.box.has(second), false, 'a connection that left the group still received its message');
  return second;
}
