// Turns run.sh's results.jsonl into a Markdown table of absolute figures and ratios against
// the project's performance targets. Usage: node table.mjs results.jsonl [mode]
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [file, mode = ''] = process.argv.slice(2);
const rows = new Map();
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const r = JSON.parse(line);
  rows.set(r.label, r);
}
const res = (label) => rows.get(label)?.result;
const why = (label) => {
  const r = rows.get(label);
  if (!r) return 'not run';
  return r.skipped ? `skipped: ${r.skipped}` : r.error ? 'failed' : '';
};
const fmt = (x, digits = 0) =>
  x === undefined || x === null || Number.isNaN(x)
    ? '—'
    : Number(x).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ratio = (a, b) => (a != null && b ? a / b : undefined);
const verdict = (r, ok) => (r === undefined ? '—' : ok(r) ? 'met' : '**missed**');

const out = [];
out.push('| measure | Switchboard | floor | Socket.IO | ratio | target | verdict |');
out.push('|---|---:|---:|---:|---:|---|---|');

// Fan-out: best delivered msg/s with p99 < 100 ms and nothing lost.
const fo = (n) => res(`${n}/fanout`);
const [sbF, flF, ioF] = ['switchboard', 'floor', 'socketio'].map(fo);
const subs = sbF?.subscribers ?? flF?.subscribers ?? ioF?.subscribers;
const best = (r) => (r ? r.best_delivered_per_sec : undefined);
const cap = (r) => (r && !r.limit_found ? ' (lower bound: no rate failed)' : '');
const rFo = ratio(best(sbF), best(ioF));
out.push(
  `| fan-out, ${subs} subscribers, 100 B: delivered msg/s at p99 < 100 ms, no loss | ${fmt(best(sbF))}${cap(sbF)} | ${fmt(best(flF))}${cap(flF)} | ${fmt(best(ioF))}${cap(ioF)} | ${fmt(rFo, 2)}x Socket.IO | >= 10x Socket.IO | ${verdict(rFo, (r) => r >= 10)} |`,
);
const rFl = ratio(best(sbF), best(flF));
out.push(`| fan-out vs the floor | | | | ${fmt(rFl, 2)}x floor | >= 1x floor | ${verdict(rFl, (r) => r >= 1)} |`);
out.push(
  `| fan-out: publish rate found (msg/s) / p99 ms there | ${fmt(sbF?.best_rate)} / ${fmt(sbF?.best_p99_ms, 1)} | ${fmt(flF?.best_rate)} / ${fmt(flF?.best_p99_ms, 1)} | ${fmt(ioF?.best_rate)} / ${fmt(ioF?.best_p99_ms, 1)} | | | |`,
);

// Idle: RSS per connection.
const sizes = [...rows.keys()]
  .map((k) => k.match(/^switchboard\/idle\/(\d+)$/)?.[1])
  .filter(Boolean);
for (const n of sizes) {
  const [sb, fl, io] = ['switchboard', 'floor', 'socketio'].map((s) => res(`${s}/idle/${n}`));
  const kib = (r) => r?.server_rss_per_conn_kib;
  const note = why(`switchboard/idle/${n}`) || why(`socketio/idle/${n}`);
  const r = ratio(kib(sb), kib(io));
  out.push(
    `| idle ${n}: server RSS KiB per connection${note ? ` (${note})` : ''} | ${fmt(kib(sb), 1)} | ${fmt(kib(fl), 1)} | ${fmt(kib(io), 1)} | ${fmt(r, 2)}x Socket.IO | <= 0.5x Socket.IO | ${verdict(r, (x) => x <= 0.5)} |`,
  );
  const cps = (x) => x?.connects_per_sec;
  const held = (x) => (x ? `${fmt(x.still_open_at_end)}/${fmt(x.connections)}` : '—');
  out.push(
    `| idle ${n}: connects/s (held at end) | ${fmt(cps(sb))} (${held(sb)}) | ${fmt(cps(fl))} (${held(fl)}) | ${fmt(cps(io))} (${held(io)}) | | | |`,
  );
}

