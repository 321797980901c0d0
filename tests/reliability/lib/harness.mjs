// The harness's small tools: bounded waits, a seeded PRNG, failures that say what was
// expected and what was seen, and figures of a process read from /proc.

import { readFileSync, readdirSync } from 'node:fs';

/** A failed expectation: `expected` and `seen` are kept apart so the report can print both. */
export class Failure extends Error {
  constructor(what, expected, seen) {
    super(`${what}: expected ${expected}; seen ${seen}`);
    this.what = what;
    this.expected = expected;
    this.seen = seen;
  }
}

/** Throws a Failure unless `ok`. */
export function expect(ok, what, expected, seen) {
  if (!ok) throw new Failure(what, expected, typeof seen === 'string' ? seen : JSON.stringify(seen));
}

/** Resolves with `promise`, or rejects after `ms` with a Failure naming `what`. */
export function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(what, `done within ${ms} ms`, 'still pending')), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Samples `read()` every `everyMs` from now until `stop()`, which resolves with the largest value
 * seen, `start` if none was larger (for a peak RSS while something happens).
 */
export function samplePeak(read, start, everyMs) {
  let peak = start;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, read());
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      sampling = false;
      await sampler;
      return peak;
    },
  };
}

/**
 * Polls `check()` (sync or async) every `everyMs` until it returns a truthy value, which it
 * resolves with; after `ms` it fails with `what` and the last value seen (`describe(value)`).
 */
export async function eventually(what, check, { ms = 10_000, everyMs = 100, describe = (v) => JSON.stringify(v) } = {}) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    let ok = false;
    try {
      last = await check();
      ok = Boolean(last);
    } catch (err) {
      last = `an error: ${err.message}`;
    }
    if (ok) return last;
    if (Date.now() >= deadline) throw new Failure(what, `true within ${ms} ms`, typeof last === 'string' ? last : describe(last));
    await sleep(everyMs);
  }
}

/** mulberry32: a small seeded PRNG; `rng()` in [0, 1), `rng.int(n)` in [0, n). */
export function seededRng(seed) {
  let a = seed >>> 0;
  const rng = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  rng.int = (n) => Math.floor(rng() * n);
  rng.pick = (items) => items[rng.int(items.length)];
  /** `n` characters of [a-z0-9]. */
  rng.word = (n) => Array.from({ length: n }, () => 'abcdefghijklmnopqrstuvwxyz0123456789'[rng.int(36)]).join('');
  return rng;
}

/** Open file descriptors and resident memory (KiB) of process `pid`; null fields if it is gone. */
export function procStats(pid) {
  let fds = null;
  let rssKiB = null;
  try {
    fds = readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    // gone, or not ours
  }
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)\s+kB/m);
    if (m) rssKiB = Number(m[1]);
  } catch {
    // gone
  }
  return { fds, rssKiB };
}

/** The `q` quantile (0..1) of `values` (nearest rank); null when empty. */
export function quantile(values, q) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Runs `fn(i)` for i in [0, n) with at most `limit` running at once; resolves with the results. */
export async function pool(n, limit, fn) {
  const results = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      results[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  return results;
}

/** Counts of a received sequence of integers against 0..sent-1: lost, duplicated, reordered. */
export function sequenceReport(sent, received) {
  const seen = new Map();
  let reordered = 0;
  let highest = -1;
  for (const n of received) {
    seen.set(n, (seen.get(n) ?? 0) + 1);
    if (n < highest) reordered++;
    highest = Math.max(highest, n);
  }
  let lost = 0;
  let duplicated = 0;
  for (let i = 0; i < sent; i++) {
    const c = seen.get(i) ?? 0;
    if (c === 0) lost++;
    if (c > 1) duplicated += c - 1;
  }
  return { sent, received: received.length, lost, duplicated, reordered };
}
