// The chat hub on the SDK's test host: `node --test plugins-js` (no server, no component).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Caller, TestHost } from '../../sdk-js/src/testing.js';
import * as hub from './hub.js';

const said = (host, caller) => host.received(caller).map((m) => [m.method, ...m.args]);

test('send reaches every connection, the caller included', () => {
  const host = new TestHost(hub);
  const [ann, bob] = [new Caller('c-ann'), new Caller('c-bob')];
  host.connect(ann);
  host.connect(bob);
  assert.equal(host.invoke(ann, 'send', 'ann', 'hi'), undefined);
  assert.deepEqual(host.sent()[0].to, { kind: 'all', except: [] });
  for (const caller of [ann, bob]) assert.deepEqual(said(host, caller), [['addNewMessageToPage', 'ann', 'hi']]);
});

test('groups: members get group messages until they leave or disconnect', () => {
  const host = new TestHost(hub);
  const [ann, bob, cy] = ['c-ann', 'c-bob', 'c-cy'].map((id) => new Caller(id));
  for (const caller of [ann, bob, cy]) host.connect(caller);
  host.invoke(ann, 'joinGroup', 'room');
  host.invoke(bob, 'joinGroup', 'room');
  assert.deepEqual(host.groupMembers('room'), ['c-ann', 'c-bob']);

  host.invoke(cy, 'sendToGroup', 'room', 'cy', 'hello room');
  assert.deepEqual(said(host, ann), [['addNewMessageToPage', 'cy', 'hello room']]);
  assert.deepEqual(said(host, cy), [], 'the sender is not a member');

  host.invoke(ann, 'leaveGroup', 'room');
  host.disconnect(bob);
  host.takeSent();
  host.invoke(cy, 'sendToGroup', 'room', 'cy', 'anyone?');
  assert.deepEqual(host.groupMembers('room'), []);
  assert.deepEqual([said(host, ann), said(host, bob)], [[], []]);
  assert.deepEqual(
    host.groupChanges().map((c) => `${c.change} ${c.connectionId}`),
    ['added c-ann', 'added c-bob', 'removed c-ann'],
  );
});

test("sendToUser reaches each of the user's connections, named after the sender", () => {
  const host = new TestHost(hub);
  const [phone, laptop] = [new Caller('c-1').user('ann'), new Caller('c-2').user('ann')];
  const bob = new Caller('c-3').user('bob');
  const anonymous = new Caller('c-4');
  for (const caller of [phone, laptop, bob, anonymous]) host.connect(caller);
  host.invoke(bob, 'sendToUser', 'ann', 'ping');
  host.invoke(anonymous, 'sendToUser', 'ann', 'who?');
  for (const caller of [phone, laptop]) {
    assert.deepEqual(said(host, caller), [
      ['addNewMessageToPage', 'bob', 'ping'],
      ['addNewMessageToPage', 'anonymous', 'who?'],
    ]);
  }
  assert.deepEqual(said(host, bob), []);
});

test('echo, whoami: results as the client reads them', () => {
  const host = new TestHost(hub);
  const ann = new Caller('c-ann').user('ann');
  for (const value of ['text', 0, 1.5, true, null, [1, 'two'], { nested: { deep: [null] } }]) {
    assert.deepEqual(host.invoke(ann, 'echo', value), value);
  }
  assert.deepEqual(host.invoke(ann, 'whoami'), { connectionId: 'c-ann', userId: 'ann' });
  assert.deepEqual(host.invoke(new Caller('c-x'), 'WHOAMI'), { connectionId: 'c-x', userId: null });
  assert.throws(() => host.invoke(ann, 'echo'), {
    message: "Failed to invoke 'echo': invalid arguments: expected 1 argument(s), got 0",
  });
  assert.throws(() => host.invoke(ann, 'shout', 'x'), { message: "Unknown hub method 'shout'" });
});

test('counter streams its items, and stops when the client cancels', () => {
  const host = new TestHost(hub);
  const ann = new Caller('c-ann');
  assert.deepEqual(host.stream(ann, 'counter', 4), { items: [0, 1, 2, 3], error: null });
  assert.deepEqual(host.stream(ann, 'counter', 0), { items: [], error: null });
  const cancelled = host.call(ann, 'counter').args(1_000_000).cancelAfter(3).stream();
  assert.deepEqual(cancelled, { items: [0, 1, 2], error: null });
});

test('sum adds an upload stream; its error reaches the caller', () => {
  const host = new TestHost(hub);
  const ann = new Caller('c-ann');
  assert.equal(host.call(ann, 'sum').upload([1, 2, 3.5]).invoke(), 6.5);
  assert.equal(host.call(ann, 'sum').upload([]).invoke(), 0);
  assert.throws(() => host.call(ann, 'sum').uploadFailing([1], 'client gave up').invoke(), {
    message: 'client gave up',
  });
});
