// Raw HTTP and WebSocket over node:net, byte by byte, for the wire attacks: frames with any
// flags (unmasked, reserved opcodes, no FIN), slow writers and readers that stop reading.

import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { within, Failure } from './harness.mjs';

export const RS = '\x1e';

/** Opens a TCP connection to 127.0.0.1:`port`; resolves once connected (bounded). */
export function dial(port, ms = 5_000) {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  return within(
    ms,
    new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    }),
    `TCP connect to 127.0.0.1:${port}`,
  ).catch((err) => {
    socket.destroy();
    throw err;
  });
}

/** Resolves when `socket` is closed by either side (or errors), with the time it happened. */
export function closedAt(socket) {
  if (socket.closedAtMs !== undefined) return Promise.resolve(socket.closedAtMs);
  return new Promise((resolve) => {
    socket.once('close', () => {
      socket.closedAtMs ??= Date.now();
      resolve(socket.closedAtMs);
    });
  });
}

/** Marks the time `socket` closes in `socket.closedAtMs` (for sockets watched by the thousand). */
export function watchClose(socket) {
  socket.once('close', () => {
    socket.closedAtMs ??= Date.now();
  });
  // A socket that is not read never sees the server's FIN: read (and drop) what comes.
  socket.resume();
  return socket;
}

/** One WebSocket frame as bytes. `mask` false sends it unmasked (a protocol error from a client). */
export function encodeFrame({ opcode, payload = Buffer.alloc(0), fin = true, mask = true, rsv = 0 }) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = data.length;
  const head = [((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)) >>> 0];
  const maskBit = mask ? 0x80 : 0;
  if (len < 126) head.push(maskBit | len);
  else if (len < 65536) head.push(maskBit | 126, len >> 8, len & 0xff);
  else {
    head.push(maskBit | 127, 0, 0, 0, 0);
    head.push((len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), data]);
  const key = randomBytes(4);
  const masked = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) masked[i] = data[i] ^ key[i & 3];
  return Buffer.concat([Buffer.from(head), key, masked]);
}

/**
 * A WebSocket client written over node:net. Records the server's frames; a Close frame's
 * code is `closeCode` (1005 when it had none), `closed` resolves when the TCP connection ends.
 */
export class RawWs {
  constructor(socket, rest) {
    this.socket = socket;
    this.buffer = rest;
    this.frames = [];
    this.records = [];
    this.partial = '';
    this.closeCode = undefined;
    this.closeReason = undefined;
    this.bytesReceived = 0;
    this._waiters = new Set();
    this.closed = closedAt(socket).then((at) => {
      this._wake();
      return at;
    });
    socket.on('data', (chunk) => this._onData(chunk));
    socket.on('error', (err) => {
      this.socketError ??= err.code ?? err.message;
    });
    if (rest.length > 0) this._parse();
  }

