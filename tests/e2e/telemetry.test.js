// Observability with real parts: spans exported over OTLP/HTTP to a small receiver in this test
// (a node http server that records every request), JSON logs with an access line per request,
// and W3C trace context: a client that sends `traceparent` on negotiate and on its WebSocket
// finds the server's spans in its own trace. Two nodes over a real nats-server show the backplane
// spans: a broadcast published on one node and delivered on the other.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { inbox, invoke, WAIT_MS } from './lib/client.js';
import { waitReady } from './lib/cluster.js';
import { startNats } from './lib/nats.js';
import { hubUrl, mintToken, pluginWasm, startServer, withTimeout } from './lib/server.js';

const CONFIG = `
[tenants.otel]
allow_anonymous = true
signing_keys = ["telemetry-test-signing-key-0123456789"]
`;

/** An OTLP/HTTP receiver on 127.0.0.1: every request's path, content type and body. */
async function startReceiver() {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests.push({ path: req.url, type: req.headers['content-type'] ?? '', body: Buffer.concat(chunks) });
      // An empty ExportTraceServiceResponse, in the encoding asked.
      const json = (req.headers['content-type'] ?? '').includes('json');
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : '');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    /** Every span received as JSON so far, with its resource's service name and attributes as an object. */
    spans() {
      const spans = [];
      for (const r of requests.filter((r) => r.type.includes('json'))) {
        for (const rs of JSON.parse(r.body.toString('utf8')).resourceSpans ?? []) {
          const service = attributes(rs.resource?.attributes)['service.name'];
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) spans.push({ ...s, service, attrs: attributes(s.attributes) });
          }
        }
      }
      return spans;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** OTLP attributes ([{key, value: {stringValue | intValue | ...}}]) as a plain object. */
function attributes(list = []) {
  const out = {};
  for (const { key, value } of list) {
    const v = value ?? {};
    out[key] = v.stringValue ?? v.intValue ?? v.doubleValue ?? v.boolValue ?? null;
  }
  return out;
}

/** Polls (bounded) until `find(spans)` returns something; returns it. */
async function waitForSpans(receiver, find, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = find(receiver.spans());
    if (found) return found;
    await sleep(100);
  }
  const names = receiver.spans().map((s) => s.name);
  assert.fail(`no ${what} among the spans received: ${JSON.stringify(names)}`);
}

/** A client that sends `traceparent` on negotiate and on its WebSocket request. */
async function connectTraced(t, url, traceparent) {
  const connection = new HubConnectionBuilder()
    .withUrl(url, { transport: HttpTransportType.WebSockets, headers: { traceparent } })
    .configureLogging(LogLevel.Warning)
    .build();
  t.after(() => withTimeout(connection.stop(), WAIT_MS, 'stop'));
  await withTimeout(connection.start(), WAIT_MS, 'start');
  return connection;
}

/** The server's stderr lines that are JSON objects. */
function jsonLines(server) {
  const lines = [];
  for (const line of server.log().split('\n')) {
    if (!line.startsWith('{')) continue;
    lines.push(JSON.parse(line));
  }
  return lines;
}

const hex = (bytes) => randomBytes(bytes).toString('hex');
// Short delays, so the batches leave within the test's waits.
const OTEL_ENV = { OTEL_BSP_SCHEDULE_DELAY: '100' };

