// GET /metrics after real traffic: the Prometheus text format parsed line by line, and the
// series the issue asks for, labelled by tenant and hub (method and outcome, kind or limit
// where they apply), with values that match the traffic and only go up. Two tenants with the
// same hub name keep separate series; no label ever holds a connection or user id.

import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { connect, inbox, invoke, WAIT_MS } from './lib/client.js';
import { startNats } from './lib/nats.js';
import { parsePrometheus, select, valueOf } from './lib/prometheus.js';
import { hubUrl, pluginWasm, startServer, withTimeout } from './lib/server.js';

const CONFIG = `
[tenants.m1]
allow_anonymous = true
[tenants.m1.limits]
invocation_cpu_ms = 200
groups_per_connection = 1

[tenants.m2]
allow_anonymous = true
`;

let server;
before(async () => {
  server = await startServer({
    config: CONFIG,
    plugins: {
      'm1/testhub.wasm': pluginWasm('testhub'),
      'm1/hostile.wasm': pluginWasm('hostile'),
      'm2/testhub.wasm': pluginWasm('testhub'),
    },
  });
});
after(() => server?.stop());

async function scrape(node = server) {
  const response = await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(WAIT_MS) });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await response.text());
}

const M1 = { tenant: 'm1', hub: 'testhub' };
const M2 = { tenant: 'm2', hub: 'testhub' };

/** Polls /metrics (bounded) until `check(parsed)` holds; returns that scrape. */
async function scrapeUntil(check, what, node = server) {
  let last;
  for (let i = 0; i < 50; i++) {
    last = await scrape(node);
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`metrics never showed ${what}`);
}