// Echo.
const [sbR, flR, ioR] = ['switchboard', 'floor', 'socketio'].map((s) => res(`${s}/rpc`));
const rt = (r) => r?.round_trips_per_sec;
const rR = ratio(rt(sbR), rt(ioR));
out.push(
  `| echo, ${sbR?.clients ?? ioR?.clients} clients x 1 in flight: round trips/s | ${fmt(rt(sbR))} | ${fmt(rt(flR))} | ${fmt(rt(ioR))} | ${fmt(rR, 2)}x Socket.IO | >= 5x Socket.IO | ${verdict(rR, (r) => r >= 5)} |`,
);
out.push(
  `| echo p50 / p99 ms | ${fmt(sbR?.latency_ms.p50, 2)} / ${fmt(sbR?.latency_ms.p99, 2)} | ${fmt(flR?.latency_ms.p50, 2)} / ${fmt(flR?.latency_ms.p99, 2)} | ${fmt(ioR?.latency_ms.p50, 2)} / ${fmt(ioR?.latency_ms.p99, 2)} | | | |`,
);
const mp = res('switchboard/rpc-msgpack');
if (mp) out.push(`| echo over MessagePack: round trips/s | ${fmt(rt(mp))} | | | | | |`);

// Cluster.
const sbC = res('switchboard/cluster');
const ioC = res('socketio/cluster');
const cl = (r) => (r ? `${fmt(r.best_delivered_per_sec)}${cap(r)} (p99 ${fmt(r.best_p99_ms, 1)} ms)` : '—');
const rC = ratio(sbC?.best_delivered_per_sec, ioC?.best_delivered_per_sec);
const sbNote = why('switchboard/cluster');
out.push(
  `| cluster of ${ioC?.urls?.length ?? sbC?.urls?.length ?? '?'} nodes, ${ioC?.subscribers ?? sbC?.subscribers} subscribers spread, publisher on node 1: delivered msg/s at p99 < 100 ms, no loss | ${sbC ? cl(sbC) : sbNote} | | ${ioC ? `${cl(ioC)} (Redis adapter)` : why('socketio/cluster')} | ${fmt(rC, 2)}x | >= 3x Socket.IO + Redis | ${verdict(rC, (r) => r >= 3)} |`,
);

// Wasm invocation: the last `cargo bench --bench invoke` criterion estimates, if any.
const invokeDir = join(dirname(fileURLToPath(import.meta.url)), '../../target/criterion/hub_invoke');
if (existsSync(invokeDir)) {
  for (const bench of readdirSync(invokeDir).sort()) {
    const f = join(invokeDir, bench, 'new/estimates.json');
    if (!existsSync(f)) continue;
    const e = JSON.parse(readFileSync(f, 'utf8'));
    const us = e.mean.point_estimate / 1000;
    const when = statSync(f).mtime.toISOString().slice(0, 16).replace('T', ' ');
    const pooled = !bench.startsWith('fresh');
    out.push(
      `| Wasm invocation \`${bench}\` (criterion mean, ${when} UTC) | ${fmt(us, 2)} µs | | | | <= 5 µs pooled; fresh reported | ${pooled ? verdict(us, (x) => x <= 5) : 'reported (fresh instance, for comparison)'} |`,
    );
  }
}

// Load generator CPU (100 = one core busy): near the cores it is pinned to, the figure is the
// load generator's limit rather than the server's.
const lgc = (r) => r?.best_loadgen_cpu_pct ?? r?.loadgen_cpu_pct;
out.push(`| load generator CPU % (fan-out at the rate found / echo) | ${fmt(lgc(sbF))} / ${fmt(lgc(sbR))} | ${fmt(lgc(flF))} / ${fmt(lgc(flR))} | ${fmt(lgc(ioF))} / ${fmt(lgc(ioR))} | | | |`);
console.log(out.join('\n'));
if (mode) console.log(`\n(${mode} mode; JSON lines in ${file})`);