describe('telemetry', { timeout: 120_000 }, () => {
  let receiver;
  let server;
  before(async () => {
    receiver = await startReceiver();
    server = await startServer({
      config: CONFIG,
      plugins: { 'otel/testhub.wasm': pluginWasm('testhub') },
      args: ['--log-format', 'json', '--otlp-endpoint', receiver.url, '--otlp-protocol', 'http-json'],
      env: OTEL_ENV,
    });
  });
  after(async () => {
    await server?.stop();
    await receiver?.close();
  });

  test('negotiate, connection and invocation spans join the caller trace', async (t) => {
    const traceId = hex(16);
    const callerSpan = hex(8);
    const conn = await connectTraced(t, hubUrl(server, 'otel', 'testhub'), `00-${traceId}-${callerSpan}-01`);
    assert.equal(await invoke(conn, 'echo', 'traced'), 'traced');
    await assert.rejects(invoke(conn, 'throw', 'on purpose'), /on purpose/);

    const inTrace = (spans) => spans.filter((s) => s.traceId === traceId);
    const negotiate = await waitForSpans(receiver, (s) => inTrace(s).find((x) => x.name === 'negotiate'), 'negotiate span');
    assert.equal(negotiate.attrs.tenant, 'otel');
    assert.equal(negotiate.attrs.hub, 'testhub');
    assert.ok(negotiate.attrs['connection.id'], 'negotiate names the connection');
    assert.equal(negotiate.service, 'switchboard');

    // Each request's span is a child of the caller's span, and names method, path and status.
    const requests = inTrace(receiver.spans()).filter((s) => s.name === 'http.request');
    const negotiateRequest = requests.find((s) => s.attrs['url.path'] === '/hubs/otel/testhub/negotiate');
    assert.ok(negotiateRequest, 'the negotiate request span');
    assert.equal(negotiateRequest.parentSpanId, callerSpan);
    assert.equal(negotiateRequest.attrs['http.request.method'], 'POST');
    assert.equal(Number(negotiateRequest.attrs['http.response.status_code']), 200);
    assert.equal(negotiate.parentSpanId, negotiateRequest.spanId);

    // The connection's span: a child of its WebSocket request, with transport and protocol. It
    // ends (and is exported) when the connection does.
    await withTimeout(conn.stop(), WAIT_MS, 'stop');
    const connectionSpan = await waitForSpans(
      receiver,
      (s) => inTrace(s).find((x) => x.name === 'connection'),
      'connection span after the connection ended',
    );
    assert.equal(connectionSpan.attrs.tenant, 'otel');
    assert.equal(connectionSpan.attrs.hub, 'testhub');
    assert.equal(connectionSpan.attrs['connection.id'], negotiate.attrs['connection.id']);
    assert.equal(connectionSpan.attrs.transport, 'webSockets');
    assert.equal(connectionSpan.attrs.protocol, 'json');
    const upgrade = inTrace(receiver.spans()).find((s) => s.spanId === connectionSpan.parentSpanId);
    assert.ok(upgrade, 'the connection span is a child of a request span in the trace');
    assert.equal(upgrade.attrs['url.path'], '/hubs/otel/testhub');
    assert.equal(Number(upgrade.attrs['http.response.status_code']), 101);

    // Invocations: children of the connection, with method, plugin, outcome and duration.
    const invokes = inTrace(receiver.spans()).filter((s) => s.name === 'invoke');
    const echo = invokes.find((s) => s.attrs.method === 'echo');
    const thrown = invokes.find((s) => s.attrs.method === 'throw');
    assert.ok(echo && thrown, `invoke spans for echo and throw: ${JSON.stringify(invokes.map((s) => s.attrs))}`);
    for (const s of [echo, thrown]) {
      assert.equal(s.parentSpanId, connectionSpan.spanId);
      assert.equal(s.attrs.tenant, 'otel');
      assert.equal(s.attrs.hub, 'testhub');
      assert.match(String(s.attrs['plugin.sha256']), /^[0-9a-f]{12}$/);
      assert.ok(Number(s.attrs.duration_ms) >= 0, 'duration_ms');
    }
    assert.equal(echo.attrs.outcome, 'ok');
    assert.equal(thrown.attrs.outcome, 'error');
  });

  test('a request without traceparent starts a trace of its own', async () => {
    const response = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(WAIT_MS) });
    assert.equal(response.status, 200);
    const span = await waitForSpans(
      receiver,
      (s) => s.find((x) => x.name === 'http.request' && x.attrs['url.path'] === '/healthz'),
      '/healthz request span',
    );
    assert.match(span.traceId, /^[0-9a-f]{32}$/);
    assert.ok(!span.parentSpanId, 'a root span');
  });

  test('JSON logs: one access line per request, secrets redacted, with the trace id', async () => {
    const traceId = hex(16);
    const token = await mintToken({ tenant: 'otel', user: 'logged', config: server.configPath });
    const response = await fetch(
      `${server.url}/hubs/otel/testhub/negotiate?negotiateVersion=1&access_token=${token}`,
      { method: 'POST', headers: { traceparent: `00-${traceId}-${hex(8)}-01` }, signal: AbortSignal.timeout(WAIT_MS) },
    );
    assert.equal(response.status, 200);
    await response.text();
    await server.waitForLog(new RegExp(`"trace_id":"${traceId}"`), WAIT_MS);
    const lines = jsonLines(server);
    assert.ok(lines.length > 0, 'every line is JSON');
    const access = lines.filter((l) => l.target === 'switchboard::access');
    const line = access.find((l) => l.trace_id === traceId);
    assert.ok(line, 'the access line of the negotiate');
    assert.equal(line.level, 'INFO');
    assert.equal(line.message, 'request');
    assert.equal(line.method, 'POST');
    assert.equal(line.path, '/hubs/otel/testhub/negotiate');
    assert.equal(line.query, 'negotiateVersion=1&access_token=[redacted]');
    assert.equal(line.status, 200);
    assert.ok(typeof line.duration_ms === 'number' && line.duration_ms >= 0);
    assert.ok(line.bytes > 0, 'the body size');
    // The client's address (trusted proxies resolved), without the socket's port.
    assert.equal(line.remote, '127.0.0.1');
    assert.ok(line.timestamp, 'a timestamp');
    assert.ok(!server.log().includes(token), 'the token is never logged');
    // The listening line, too, is JSON with its fields.
    assert.ok(lines.some((l) => l.message === 'listening' && l.addr === server.addr));
  });
});

