// The test hub on the SDK's test host, natively: each method does what the end-to-end suites
// expect of it before a component is built, and the SDK's dispatch (rest parameters, reserved
// names, errors with and without detailed errors) holds outside the component too.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Caller, TestHost } from '../../sdk-js/src/testing.js';
import * as hub from './hub.js';

const UNEXPECTED = "An unexpected error occurred invoking 'crash' on the server.";

test('results, errors and void', () => {
  const host = new TestHost(hub);
  const c = new Caller('c1');
  assert.deepEqual(host.invoke(c, 'echoArgs', 1, 'a', null, { b: [true] }), [1, 'a', null, { b: [true] }]);
  assert.deepEqual(host.invoke(c, 'echoArgs'), []);
  assert.throws(() => host.invoke(c, 'throw', 'went wrong'), { message: 'went wrong' });
  assert.equal(host.invoke(c, 'void'), undefined);
});

test('an unexpected exception: hidden, unless the tenant shows detailed errors; always logged', () => {
  const quiet = new TestHost(hub);
  const c = new Caller('c1');
  assert.throws(() => quiet.invoke(c, 'crash', 'boom'), { message: UNEXPECTED });
  assert.match(quiet.logs()[0].message, /^hub method 'crash' threw: TypeError: boom/);
  assert.equal(quiet.logs()[0].level, 'error');
  const detailed = new TestHost(hub, { detailedErrors: true });
  assert.throws(() => detailed.invoke(c, 'crash', 'boom'), { message: `${UNEXPECTED} TypeError: boom` });
});

test('streams: items, a failure after them, a cancellation', () => {
  const host = new TestHost(hub);
  const c = new Caller('c1');
  assert.deepEqual(host.stream(c, 'counter', 3), { items: [0, 1, 2], error: null });
  assert.deepEqual(host.call(c, 'infinite').cancelAfter(5).stream(), { items: [0, 1, 2, 3, 4], error: null });
  assert.deepEqual(host.stream(c, 'failingStream', 2, 'broke'), { items: [0, 1], error: 'broke' });
});

test('upload streams, one or two, completed or failed by the client', () => {
  const host = new TestHost(hub);
  const c = new Caller('c1');
  assert.equal(host.call(c, 'concat').upload(['a', 'b']).invoke(), 'ab');
  assert.throws(() => host.call(c, 'concat').uploadFailing(['a'], 'upload broke').invoke(), { message: 'upload broke' });
  assert.equal(host.call(c, 'concatTwo').args('|').upload(['a1', 'a2']).upload(['b1']).invoke(), 'a1a2|b1');
  const outcome = host.call(c, 'uploadOutcome').args('k').uploadFailing([1], 'gave up').invoke();
  assert.deepEqual(outcome, { client: 'gave up', items: [1] });
  assert.deepEqual(JSON.parse(host.kv('k')), outcome);
  assert.deepEqual(host.call(c, 'uploadEcho').upload([1, 'two']).stream().items, [1, 'two']);
});

test('client results: the value, or the client error', () => {
  const host = new TestHost(hub);
  const c = new Caller('c1');
  host.answerClientInvocations((id, method, args) => {
    if (method === 'fail') throw new Error('client says no');
    return args[0] * 2;
  });
  assert.equal(host.invoke(c, 'clientResult', 'double', 21), 42);
  assert.throws(() => host.invoke(c, 'clientResult', 'fail', 0), /client says no/);
  assert.deepEqual(host.clientInvocations()[0], { connectionId: 'c1', method: 'double', args: [21] });
});

test('the hub context, items, groups, users and broadcast', () => {
  const host = new TestHost(hub, { tenant: 'demo', hub: 'testhub-js' });
  const c = new Caller('c1').user('u').query('room', 'blue').header('User-Agent', 'SignalR x').transport('LongPolling');
  assert.deepEqual(host.invoke(c, 'context'), {
    connectionId: 'c1',
    userId: 'u',
    tenant: 'demo',
    hub: 'testhub-js',
    claims: { sub: 'u' },
    query: { room: 'blue' },
    userAgent: 'SignalR x',
    authorization: null,
  });
  assert.equal(host.invoke(c, 'request', [], []).transport, 'LongPolling');
  assert.equal(host.invoke(c, 'getItem', 'k'), null);
  host.invoke(c, 'setItem', 'k', 'v1');
  assert.equal(host.invoke(c, 'getItem', 'k'), 'v1');
  assert.equal(host.item(c, 'k'), 'v1');
  host.invoke(c, 'joinGroup', 'g');
  host.invoke(c, 'sendToGroup', 'g', 'x');
  host.invoke(c, 'broadcast', 'y');
  host.invoke(c, 'sendToUser', 'u', 'z');
  host.invoke(c, 'leaveGroup', 'g');
  host.invoke(c, 'sendToGroup', 'g', 'gone');
  assert.deepEqual(host.received(c).map((m) => m.args[0]), ['x', 'y', 'z']);
});

test('sleeping is virtual, and fails once the client cancelled', () => {
  const host = new TestHost(hub);
  const c = new Caller('c1');
  assert.equal(host.invoke(c, 'wait', 1500), 1500);
  assert.equal(host.slept(), 1500);
  assert.deepEqual(host.call(c, 'ticks').args(10, 100).cancelAfter(2).stream().items, [0, 1]);
  assert.equal(host.kv('ticks:c1'), '2');
});

test('sendToGroupAfter and kvSetAfter act once their sleep ends, whether or not the client cancelled', () => {
  const host = new TestHost(hub);
  const c = new Caller('c1');
  host.invoke(c, 'joinGroup', 'g');
  host.invoke(c, 'sendToGroupAfter', 700, 'g', 'on time');
  assert.equal(host.slept(), 700);
  host.call(c, 'sendToGroupAfter').args(700, 'g', 'late').cancelAfter(0).invoke();
  assert.deepEqual(host.received(c).map((m) => m.args[0]), ['on time', 'late']);
  host.call(c, 'kvSetAfter').args(700, 'k', 'late').cancelAfter(0).invoke();
  assert.equal(host.kv('k'), 'late');
});
