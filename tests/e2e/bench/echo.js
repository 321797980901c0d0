// Echo throughput with the official client: `chat.echo` round trips per second over one
// connection, sequential (one call in flight) and pipelined (WINDOW in flight).
// Not part of the test suite. Prints one JSON line per transport and protocol.
//
//   node tests/e2e/bench/echo.js [--seconds 5] [--window 32] [--url http://127.0.0.1:5000]
//        [--transport WebSockets|ServerSentEvents|LongPolling|all] [--protocol json|messagepack|all]
//        [--stateful] [--hub chat|chat-js|chat-py]
//
// `--stateful` builds the client with `withStatefulReconnect()` (WebSockets only): every message
// is numbered, buffered until acknowledged, and acknowledged once a second.
//
// `--hub chat-js` / `chat-py` measure the JavaScript and Python builds of the chat hub (built by
// `./dev test`), which a server started here loads beside the bundled Rust one.
//
// `all` runs every combination the client allows (MessagePack never runs over SSE).
//
// Without --url it starts its own server (SWITCHBOARD_BIN, default target/release/switchboard)
// on 127.0.0.1 and stops it at the end. Bounded in time (--seconds per phase) and count.

import { parseArgs } from 'node:util';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';
import { POLYGLOT_START_MS, hubUrl, polyglotPlugins, startServer, withTimeout } from '../lib/server.js';
import { buildHub, MATRIX, transportOf } from '../lib/transports.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    window: { type: 'string', default: '32' },
    url: { type: 'string' },
    transport: { type: 'string', default: 'WebSockets' },
    protocol: { type: 'string', default: 'json' },
    stateful: { type: 'boolean', default: false },
    hub: { type: 'string', default: 'chat' },
  },
});
const runs = MATRIX.filter(
  ({ transport, protocol }) =>
    (values.transport === 'all' || values.transport === transport) &&
    (values.protocol === 'all' || values.protocol === protocol) &&
    (!values.stateful || transport === 'WebSockets'),
);
if (runs.length === 0) {
  console.error(`no such transport/protocol pair: ${values.transport}/${values.protocol}`);
  process.exit(2);
}
const seconds = Number(values.seconds);
const window = Number(values.window);
const MAX_CALLS = 10_000_000;

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs `inFlight` workers calling echo until the deadline; returns rate and latencies. */
async function phase(connection, inFlight, forSeconds = seconds) {
  const payload = { n: 0, text: 'hello from the bench' };
  const latencies = [];
  const started = performance.now();
  const deadline = started + forSeconds * 1000;
  let calls = 0;
  const worker = async () => {
    while (performance.now() < deadline && calls < MAX_CALLS) {
      calls++;
      const t0 = performance.now();
      await withTimeout(connection.invoke('echo', payload), 10_000, 'echo');
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const round = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
  return {
    in_flight: inFlight,
    round_trips: latencies.length,
    seconds: Math.round(elapsed * 1000) / 1000,
    per_second: Math.round(latencies.length / elapsed),
    p50_ms: round(percentile(latencies, 50)),
    p99_ms: round(percentile(latencies, 99)),
  };
}

/** A WebSockets client with stateful reconnect. */
function buildStateful(url, protocol) {
  let builder = new HubConnectionBuilder()
    .withUrl(url, { transport: HttpTransportType.WebSockets })
    .withStatefulReconnect()
    .configureLogging(LogLevel.Warning);
  if (protocol === 'messagepack') builder = builder.withHubProtocol(new MessagePackHubProtocol());
  return builder.build();
}

const server = values.url
  ? undefined
  : await startServer(
      values.hub === 'chat' ? {} : { plugins: polyglotPlugins(['chat']), startTimeoutMs: POLYGLOT_START_MS },
    );
const base = values.url ?? server.url;
try {
  for (const { transport, protocol } of runs) {
    const url = hubUrl({ url: base }, 'demo', values.hub);
    const connection = values.stateful ? buildStateful(url, protocol) : buildHub(url, { transport, protocol });
    try {
      await withTimeout(connection.start(), 10_000, 'start');
      if (transportOf(connection) !== transport) throw new Error(`connected over ${transportOf(connection)}, not ${transport}`);
      await phase(connection, 1, Math.min(1, seconds)); // warm-up: plugin instances, JIT
      const sequential = await phase(connection, 1);
      const pipelined = await phase(connection, window);
      console.log(
        JSON.stringify({
          bench: 'echo',
          hub: values.hub,
          client: '@microsoft/signalr',
          transport,
          protocol,
          stateful_reconnect: values.stateful,
          node: process.version,
          sequential,
          pipelined,
        }),
      );
    } finally {
      await connection.stop();
    }
  }
} finally {
  await server?.stop();
}
