#!/usr/bin/env node
// The reliability suite: hostile traffic and faults against real release-build nodes, real
// nats-server clusters and real clients. Each scenario is a module of scenarios/ exporting
// `name`, `point`, `description` and `run(ctx)`; after each one the node(s) it started must
// still serve /healthz and an official client's echo, and everything it started is stopped.
//
//   node tests/reliability/run.mjs [--list] [--only NAME[,NAME]] [--seed N] [--repeat N]
//                                  [--soak] [--measure] [--json FILE]
//
// CI-sized by default; --soak uses the sizes and durations of the issue. --measure adds the
// report-only scenarios (latency beside attacks); they are skipped otherwise.

import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Failure, procStats, seededRng, within } from './lib/harness.mjs';
import { assertServes, launchNode, SWITCHBOARD_BIN } from './lib/node.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function usage(message) {
  if (message) console.error(`run.mjs: ${message}`);
  console.error('usage: node tests/reliability/run.mjs [--list] [--only NAME[,NAME]] [--seed N] [--repeat N] [--soak] [--measure] [--json FILE]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { list: false, only: null, seed: Date.now() % 1_000_000, repeat: 1, soak: false, measure: false, json: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--list') opts.list = true;
    else if (arg === '--only') opts.only = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (arg === '--seed') opts.seed = Number.parseInt(value(), 10);
    else if (arg === '--repeat') opts.repeat = Number.parseInt(value(), 10);
    else if (arg === '--soak') opts.soak = true;
    else if (arg === '--measure') opts.measure = true;
    else if (arg === '--json') opts.json = value();
    else if (arg === '--help' || arg === '-h') usage();
    else usage(`unknown argument ${arg}`);
  }
  if (!Number.isFinite(opts.seed)) usage('--seed needs an integer');
  if (!Number.isInteger(opts.repeat) || opts.repeat < 1 || opts.repeat > 1000) usage('--repeat needs an integer in 1..1000');
  return opts;
}

async function loadScenarios() {
  const dir = path.join(HERE, 'scenarios');
  const files = readdirSync(dir).filter((f) => f.endsWith('.mjs')).sort();
  const scenarios = [];
  for (const file of files) {
    const mod = await import(pathToFileURL(path.join(dir, file)).href);
    for (const key of ['name', 'point', 'description', 'run']) {
      if (mod[key] === undefined) throw new Error(`scenarios/${file} exports no ${key}`);
    }
    scenarios.push({ file, group: 'check', timeoutMs: 120_000, soakTimeoutMs: 600_000, ...mod });
  }
  const names = new Set();
  for (const s of scenarios) {
    if (names.has(s.name)) throw new Error(`two scenarios are named ${s.name}`);
    names.add(s.name);
  }
  return scenarios.sort((a, b) => a.point - b.point || a.name.localeCompare(b.name));
}

/** The context a scenario runs with: sizes, PRNG, figures, and everything it must stop. */
function makeContext(scenario, { seed, soak }) {
  const cleanups = [];
  const checked = [];
  const figures = {};
  const notes = [];
  const ctx = {
    seed,
    soak,
    rng: seededRng(seed),
    /** `ci` normally, `full` with --soak. */
    size: (ci, full) => (soak ? full : ci),
    /** Records a figure for the report (`unit` is part of its name: `rss_growth_kib`). */
    figure(name, value) {
      figures[name] = value;
      console.log(`    ${name} = ${typeof value === 'object' ? JSON.stringify(value) : value}`);
    },
    note(text) {
      notes.push(text);
      console.log(`    note: ${text}`);
    },
    log: (...args) => console.log('    ', ...args),
    /** Runs `fn` when the scenario ends (last registered, first run), also on failure. */
    defer(fn) {
      cleanups.push(fn);
    },
    /**
     * Starts a node (see launchNode); stopped at the end. Unless `check` is false, it must
     * serve /healthz and an echo after the scenario.
     */
    async startNode({ check = true, label, ...options } = {}) {
      const node = await launchNode({
        onMissing: (key) => ctx.note(`this build rejects config key ${key}; started without it`),
        ...options,
      });
      node.label = label ?? `node ${checked.length + 1}`;
      ctx.defer(() => node.stop());
      if (check) checked.push(node);
      return node;
    },
    /** fds and RSS of a node's process now. */
    stats: (node) => procStats(node.pid),
  };
  return { ctx, cleanups, checked, figures, notes };
}