describe('telemetry defaults', { timeout: 60_000 }, () => {
  test('protobuf is the default encoding; text logs carry the access line', async () => {
    const receiver = await startReceiver();
    const server = await startServer({
      config: CONFIG,
      plugins: { 'otel/testhub.wasm': pluginWasm('testhub') },
      args: ['--otlp-endpoint', receiver.url],
      env: OTEL_ENV,
    });
    try {
      const r = await fetch(`${server.url}/readyz?access_token=secret-${hex(4)}`, { signal: AbortSignal.timeout(WAIT_MS) });
      assert.equal(r.status, 200);
      await server.waitForLog(/switchboard::access: request method=GET path=\/readyz query="?access_token=\[redacted\]"? status=200/, WAIT_MS);
      const deadline = Date.now() + 15_000;
      while (receiver.requests.length === 0 && Date.now() < deadline) await sleep(100);
      const sent = receiver.requests[0];
      assert.ok(sent, 'spans were exported');
      assert.equal(sent.path, '/v1/traces');
      assert.equal(sent.type, 'application/x-protobuf');
      assert.ok(sent.body.length > 0);
      // The protobuf carries the span names as strings.
      assert.ok(sent.body.includes(Buffer.from('http.request')), 'an http.request span');
      assert.ok(!server.log().startsWith('{'), 'text logs by default');
    } finally {
      await server.stop();
      await receiver.close();
    }
  });
});

describe('backplane spans', { timeout: 120_000 }, () => {
  let receiver;
  let nats;
  let nodes = [];
  before(async () => {
    receiver = await startReceiver();
    nats = await startNats();
    const start = () =>
      startServer({
        config: CONFIG,
        plugins: { 'otel/testhub.wasm': pluginWasm('testhub') },
        args: ['--nats', nats.url, '--otlp-endpoint', receiver.url, '--otlp-protocol', 'http-json'],
        env: OTEL_ENV,
      });
    nodes = await Promise.all([start(), start()]);
    await Promise.all(nodes.map((n) => waitReady(n)));
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await nats?.close();
    await receiver?.close();
  });

  test('a broadcast is published on one node and delivered on the other', async (t) => {
    const traceId = hex(16);
    const sender = await connectTraced(t, hubUrl(nodes[0], 'otel', 'testhub'), `00-${traceId}-${hex(8)}-01`);
    const listener = await connectTraced(t, hubUrl(nodes[1], 'otel', 'testhub'), `00-${hex(16)}-${hex(8)}-01`);
    const box = inbox(listener, 'message');
    await invoke(sender, 'broadcast', 'across');
    await box.next((args) => args[0] === 'across');

    const invokeSpan = await waitForSpans(
      receiver,
      (s) => s.find((x) => x.traceId === traceId && x.name === 'invoke' && x.attrs.method === 'broadcast'),
      'the broadcast invoke span',
    );
    const publish = await waitForSpans(
      receiver,
      (s) => s.find((x) => x.name === 'backplane.publish' && x.traceId === traceId),
      'backplane.publish in the caller trace',
    );
    assert.equal(publish.parentSpanId, invokeSpan.spanId);
    assert.equal(publish.attrs.tenant, 'otel');
    assert.equal(publish.attrs.hub, 'testhub');
    assert.ok(Number(publish.attrs.bytes) > 0);
    const deliver = await waitForSpans(
      receiver,
      (s) => s.find((x) => x.name === 'backplane.deliver' && x.attrs.tenant === 'otel'),
      'backplane.deliver',
    );
    assert.equal(deliver.attrs.hub, 'testhub');
    assert.equal(deliver.attrs.partition, publish.attrs.partition);
    assert.ok(Number(deliver.attrs.sequence) > 0);
  });
});
