// The outbound side of a connection under a client that does not keep up.
//
// - A raw WebSocket (node:net) that joins a group and stops reading while 30 KB messages are
//   sent to the group: the node closes it within seconds (its outbound byte budget), frees
//   what it held (RSS growth per slow client bounded), and a well-behaved member of the same
//   group still receives every message, in order.
// - A server stream that yields as fast as it can, over long polling and SSE, while another
//   client sends to the streaming connection's group: the stream waits for the client instead
//   of filling the queue, so every item arrives, in order, and so does every group message.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { WAIT_MS, connect, inbox, invoke } from './lib/client.js';
import { parsePrometheus, valueOf } from './lib/prometheus.js';
import { negotiate, RS } from './lib/raw.js';
import { hubUrl, pluginWasm, startServer, unique, withTimeout } from './lib/server.js';

const SLOW_READERS = 3;
const PAYLOAD_BYTES = 30_000;
/** Most 30 KB messages sent while waiting for the slow readers to be closed (45 MB). */
const MAX_MESSAGES = 1_500;
/** Messages sent between two looks at the metrics. */
const BATCH = 25;
/** Items of the fast stream, and most group messages sent while it runs. */
const ITEMS = 100_000;
const MAX_GROUP_MESSAGES = 20_000;

const WRITE_TIMEOUT_SECS = 3;
// `demo` has the default outbound budget (1 MiB); `roomy` so much that only the write
// timeout can close its slow readers.
const CONFIG = `
write_timeout_secs = ${WRITE_TIMEOUT_SECS}
[tenants.demo]
allow_anonymous = true
[tenants.roomy]
allow_anonymous = true
[tenants.roomy.limits]
outbound_buffer_bytes = ${256 * 1024 * 1024}
`;

let server;
before(async () => {
  server = await startServer({
    config: CONFIG,
    plugins: { 'demo/testhub.wasm': pluginWasm('testhub'), 'roomy/testhub.wasm': pluginWasm('testhub') },
    // One malloc arena: memory a closed connection freed on one worker thread is reused by the
    // next, so RSS measures what is held, not which thread's arena kept a freed block. And no
    // trimming: a freed heap top given back to the system and faulted in again by the next
    // connection would read as growth (seen once in CI: 7.7 MiB over the second stuck reader).
    env: { MALLOC_ARENA_MAX: '1', MALLOC_TRIM_THRESHOLD_: String(512 * 1024 * 1024) },
  });
});
after(() => server?.stop());

const url = (tenant = 'demo') => hubUrl(server, tenant, 'testhub');

/** Keeps the client's event loop busy for `ms`. */
function busy(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** A field of /proc/PID/status, in KiB. */
function statusKiB(field) {
  const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
  const m = status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  assert.ok(m, `${field} in /proc/${server.pid}/status`);
  return Number(m[1]);
}

async function slowConsumersClosed(tenant = 'demo', reason = 'queue_bytes') {
  const response = await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(WAIT_MS) });
  const parsed = parsePrometheus(await response.text());
  return valueOf(parsed, 'switchboard_slow_consumers_closed_total', { tenant, hub: 'testhub', reason });
}

/** A masked WebSocket text frame, as a client sends it. */
function wsFrame(text) {
  const payload = Buffer.from(text, 'utf8');
  assert.ok(payload.length < 65_536);
  const header = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  const mask = crypto.randomBytes(4);
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i] ^ mask[i % 4];
  return Buffer.concat([header, mask, masked]);
}

/**
 * A WebSocket over node:net that negotiates, upgrades, does the JSON handshake and joins
 * `group`, then stops reading: the kernel's buffers fill and the server's writes stall.
 */