describe('/metrics', { timeout: 60_000 }, () => {
  // First, before any client has connected: nothing has happened yet, and still every series
  // is there, at zero, with the process's own and the build's.
  test('every series is there from the start, with process_* and build_info', async () => {
    const m = await scrape();
    // The one sample of `name` with exactly these labels (valueOf would say 0 for a missing one).
    const present = (name, labels = {}) => {
      const keys = Object.keys(labels).sort().join(',');
      const hits = select(m, name, labels).filter((x) => Object.keys(x.labels).sort().join(',') === keys);
      assert.equal(hits.length, 1, `${name}${JSON.stringify(labels)} is there`);
      return hits[0].value;
    };
    for (const hub of [M1, M2, { tenant: 'm1', hub: 'hostile' }]) {
      assert.equal(present('switchboard_connections', hub), 0, `connections of ${JSON.stringify(hub)}`);
      assert.equal(present('switchboard_messages_in_total', hub), 0);
      assert.equal(present('switchboard_messages_out_total', hub), 0);
    }
    for (const name of [
      'switchboard_http_refused_total',
      'switchboard_http_reserved_evicted_total',
      'switchboard_http_header_timeouts_total',
      'switchboard_accept_errors_total',
    ]) {
      assert.equal(m.types.get(name), 'counter', `${name} TYPE`);
      assert.equal(present(name), 0, name);
    }
    const build = select(m, 'switchboard_build_info');
    assert.equal(build.length, 1);
    assert.equal(build[0].value, 1);
    assert.match(build[0].labels.version, /^\d+\.\d+\.\d+/);
    assert.equal(build[0].labels.os, process.platform === 'darwin' ? 'macos' : process.platform);

    // The process figures agree with what the kernel says of the server's process.
    const status = await readFile(`/proc/${server.pid}/status`, 'utf8');
    const rss = Number(status.match(/^VmRSS:\s+(\d+) kB/m)[1]) * 1024;
    const reported = present('process_resident_memory_bytes');
    assert.ok(reported > rss / 2 && reported < rss * 2, `RSS ${reported} vs /proc ${rss}`);
    const fds = (await readdir(`/proc/${server.pid}/fd`)).length;
    const openFds = present('process_open_fds');
    assert.ok(openFds > 0 && Math.abs(openFds - fds) <= 10, `open fds ${openFds} vs /proc ${fds}`);
    assert.ok(present('process_max_fds') >= openFds);
    assert.ok(present('process_cpu_seconds_total') > 0, 'CPU time (compiling the plugins took some)');
    const started = present('process_start_time_seconds');
    assert.ok(started > 0 && started <= Date.now() / 1000, `start time ${started}`);
    assert.ok(present('process_threads') >= 1);
  });

  test('counts connections, messages, invocations, latency, plugin errors and limit hits', async (t) => {
    const before = await scrape();
    const [a, b] = await Promise.all([connect(t, hubUrl(server, 'm1', 'testhub')), connect(t, hubUrl(server, 'm1', 'testhub'))]);
    const other = await connect(t, hubUrl(server, 'm2', 'testhub'));
    const hostile = await connect(t, hubUrl(server, 'm1', 'hostile'));

    const N = 7;
    for (let i = 0; i < N; i++) assert.equal(await invoke(a, 'echo', i), i);
    assert.equal(await invoke(other, 'echo', 'x'), 'x');
    // One broadcast reaches both m1 connections: two messages out, plus its completion.
    b.on('message', () => {});
    a.on('message', () => {});
    await invoke(b, 'broadcast', 'hello');
    await assert.rejects(invoke(a, 'throw', 'on purpose'), /on purpose/);
    await assert.rejects(invoke(a, 'noSuchMethod'), /Unknown hub method/);
    await invoke(a, 'joinGroup', 'g1');
    await assert.rejects(invoke(a, 'joinGroup', 'g2'), /at most 1 groups/);
    await assert.rejects(withTimeout(hostile.invoke('spin'), 10_000, 'spin'), /CPU time limit/);
    await assert.rejects(withTimeout(hostile.invoke('trap'), 10_000, 'trap'), /An unexpected error occurred invoking 'trap' on the server./);

    const m = await scrape();
    assert.equal(m.types.get('switchboard_connections'), 'gauge');
    assert.equal(m.types.get('switchboard_invocations_total'), 'counter');
    assert.equal(m.types.get('switchboard_invocation_duration_seconds'), 'histogram');

    assert.equal(valueOf(m, 'switchboard_connections', M1), 2);
    assert.equal(valueOf(m, 'switchboard_connections', M2), 1);
    assert.equal(valueOf(m, 'switchboard_connections', { tenant: 'm1', hub: 'hostile' }), 1);

    const grew = (name, labels) => valueOf(m, name, labels) - valueOf(before, name, labels);
    // echo x N, broadcast, throw, noSuchMethod, joinGroup x2 on m1/testhub.
    assert.ok(grew('switchboard_messages_in_total', M1) >= N + 5, 'messages in');
    // N + 5 completions, and the broadcast to two connections.
    assert.ok(grew('switchboard_messages_out_total', M1) >= N + 5 + 2, 'messages out');
    assert.equal(grew('switchboard_messages_in_total', M2), 1);

    const echo = { ...M1, method: 'echo' };
    assert.equal(grew('switchboard_invocations_total', { ...echo, outcome: 'ok' }), N);
    assert.equal(grew('switchboard_invocations_total', { ...M2, method: 'echo', outcome: 'ok' }), 1);
    assert.equal(grew('switchboard_invocations_total', { ...M1, method: 'throw', outcome: 'error' }), 1);
    assert.equal(grew('switchboard_invocations_total', { ...M1, method: '', outcome: 'unknown_method' }), 1);
    assert.equal(grew('switchboard_invocations_total', { tenant: 'm1', hub: 'hostile', method: 'spin', outcome: 'timeout' }), 1);

    // The latency histogram of echo: N observations, cumulative buckets ending in +Inf.
    assert.equal(grew('switchboard_invocation_duration_seconds_count', echo), N);
    assert.ok(valueOf(m, 'switchboard_invocation_duration_seconds_sum', echo) > 0);
    const buckets = select(m, 'switchboard_invocation_duration_seconds_bucket', echo).sort(
      (x, y) => Number(x.labels.le) - Number(y.labels.le),
    );
    assert.ok(buckets.length >= 10, 'buckets');
    assert.equal(buckets.at(-1).labels.le, '+Inf');
    assert.equal(buckets.at(-1).value, valueOf(m, 'switchboard_invocation_duration_seconds_count', echo));
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value, 'cumulative');

    const hostileHub = { tenant: 'm1', hub: 'hostile' };
    assert.equal(grew('switchboard_plugin_errors_total', { ...hostileHub, kind: 'timeout' }), 1);
    assert.equal(grew('switchboard_plugin_errors_total', { ...hostileHub, kind: 'trap' }), 1);
    assert.equal(grew('switchboard_limit_hits_total', { ...M1, limit: 'groups_per_connection' }), 1);
    assert.equal(grew('switchboard_limit_hits_total', { ...hostileHub, limit: 'invocation_cpu_ms' }), 1);
    assert.equal(select(m, 'switchboard_limit_hits_total', { tenant: 'm2' }).length, 0, 'm2 reached no limit');

    // Bounded labels: tenant, hub, and method/outcome/kind/limit only.
    const allowed = new Set(['tenant', 'hub', 'method', 'outcome', 'kind', 'limit', 'le', 'quantile']);
    for (const s of m.samples.filter((s) => s.name.startsWith('switchboard_') && 'tenant' in s.labels)) {
      for (const key of Object.keys(s.labels)) assert.ok(allowed.has(key), `${s.name} has label ${key}`);
      for (const v of Object.values(s.labels)) {
        for (const c of [a, b, other]) assert.notEqual(v, c.connectionId, `${s.name} holds a connection id`);
      }
    }

    // More traffic: the counters go up, never down.
    for (let i = 0; i < 3; i++) await invoke(a, 'echo', i);
    const later = await scrape();
    assert.equal(
      valueOf(later, 'switchboard_invocations_total', { ...echo, outcome: 'ok' }),
      valueOf(m, 'switchboard_invocations_total', { ...echo, outcome: 'ok' }) + 3,
    );
    assert.ok(valueOf(later, 'switchboard_messages_in_total', M1) > valueOf(m, 'switchboard_messages_in_total', M1));

    // Connections closed: the gauge comes back down.
    await Promise.all([a, b].map((c) => withTimeout(c.stop(), WAIT_MS, 'stop')));
    await scrapeUntil((s) => valueOf(s, 'switchboard_connections', M1) === 0, 'm1 connections back to 0');
    assert.equal(valueOf(await scrape(), 'switchboard_connections', M2), 1);
  });

  test('each limit hit is counted; a burst of hits is logged once', async (t) => {
    const before = await scrape();
    const conn = await connect(t, hubUrl(server, 'm1', 'testhub'));
    await invoke(conn, 'joinGroup', 'a');
    await assert.rejects(invoke(conn, 'joinGroup', 'b'), /at most 1 groups/);
    await assert.rejects(invoke(conn, 'joinGroup', 'c'), /at most 1 groups/);
    const after = await scrape();
    const hits = (s) => valueOf(s, 'switchboard_limit_hits_total', { ...M1, limit: 'groups_per_connection' });
    assert.equal(hits(after) - hits(before), 2);
    // Logged once for the burst, not once per hit.
    const logged = server.log().match(/tenant limit reached.*groups_per_connection|groups_per_connection.*tenant limit reached/g) ?? [];
    assert.equal(logged.length, 1, `log lines: ${logged.join('\n')}`);
  });
});

