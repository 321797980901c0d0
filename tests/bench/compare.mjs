// Summarises compare.sh's results.jsonl: median per side over the rounds, and AFTER/BEFORE.
// Usage: node compare.mjs results.jsonl
import { readFileSync } from 'node:fs';

const [file] = process.argv.slice(2);
const runs = { before: { idle: [], rpc: [], fanout: [] }, after: { idle: [], rpc: [], fanout: [] } };
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const r = JSON.parse(line);
  const [side, kind] = r.label.split('/');
  if (r.result && runs[side]?.[kind]) runs[side][kind].push(r.result);
}
const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  if (!v.length) return undefined;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const fmt = (x, d = 0) =>
  x === undefined ? '—' : Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const figures = [
  ['idle server RSS per connection, KiB', 'idle', (r) => r.server_rss_per_conn_kib, 2],
  ['echo round trips/s', 'rpc', (r) => r.round_trips_per_sec, 0],
  ['echo p99 ms', 'rpc', (r) => r.latency_ms?.p99, 2],
  ['fan-out delivered msg/s (p99 < 100 ms, no loss)', 'fanout', (r) => r.best_delivered_per_sec, 0],
  ['fan-out p99 ms at the rate found', 'fanout', (r) => r.best_p99_ms, 1],
];
const out = ['| measure | before | after | after / before | runs |', '|---|---:|---:|---:|---|'];
for (const [name, kind, get, d] of figures) {
  const a = median(runs.before[kind].map(get));
  const b = median(runs.after[kind].map(get));
  const each = (side) => runs[side][kind].map(get).map((x) => fmt(x, d)).join(', ');
  out.push(
    `| ${name} | ${fmt(a, d)} | ${fmt(b, d)} | ${a && b !== undefined ? fmt(b / a, 3) : '—'} | before ${each('before')}; after ${each('after')} |`,
  );
}
console.log(out.join('\n'));
