// Every transport and protocol: official clients built for a given transport and hub protocol,
// and raw Server-Sent Events and long-polling clients (fetch) for wire-level checks.

import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';
import { withTimeout } from './server.js';
import { WAIT_MS } from './client.js';
import { negotiate, RS } from './raw.js';

/** Each transport with the protocols the JS client allows on it (SSE is text only). */
export const MATRIX = [
  { transport: 'WebSockets', protocol: 'json' },
  { transport: 'WebSockets', protocol: 'messagepack' },
  { transport: 'ServerSentEvents', protocol: 'json' },
  { transport: 'LongPolling', protocol: 'json' },
  { transport: 'LongPolling', protocol: 'messagepack' },
];

/**
 * Builds a HubConnection (not started) for exactly one transport (a name from MATRIX, or an
 * HttpTransportType bit mask) and protocol ('json' or 'messagepack').
 * `logs`, when given, is an array that receives every client log line as `[level, message]`.
 */
export function buildHub(url, { transport = 'WebSockets', protocol = 'json', token, logs, WebSocket, logLevel = LogLevel.Warning } = {}) {
  const options = { transport: typeof transport === 'number' ? transport : HttpTransportType[transport] };
  if (token !== undefined) options.accessTokenFactory = () => token;
  if (WebSocket !== undefined) options.WebSocket = WebSocket;
  let builder = new HubConnectionBuilder().withUrl(url, options);
  if (protocol === 'messagepack') builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const logger = logs
    ? {
        log(level, message) {
          logs.push([level, message]);
          if (level >= logLevel && level !== LogLevel.None) console.error(`[signalr ${LogLevel[level]}] ${message}`);
        },
      }
    : logLevel;
  return builder.configureLogging(logger).build();
}

/** Builds and starts a HubConnection (bounded); stops it when the test `t` ends. */
export async function connectHub(t, url, options = {}) {
  const connection = buildHub(url, options);
  t.after(() => withTimeout(connection.stop(), WAIT_MS, `stop ${url}`));
  await withTimeout(connection.start(), WAIT_MS, `start ${url} over ${options.transport}`);
  return connection;
}

/** The name of the transport a started HubConnection uses ('WebSockets', 'ServerSentEvents', 'LongPolling'). */
export function transportOf(connection) {
  const name = connection.connection?.transport?.constructor?.name ?? '';
  return name.replace(/Transport$/, '').replace(/^WebSocket$/, 'WebSockets');
}

/** One HTTP request, bounded; resolves with `{status, headers, body: Buffer}`. */
export async function request(method, url, { body, headers = {}, timeoutMs = WAIT_MS } = {}) {
  const response = await fetch(url, { method, body, headers, signal: AbortSignal.timeout(timeoutMs) });
  return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
}

/** Negotiates (v1) and returns the body; fails unless it is a 200 with a token. */
export async function negotiated(hubUrl, options = {}) {
  const { status, body } = await negotiate(hubUrl, options);
  if (status !== 200 || typeof body !== 'object' || !body.connectionToken) {
    throw new Error(`negotiate ${hubUrl} gave ${status} ${JSON.stringify(body)}`);
  }
  return body;
}

/** JSON records of a text payload (the 0x1E-terminated records it holds). */
export function records(text) {
  if (text.length > 0 && !text.endsWith(RS)) throw new Error(`payload does not end on a record boundary: ${JSON.stringify(text)}`);
  return text.split(RS).slice(0, -1).map((r) => JSON.parse(r));
}

/** A raw long-polling connection: `GET` polls, `POST` sends, `DELETE` closes. */
export class RawLongPoll {
  constructor(hubUrl, id, { token } = {}) {
    this.url = `${hubUrl}?id=${id}`;
    this.headers = token === undefined ? {} : { Authorization: `Bearer ${token}` };
  }

  /** Negotiates and returns a RawLongPoll for the new connection (not yet polled). */
  static async negotiate(hubUrl, options = {}) {
    const body = await negotiated(hubUrl, options);
    const poll = new RawLongPoll(hubUrl, body.connectionToken, options);
    poll.negotiated = body;
    return poll;
  }