describe('/metrics in a cluster', { timeout: 60_000 }, () => {
  let nats;
  let node;
  before(async () => {
    nats = await startNats();
    node = await startServer({
      config: '[tenants.m1]\nallow_anonymous = true\n[nats]\nregistry_ttl_secs = 3\n',
      plugins: { 'm1/testhub.wasm': pluginWasm('testhub') },
      args: ['--nats', nats.url],
    });
  });
  after(async () => {
    await node?.stop();
    await nats?.close();
  });

  test('the backplane\'s series show up beside the hub\'s', async (t) => {
    const conn = await connect(t, hubUrl(node, 'm1', 'testhub'));
    const box = inbox(conn, 'message');
    // A broadcast reaches this node's connection directly and is published to the other
    // nodes in the background: the published count shows up once JetStream has stored it.
    await invoke(conn, 'broadcast', 'over nats');
    await box.next((args) => args[0] === 'over nats');
    const published = (s) => s.samples.filter((x) => x.name === 'switchboard_backplane_published_total').reduce((sum, x) => sum + x.value, 0);
    const m = await scrapeUntil((s) => published(s) >= 1, 'a backplane publish counted', node);
    assert.equal(published(m), 1);
    for (const name of ['switchboard_backplane_gaps_total', 'switchboard_backplane_lost_messages_total', 'switchboard_backplane_lag_seconds_count']) {
      assert.ok(m.samples.some((x) => x.name === name), `${name} missing`);
    }
    assert.equal(valueOf(m, 'switchboard_connections', M1), 1);
    assert.equal(valueOf(m, 'switchboard_invocations_total', { ...M1, method: 'broadcast', outcome: 'ok' }), 1);
  });
});
