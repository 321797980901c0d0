// The notify hub on the SDK's test host: `node --test plugins-js` (no server, no component).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Caller, TestHost } from '../../sdk-js/src/testing.js';
import * as hub from './hub.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const NOT_FOUND = { message: 'Unable to find connection' };

test('a registered client, and only it, is notified', () => {
  const host = new TestHost(hub);
  const [phone, other, backend] = ['c-phone', 'c-other', 'c-backend'].map((id) => new Caller(id));
  for (const caller of [phone, other, backend]) host.connect(caller);

  assert.equal(host.invoke(phone, 'registerClient', 42), undefined);
  assert.equal(host.kv('notify:client:42'), 'c-phone');
  assert.equal(host.kvTtl('notify:client:42'), DAY_MS);

  host.invoke(backend, 'NotifyClient', 42, 'confirmed');
  assert.deepEqual(host.sent(), [
    { to: { kind: 'connections', ids: ['c-phone'] }, method: 'addMessage', args: ["Here's the message for confirmation"] },
  ]);
  host.invoke(backend, 'notifyClient', 42, 1);
  assert.deepEqual(host.received(phone).map((m) => m.args[0]), [
    "Here's the message for confirmation",
    "Here's the message for failure",
  ]);
  assert.deepEqual(host.received(other), []);
  assert.deepEqual(host.received(backend), []);
});

test('registering again moves the identifier', () => {
  const host = new TestHost(hub);
  const [old, now] = [new Caller('c-old'), new Caller('c-new')];
  host.invoke(old, 'registerClient', 7);
  host.invoke(now, 'registerClient', 7);
  host.invoke(old, 'notifyClient', 7, 'Failed');
  assert.equal(host.received(now).length, 1);
  assert.deepEqual(host.received(old), []);
});

test('unknown or expired identifiers are not found', () => {
  const host = new TestHost(hub);
  const caller = new Caller('c-1');
  assert.throws(() => host.invoke(caller, 'notifyClient', 1, 'Confirmed'), NOT_FOUND);
  host.invoke(caller, 'registerClient', 1);
  host.expire('notify:client:1');
  assert.throws(() => host.invoke(caller, 'notifyClient', 1, 'Confirmed'), NOT_FOUND);
  assert.deepEqual(host.sent(), []);
});

test('bad arguments are refused with a message the client can read', () => {
  const host = new TestHost(hub);
  const caller = new Caller('c-1');
  assert.throws(() => host.invoke(caller, 'registerClient', 1.5), {
    message: 'specificIdentifier must be an integer, got 1.5',
  });
  host.invoke(caller, 'registerClient', 1);
  assert.throws(() => host.invoke(caller, 'notifyClient', 1, 'Pending'), {
    message: 'Unknown status "Pending": expected "Confirmed" (0) or "Failed" (1)',
  });
  assert.throws(() => host.invoke(caller, 'notifyClient', 1), {
    message: "Failed to invoke 'notifyClient': invalid arguments: expected 2 argument(s), got 1",
  });
  assert.deepEqual(host.sent(), []);
});

test("the store's failure reaches the caller", () => {
  const host = new TestHost(hub);
  host.fail('kv.set', 'bucket unavailable');
  assert.throws(() => host.invoke(new Caller('c-1'), 'registerClient', 1), { message: 'bucket unavailable' });
  assert.deepEqual(host.kvEntries(), []);
});