  /** One poll: `{status, headers, text}`. */
  async poll({ timeoutMs = WAIT_MS } = {}) {
    const { status, headers, body } = await request('GET', `${this.url}&_=${Date.now()}`, { headers: this.headers, timeoutMs });
    return { status, headers, text: body.toString('utf8') };
  }

  /** Polls until a non-empty body (or a status other than 200) arrives, within `timeoutMs`. */
  async pollData({ timeoutMs = WAIT_MS } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no data polled within ${timeoutMs} ms`);
      const result = await this.poll({ timeoutMs: left });
      if (result.status !== 200 || result.text.length > 0) return result;
    }
  }

  /** POSTs `body` (text or bytes); resolves with the status. */
  async send(body) {
    const { status } = await request('POST', this.url, { body, headers: { ...this.headers, 'Content-Type': 'text/plain;charset=UTF-8' } });
    return status;
  }

  async delete() {
    const { status } = await request('DELETE', this.url, { headers: this.headers });
    return status;
  }
}

/** A raw Server-Sent Events stream; events are parsed as the EventSource would. */
export class RawSse {
  constructor(hubUrl, id, { token } = {}) {
    this.hubUrl = hubUrl;
    this.id = id;
    this.token = token;
    this.events = [];
    this.chunks = [];
    this._waiters = new Set();
    this._buffer = '';
    this._read = 0;
    this.ended = false;
  }

  static async negotiate(hubUrl, options = {}) {
    const body = await negotiated(hubUrl, options);
    const sse = new RawSse(hubUrl, body.connectionToken, options);
    sse.negotiated = body;
    return sse;
  }

  /** Opens the stream; resolves with the response (status and headers) once they arrive. */
  async open() {
    this._abort = new AbortController();
    let url = `${this.hubUrl}?id=${this.id}`;
    if (this.token !== undefined) url += `&access_token=${encodeURIComponent(this.token)}`;
    const response = await withTimeout(
      fetch(url, { headers: { Accept: 'text/event-stream' }, signal: this._abort.signal }),
      WAIT_MS,
      `open SSE ${url}`,
    );
    this.response = response;
    if (response.ok && response.body) this._pump(response.body);
    return response;
  }

  async _pump(body) {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body) {
        const text = decoder.decode(chunk, { stream: true });
        this.chunks.push(text);
        this._buffer += text;
        let end;
        while ((end = this._buffer.indexOf('\r\n\r\n')) >= 0) {
          const block = this._buffer.slice(0, end);
          this._buffer = this._buffer.slice(end + 4);
          const data = block
            .split('\r\n')
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
          if (data.length > 0) this.events.push(data.join('\n'));
        }
        this._wake();
      }
    } catch {
      // aborted by close(), or the server went away
    }
    this.ended = true;
    this._wake();
  }

  _wake() {
    for (const w of this._waiters) w();
  }

  /** The next unread event's data, as text. */
  nextEvent(timeoutMs = WAIT_MS) {
    let check;
    const found = new Promise((resolve, reject) => {
      check = () => {
        if (this._read < this.events.length) resolve(this.events[this._read++]);
        else if (this.ended) reject(new Error(`the SSE stream ended; chunks: ${JSON.stringify(this.chunks)}`));
      };
      this._waiters.add(check);
      check();
    });
    return withTimeout(found, timeoutMs, `an SSE event; chunks so far: ${JSON.stringify(this.chunks)}`).finally(() =>
      this._waiters.delete(check),
    );
  }

  /** Resolves once the server ends the stream. */
  waitEnded(timeoutMs = WAIT_MS) {
    let check;
    const ended = new Promise((resolve) => {
      check = () => {
        if (this.ended) resolve();
      };
      this._waiters.add(check);
      check();
    });
    return withTimeout(ended, timeoutMs, `the server to end the SSE stream; chunks: ${JSON.stringify(this.chunks)}`).finally(() =>
      this._waiters.delete(check),
    );
  }

  async send(body) {
    const headers = { 'Content-Type': 'text/plain;charset=UTF-8' };
    if (this.token !== undefined) headers.Authorization = `Bearer ${this.token}`;
    const { status } = await request('POST', `${this.hubUrl}?id=${this.id}`, { body, headers });
    return status;
  }

  close() {
    this._abort?.abort();
  }
}