async function runOne(scenario, opts, seed, repeatIndex) {
  const started = Date.now();
  const { ctx, cleanups, checked, figures, notes } = makeContext(scenario, { seed, soak: opts.soak });
  const result = { name: scenario.name, point: scenario.point, seed, repeat: repeatIndex, passed: false, figures, notes };
  console.log(`\n--- ${scenario.name} (point ${scenario.point}, seed ${seed}): ${scenario.description}`);
  const limit = opts.soak ? scenario.soakTimeoutMs : scenario.timeoutMs;
  const fail = (err) => {
    result.error = err instanceof Failure ? { what: err.what, expected: err.expected, seen: err.seen } : { message: err.message };
    result.message = err.message;
    if (!(err instanceof Failure)) result.stack = err.stack;
  };
  let ranOk = false;
  try {
    await within(limit, Promise.resolve().then(() => scenario.run(ctx)), `scenario ${scenario.name}`);
    ranOk = true;
  } catch (err) {
    fail(err);
  }
  // Whether or not the scenario held, the node must still serve: checked and reported either way.
  let serves = true;
  for (const node of checked) {
    try {
      await assertServes(node, node.label);
    } catch (err) {
      serves = false;
      ctx.note(`after the scenario: ${err.message}`);
      if (ranOk) fail(err);
      break;
    }
  }
  figures.node_serves_after = serves;
  result.passed = ranOk && serves;
  for (const fn of cleanups.reverse()) {
    try {
      await within(15_000, Promise.resolve().then(fn), `cleanup of ${scenario.name}`);
    } catch (err) {
      console.log(`    cleanup failed: ${err.message}`);
    }
  }
  result.durationMs = Date.now() - started;
  const secs = (result.durationMs / 1000).toFixed(1);
  if (result.passed) console.log(`ok   ${scenario.name} (${secs} s)`);
  else console.log(`FAIL ${scenario.name} (${secs} s): ${result.message}${result.stack ? `\n${result.stack}` : ''}`);
  return result;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const all = await loadScenarios();
  if (opts.list) {
    for (const s of all) console.log(`${String(s.point).padStart(2)}  ${s.name.padEnd(26)} ${s.group === 'measure' ? '[--measure] ' : ''}${s.description}`);
    return 0;
  }
  let chosen;
  if (opts.only) {
    const unknown = opts.only.filter((n) => !all.some((s) => s.name === n));
    if (unknown.length > 0) usage(`no scenario named ${unknown.join(', ')} (see --list)`);
    chosen = all.filter((s) => opts.only.includes(s.name));
  } else {
    chosen = all.filter((s) => s.group !== 'measure' || opts.measure);
  }
  console.log(`reliability: ${chosen.length} scenario(s), seed ${opts.seed}, repeat ${opts.repeat}${opts.soak ? ', soak' : ''}; binary ${SWITCHBOARD_BIN}`);
  const results = [];
  for (let r = 0; r < opts.repeat; r++) {
    for (const scenario of chosen) results.push(await runOne(scenario, opts, opts.seed + r, r));
  }
  const passed = results.filter((r) => r.passed).length;
  const failed = results.length - passed;
  if (opts.json) {
    const report = {
      date: new Date().toISOString(),
      // Relative to the repository when it is the repository's build: no machine paths in results.
      binary: path.relative(path.join(HERE, '..', '..'), SWITCHBOARD_BIN).startsWith('..') ? path.basename(SWITCHBOARD_BIN) : path.relative(path.join(HERE, '..', '..'), SWITCHBOARD_BIN),
      host: { cpus: os.cpus().length, node: process.version },
      seed: opts.seed,
      repeat: opts.repeat,
      soak: opts.soak,
      passed,
      failed,
      results,
    };
    await writeFile(opts.json, `${JSON.stringify(report, null, 2)}\n`);
  }
  console.log('');
  for (const r of results.filter((x) => !x.passed)) console.log(`failed: ${r.name} (seed ${r.seed}): ${r.message}`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

// Interrupted: exit through process.exit, so the helpers' 'exit' hooks kill every node and
// nats-server still running (a death by signal would run none of them).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`\nrun.mjs: ${signal}; stopping every process started`);
    process.exit(130);
  });
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err.stack ?? err);
    process.exit(2);
  },
);
