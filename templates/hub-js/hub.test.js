// The {{hub}} hub's unit tests: `node --test` in this folder runs its methods on the SDK's
// test host (no server, no build).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Caller, TestHost } from '{{sdk_dir}}/sdk-js/src/testing.js';
import * as hub from './hub.js';

test('hello greets by name; broadcast reaches every connection', () => {
  const host = new TestHost(hub);
  const ada = new Caller('conn-1').user('ada');
  const bob = new Caller('conn-2');
  host.connect(ada);
  host.connect(bob);

  assert.equal(host.invoke(ada, 'hello', 'Ada'), 'Hello, Ada!');
  host.invoke(ada, 'broadcast', 'hi all');
  assert.deepEqual(host.received(bob), [{ method: 'onMessage', args: ['ada', 'hi all'] }]);
});