  /**
   * HTTP/1.1 upgrade of `path` on 127.0.0.1:`port`; resolves with the socket once the 101
   * arrived, rejects with the status line and body otherwise.
   */
  static async open(port, path, { headers = {}, ms = 5_000 } = {}) {
    const socket = await dial(port, ms);
    const key = randomBytes(16).toString('base64');
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`,
      'Sec-WebSocket-Version: 13',
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    const response = await within(
      ms,
      new Promise((resolve, reject) => {
        let got = Buffer.alloc(0);
        const onData = (chunk) => {
          got = Buffer.concat([got, chunk]);
          const end = got.indexOf('\r\n\r\n');
          if (end < 0) return;
          socket.off('data', onData);
          resolve({ head: got.subarray(0, end).toString('latin1'), rest: got.subarray(end + 4) });
        };
        socket.on('data', onData);
        socket.once('close', () => reject(new Error(`the server closed the connection before answering the upgrade: ${got.toString('latin1')}`)));
      }),
      `the answer to the WebSocket upgrade of ${path}`,
    ).catch((err) => {
      socket.destroy();
      throw err;
    });
    const status = response.head.split('\r\n')[0];
    if (!/^HTTP\/1\.1 101/.test(status)) {
      socket.destroy();
      throw new Failure(`WebSocket upgrade of ${path}`, '101 Switching Protocols', `${status}`);
    }
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    if (!response.head.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)) {
      socket.destroy();
      throw new Failure(`WebSocket upgrade of ${path}`, `Sec-WebSocket-Accept ${accept}`, response.head);
    }
    return new RawWs(socket, response.rest);
  }

  _onData(chunk) {
    this.bytesReceived += chunk.length;
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    this._parse();
  }

  _parse() {
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b[1] & 0x80) off += 4; // a server must not mask; tolerate it for the record
      if (b.length < off + len) return;
      const payload = b.subarray(off, off + len);
      this.buffer = b.subarray(off + len);
      this.frames.push({ fin, opcode, length: len });
      if (opcode === 0x8) {
        this.closeCode = len >= 2 ? payload.readUInt16BE(0) : 1005;
        this.closeReason = len > 2 ? payload.subarray(2).toString('utf8') : '';
        // Answer as a client does, so the server may close the TCP connection cleanly.
        if (!this.closeSent) {
          this.closeSent = true;
          this.send(0x8, payload.subarray(0, Math.min(len, 2)));
        }
      } else if (opcode === 0x9) {
        this.send(0xa, payload);
      } else if (opcode === 0x1 || opcode === 0x2 || opcode === 0x0) {
        const text = this.partial + payload.toString('utf8');
        const parts = text.split(RS);
        this.partial = parts.pop();
        for (const part of parts) this.records.push(part);
      }
      this._wake();
    }
  }

  _wake() {
    for (const w of this._waiters) w();
  }

  /** Sends one frame (see encodeFrame). */
  send(opcode, payload, flags = {}) {
    if (!this.socket.destroyed) this.socket.write(encodeFrame({ opcode, payload, ...flags }));
  }

  /** Sends raw bytes as they are. */
  write(bytes) {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Sends JSON hub messages as one text frame of records. */
  sendRecords(...messages) {
    this.send(0x1, messages.map((m) => JSON.stringify(m) + RS).join(''));
  }

  /** Waits (bounded) until `pick(records)` returns something; resolves with it. */
  waitFor(what, pick, ms = 5_000) {
    let check;
    const found = new Promise((resolve, reject) => {
      check = () => {
        const parsed = this.records.map((r) => {
          try {
            return JSON.parse(r);
          } catch {
            return { unparsed: r };
          }
        });
        const hit = pick(parsed);
        if (hit !== undefined) return resolve(hit);
        if (this.socket.closedAtMs !== undefined || this.socket.destroyed) {
          reject(new Failure(what, 'it before the connection closed', `closed (close code ${this.closeCode ?? 'none'}); records ${JSON.stringify(this.records).slice(0, 500)}`));
        }
      };
      this._waiters.add(check);
      check();
    });
    return within(ms, found, what).finally(() => this._waiters.delete(check));
  }

  /** Waits (bounded) until the TCP connection ends; resolves with `{code, reason, atMs}`. */
  async waitClosed(ms = 5_000, what = 'the server to close the WebSocket') {
    const atMs = await within(ms, this.closed, what);
    return { code: this.closeCode, reason: this.closeReason, atMs };
  }

  destroy() {
    this.socket.destroy();
  }
}

/** `POST {hub}/negotiate?negotiateVersion=1`; resolves with the parsed body (throws a Failure otherwise). */
export async function negotiate(baseUrl, hubPath, { headers = {}, ms = 5_000 } = {}) {
  const r = await fetch(`${baseUrl}${hubPath}/negotiate?negotiateVersion=1`, {
    method: 'POST',
    headers: { 'X-Requested-With': 'XMLHttpRequest', ...headers },
    signal: AbortSignal.timeout(ms),
  });
  const text = await r.text();
  if (r.status !== 200) throw new Failure(`negotiate ${hubPath}`, '200', `${r.status} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

/**
 * A SignalR JSON session over a raw WebSocket: negotiate, upgrade, handshake `{}`.
 * `node` is a started node ({url, port}).
 */
export async function signalrWs(node, { tenant = 'demo', hub = 'chat', ms = 5_000 } = {}) {
  const path = `/hubs/${tenant}/${hub}`;
  const body = await negotiate(node.url, path, { ms });
  const ws = await RawWs.open(node.port, `${path}?id=${encodeURIComponent(body.connectionToken)}`, { ms });
  ws.connectionId = body.connectionId;
  ws.send(0x1, `{"protocol":"json","version":1}${RS}`);
  await ws.waitFor('the handshake response {}', (records) => (records.length > 0 ? records[0] : undefined), ms).then((first) => {
    if (JSON.stringify(first) !== '{}') throw new Failure('the handshake response', '{}', JSON.stringify(first));
  });
  return ws;
}

/** Invokes `target(...args)` on a raw session and waits (bounded) for its completion record. */
let nextInvocation = 0;
export async function rawInvoke(ws, target, args, ms = 5_000) {
  const invocationId = `raw-${++nextInvocation}`;
  ws.sendRecords({ type: 1, invocationId, target, arguments: args });
  return ws.waitFor(`the completion of ${target}`, (records) => records.find((r) => r.type === 3 && r.invocationId === invocationId), ms);
}