async function slowReader(t, group, hub = url()) {
  const { status, body } = await negotiate(hub);
  assert.equal(status, 200);
  const target = new URL(hub);
  const socket = net.connect(Number(target.port), '127.0.0.1');
  let received = '';
  let closed = false;
  const waiters = new Set();
  socket.on('data', (chunk) => {
    // Frames from the server are unmasked; small ones read as text well enough to find records in.
    received += chunk.toString('latin1');
    for (const w of waiters) w();
  });
  socket.on('error', () => {});
  const gone = new Promise((resolve) => socket.once('close', () => {
    closed = true;
    for (const w of waiters) w();
    resolve();
  }));
  t.after(() => socket.destroy());
  const until = (what, check) => {
    let w;
    return withTimeout(
      new Promise((resolve, reject) => {
        w = () => (check() ? resolve() : closed && reject(new Error(`closed while waiting for ${what}: ${received.slice(0, 500)}`)));
        waiters.add(w);
        w();
      }),
      WAIT_MS,
      `${what}; received ${JSON.stringify(received.slice(0, 500))}`,
    ).finally(() => waiters.delete(w));
  };
  await withTimeout(new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject)), WAIT_MS, 'connect');
  const key = crypto.randomBytes(16).toString('base64');
  socket.write(
    `GET ${target.pathname}?id=${body.connectionToken} HTTP/1.1\r\nHost: ${target.host}\r\n` +
      `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  await until('the 101 response', () => received.startsWith('HTTP/1.1 101'));
  socket.write(wsFrame(`{"protocol":"json","version":1}${RS}`));
  await until('the handshake response', () => received.includes(`{}${RS}`));
  socket.write(wsFrame(JSON.stringify({ type: 1, invocationId: 'join', target: 'joinGroup', arguments: [group] }) + RS));
  await until('the joinGroup completion', () => received.includes('"invocationId":"join"'));
  socket.pause();
  return {
    /** Reads again, and waits (bounded) until the server has ended the socket. */
    async drainUntilClosed(timeoutMs) {
      socket.resume();
      await withTimeout(gone, timeoutMs, 'the server to end the slow reader\'s socket');
    },
  };
}

describe('slow consumers', { timeout: 120_000 }, () => {
  test('a WebSocket that stops reading is closed within seconds and its memory freed; its group still gets everything', async (t) => {
    const group = unique('slow-');
    const good = await connect(t, url());
    const sender = await connect(t, url());
    const box = inbox(good, 'message');
    await invoke(good, 'joinGroup', group);
    const payload = (i) => `${i}:`.padEnd(PAYLOAD_BYTES, 'x');

    // Warm-up, so allocations the node keeps anyway are not counted against the slow readers.
    let sent = 0;
    for (; sent < 100; sent++) await invoke(sender, 'sendToGroup', group, payload(sent));
    await box.next((args) => args[0] === payload(sent - 1), 10_000);

    const readers = [];
    for (let i = 0; i < SLOW_READERS; i++) readers.push(await slowReader(t, group));
    const closedBefore = await slowConsumersClosed();
    const rssBefore = statusKiB('VmRSS');
    // Resets VmHWM to the current RSS, so VmHWM is the peak of what follows.
    writeFileSync(`/proc/${server.pid}/clear_refs`, '5');

    const started = performance.now();
    let closedAfterMs;
    while (sent < MAX_MESSAGES) {
      for (let i = 0; i < BATCH; i++, sent++) await invoke(sender, 'sendToGroup', group, payload(sent));
      if ((await slowConsumersClosed()) - closedBefore >= SLOW_READERS) {
        closedAfterMs = performance.now() - started;
        break;
      }
    }
    assert.ok(
      closedAfterMs !== undefined,
      `expected ${SLOW_READERS} slow readers closed for their byte budget; after ${sent - 100} messages of 30 KB, ` +
        `${(await slowConsumersClosed()) - closedBefore} were`,
    );
    // A few more, after the close: they go to the well-behaved member only.
    for (let i = 0; i < BATCH; i++, sent++) await invoke(sender, 'sendToGroup', group, payload(sent));
    await box.next((args) => args[0] === payload(sent - 1), 15_000);
    const got = box.messages.map((args) => Number(args[0].split(':')[0]));
    assert.deepEqual(got, Array.from({ length: sent }, (_, i) => i), 'the well-behaved member got every message, in order');

    // Freed: let the node settle, then compare.
    await new Promise((r) => setTimeout(r, 1_000));
    const rssAfter = statusKiB('VmRSS');
    const peak = statusKiB('VmHWM');
    const growthPerReader = (rssAfter - rssBefore) / SLOW_READERS;
    const peakPerReader = (peak - rssBefore) / SLOW_READERS;
    t.diagnostic(
      `${SLOW_READERS} slow readers closed after ${Math.round(closedAfterMs)} ms and ${sent - 100 - BATCH} messages of 30 KB; ` +
        `RSS ${rssBefore} KiB before, ${rssAfter} KiB after (${growthPerReader.toFixed(0)} KiB per slow reader), ` +
        `peak ${peak} KiB (${peakPerReader.toFixed(0)} KiB per slow reader)`,
    );
    assert.ok(growthPerReader < 2 * 1024, `RSS growth per slow reader ${growthPerReader.toFixed(0)} KiB, expected under 2 MiB`);
    assert.ok(peakPerReader < 4 * 1024, `peak RSS growth per slow reader ${peakPerReader.toFixed(0)} KiB, expected under 4 MiB`);
    // The sockets are gone: once read again, each ends after what the kernel still held.
    for (const reader of readers) await reader.drainUntilClosed(10_000);
    assert.ok(server.running());
  });

  test('a WebSocket whose writes make no progress is closed after the write timeout, under its byte budget', async (t) => {
    const sender = await connect(t, url('roomy'));
    // More than the kernel's buffers hold (a few MB on loopback), far less than the budget.
    const MESSAGES = 400;
    // One stuck reader: closed for its write timeout; returns the reader and ms from the last send.
    const stuckRound = async () => {
      const group = unique('stuck-');
      const reader = await slowReader(t, group, url('roomy'));
      const closedBefore = await slowConsumersClosed('roomy', 'write_timeout');
      for (let i = 0; i < MESSAGES; i++) await invoke(sender, 'sendToGroup', group, `${i}:`.padEnd(PAYLOAD_BYTES, 'x'));
      const lastSent = performance.now();
      let closedAfterMs;
      for (let i = 0; i < 100 && closedAfterMs === undefined; i++) {
        if ((await slowConsumersClosed('roomy', 'write_timeout')) > closedBefore) closedAfterMs = performance.now() - lastSent;
        else await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(closedAfterMs !== undefined, `expected the stuck reader closed for its write timeout (${WRITE_TIMEOUT_SECS} s) within 10 s of the last send`);
      await new Promise((r) => setTimeout(r, 1_000));
      return { reader, closedAfterMs };
    };
    // The allocator may keep what the first round freed (RSS need not fall), so the bound is on
    // a second round: if the first connection's 12 MB were still held, RSS would grow by as much
    // again; freed memory is reused instead.
    const first = await stuckRound();
    await first.reader.drainUntilClosed(10_000);
    const rssBefore = statusKiB('VmRSS');
    const { reader, closedAfterMs } = await stuckRound();
    const growth = statusKiB('VmRSS') - rssBefore;
    t.diagnostic(`stuck readers closed ${Math.round(first.closedAfterMs)} and ${Math.round(closedAfterMs)} ms after the last of ${MESSAGES} messages of 30 KB; RSS growth over the second ${growth} KiB`);
    assert.ok(growth < 2 * 1024, `RSS growth ${growth} KiB over a second stuck reader, expected under 2 MiB`);
    await reader.drainUntilClosed(10_000);
    // The connection that sent is unaffected.
    assert.equal(await invoke(sender, 'echo', 'still here'), 'still here');
  });

  for (const transport of ['LongPolling', 'ServerSentEvents']) {
    test(`a fast server stream over ${transport} waits for the client: every item, and every group message, arrives`, async (t) => {
      const group = unique('stream-');
      const streaming = new HubConnectionBuilder()
        .withUrl(url(), { transport: HttpTransportType[transport] })
        .configureLogging(LogLevel.Error)
        .build();
      t.after(() => withTimeout(streaming.stop(), WAIT_MS, 'stop'));
      await withTimeout(streaming.start(), WAIT_MS, `start ${transport}`);
      const box = inbox(streaming, 'message');
      await invoke(streaming, 'joinGroup', group);
      // Group messages from another connection while the stream runs, sent from a worker
      // thread so they keep coming while this thread is busy with the stream.
      const sender = new Worker(new URL('./lib/group-sender.js', import.meta.url), { workerData: { url: url(), group, max: MAX_GROUP_MESSAGES, pauseMs: 5 } });
      t.after(() => sender.terminate());
      const senderReady = new Promise((resolve, reject) => {
        sender.once('message', resolve);
        sender.once('error', reject);
      });
      await withTimeout(senderReady, WAIT_MS, 'the sender worker to connect');

      const items = [];
      const done = new Promise((resolve, reject) => {
        streaming.stream('counter', ITEMS).subscribe({
          next: (item) => {
            items.push(item);
            // A client a little slower than the stream: now and then it is busy for a while.
            if (item % 500 === 499) busy(10);
          },
          complete: resolve,
          error: reject,
        });
      });
      sender.postMessage('go');
      await withTimeout(done, 60_000, `the ${ITEMS}-item stream; ${items.length} items so far`).catch((err) => {
        const why = server.log().split('\n').filter((line) => /too slow|disconnected|WARN|ERROR/.test(line)).slice(-10).join('\n');
        assert.fail(`the stream failed after ${items.length} items and ${box.messages.length} group messages: ${err.message}\n${why}`);
      });
      const stopped = new Promise((resolve, reject) => {
        sender.once('message', resolve);
        sender.once('error', reject);
      });
      sender.postMessage('stop');
      const sent = await withTimeout(stopped, 20_000, 'the sender worker to stop');
      assert.equal(items.length, ITEMS);
      assert.ok(items.every((item, i) => item === i), 'items in order');
      await box.next((args) => args[0] === 'last', 10_000);
      assert.deepEqual(
        box.messages.map((args) => args[0]),
        [...Array.from({ length: sent }, (_, i) => `m${i}`), 'last'],
        'every group message, in order',
      );
      t.diagnostic(`${transport}: ${ITEMS} items and ${sent} group messages during the stream`);
    });
  }
});
