// Raw SignalR over HTTP and WebSocket (the `ws` package), for asserting wire behaviour that
// the official client hides: handshake errors, Close messages, pings, malformed input.

import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { withTimeout } from './server.js';
import { WAIT_MS } from './client.js';

export const RS = '\x1e';

/**
 * `POST {hubUrl}/negotiate?negotiateVersion=1` with an empty body, as the JS client sends it.
 * Resolves with `{status, body}` (body parsed as JSON when it is JSON, else text).
 */
export async function negotiate(hubUrl, { token, stateful = false } = {}) {
  const headers = { 'X-Requested-With': 'XMLHttpRequest' };
  if (token !== undefined) headers.Authorization = `Bearer ${token}`;
  const query = stateful ? 'negotiateVersion=1&useStatefulReconnect=true' : 'negotiateVersion=1';
  const response = await fetch(`${hubUrl}/negotiate?${query}`, {
    method: 'POST',
    headers,
    signal: AbortSignal.timeout(WAIT_MS),
  });
  return { status: response.status, body: await jsonOrText(response) };
}

/** The body of a fetch `response`: parsed when it is JSON, else its text ('' when empty). */
export async function jsonOrText(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return text; // not JSON: the test asserts on the text
  }
}

/** One WebSocket with a queue of received frames and records. */
export class RawSocket {
  constructor(url, { headers } = {}) {
    this.url = url;
    this.frames = [];
    this.records = [];
    this._waiters = new Set();
    this.ws = new WebSocket(url, { headers });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        this._wake();
        resolve(this.closeInfo);
      });
    });
    this.ws.on('error', (err) => {
      this.error = err;
    });
    this.ws.on('message', (data, isBinary) => {
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data).toString('utf8');
      this.frames.push({ text, isBinary });
      if (!text.endsWith(RS)) {
        this.framingError = `frame does not end on a record boundary: ${JSON.stringify(text)}`;
      }
      for (const part of text.split(RS).slice(0, -1)) this.records.push(part);
      this._wake();
    });
    this._readFrame = 0;
    this._readRecord = 0;
  }

  _wake() {
    for (const w of this._waiters) w();
  }

  _wait(ready, what, timeoutMs) {
    let check;
    let settled = false;
    const found = new Promise((resolve0, reject0) => {
      // `ready` consumes what it returns, so it must not run again once this wait is over.
      const resolve = (value) => {
        settled = true;
        resolve0(value);
      };
      const reject = (err) => {
        settled = true;
        reject0(err);
      };
      check = () => {
        if (settled) return;
        if (this.framingError) return reject(new Error(this.framingError));
        let value;
        try {
          value = ready();
        } catch (err) {
          return reject(err);
        }
        if (value !== undefined) return resolve(value);
        if (this.closeInfo) {
          return reject(new Error(`socket closed (${JSON.stringify(this.closeInfo)}) while waiting for ${what}; frames: ${JSON.stringify(this.frames)}`));
        }
      };
      this._waiters.add(check);
      check();
    });
    return withTimeout(found, timeoutMs, `${what}; frames so far: ${JSON.stringify(this.frames)}`).finally(() => {
      settled = true;
      this._waiters.delete(check);
    });
  }

  /** The next unread frame `{text, isBinary}`. */
  nextFrame(timeoutMs = WAIT_MS) {
    return this._wait(() => (this._readFrame < this.frames.length ? this.frames[this._readFrame++] : undefined), 'a frame', timeoutMs);
  }

  /**
   * The next unread record, parsed as JSON. Pings (`{"type":6}`) are skipped unless
   * `pings` is true.
   */
  nextRecord({ timeoutMs = WAIT_MS, pings = false } = {}) {
    return this._wait(() => {
      while (this._readRecord < this.records.length) {
        const text = this.records[this._readRecord++];
        let message;
        try {
          message = JSON.parse(text);
        } catch {
          throw new Error(`the server sent a record that is not JSON: ${JSON.stringify(text)}`);
        }
        if (!pings && message.type === 6) continue;
        return message;
      }
      return undefined;
    }, pings ? 'a record' : 'a record other than a ping', timeoutMs);
  }

  send(text) {
    this.ws.send(text);
  }

  /** Waits (bounded) until the server closes the socket; resolves with `{code, reason}`. */
  waitClosed(timeoutMs = WAIT_MS) {
    return withTimeout(this.closed, timeoutMs, `the server to close the socket; frames: ${JSON.stringify(this.frames)}`);
  }

  /** Closes from our side (no wait beyond a bound). */
  async close() {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    try {
      await withTimeout(this.closed, 2_000, 'close');
    } catch {
      this.ws.terminate();
    }
  }
}

/**
 * Negotiates, opens the WebSocket at `{hubUrl}?id=TOKEN` and returns the socket before any
 * handshake. Closes it when the test `t` ends.
 */
export async function openRaw(t, hubUrl, { token, stateful = false } = {}) {
  const { status, body } = await negotiate(hubUrl, { token, stateful });
  if (status !== 200 || typeof body !== 'object' || !body.connectionToken) {
    throw new Error(`negotiate ${hubUrl} gave ${status} ${JSON.stringify(body)}`);
  }
  const wsUrl = `${hubUrl.replace(/^http/, 'ws')}?id=${body.connectionToken}`;
  const headers = token === undefined ? undefined : { Authorization: `Bearer ${token}` };
  const socket = new RawSocket(wsUrl, { headers });
  socket.negotiated = body;
  t.after(() => socket.close());
  await withTimeout(socket.opened, WAIT_MS, `open ${wsUrl}`);
  return socket;
}

/**
 * `openRaw` plus the JSON handshake; asserts that the first frame is exactly `{}` + 0x1E.
 * With `stateful`, negotiates stateful reconnect and shakes hands with version 2.
 */
export async function openSession(t, hubUrl, options = {}) {
  const socket = await openRaw(t, hubUrl, options);
  socket.send(`{"protocol":"json","version":${options.stateful ? 2 : 1}}${RS}`);
  const first = await socket.nextRecord({ pings: true });
  if (JSON.stringify(first) !== '{}') {
    throw new Error(`expected the handshake response {} first, got ${JSON.stringify(first)}`);
  }
  return socket;
}

/** A JSON hub message as one record. */
export function record(message) {
  return JSON.stringify(message) + RS;
}

/** Asserts that `socket` still answers an echo invocation, and that its answer is the next record. */
export async function expectEcho(socket, invocationId = 'e1', value = 'still alive') {
  socket.send(record({ type: 1, invocationId, target: 'echo', arguments: [value] }));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId, result: value });
}
