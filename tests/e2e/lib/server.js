// Starts and stops real `switchboard` processes for the end-to-end tests, and mints
// tokens with its CLI.
//
// Every server listens on 127.0.0.1 with port 0; the port is read from the log line
// `listening addr=127.0.0.1:PORT`. Every wait is bounded. A test stops each server it
// starts (`after(() => server.stop())`); as a last resort, servers still running when the
// test process exits are killed.

import { spawn, execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests/e2e/lib/ is three levels down). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The server binary: `$SWITCHBOARD_BIN`, or the release build in the repository. */
export const SWITCHBOARD_BIN =
  process.env.SWITCHBOARD_BIN ?? path.join(REPO_ROOT, 'target', 'release', 'switchboard');

/** Where the plugins workspace puts its components (`cd plugins && cargo build --target wasm32-wasip2 --release`). */
export const PLUGINS_WASM_DIR =
  process.env.SWITCHBOARD_PLUGINS_WASM_DIR ??
  path.join(REPO_ROOT, 'plugins', 'target', 'wasm32-wasip2', 'release');

/** How long a server may take from spawn to its `listening` line (it compiles the bundled plugins). */
const START_TIMEOUT_MS = 30_000;
/** How long a server may take to exit after SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 5_000;

const live = new Set();
const tempDirs = new Set();
function killAll() {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}
process.on('exit', killAll);
// A test process killed by a signal runs no 'exit' handlers: kill the servers first, then
// die of the same signal (unless someone else, such as the test runner, handles it).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  const onSignal = () => {
    killAll();
    if (process.listenerCount(signal) === 1) {
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    }
  };
  process.on(signal, onSignal);
}

/**
 * The builds of each example hub: Rust (the bundled plugin), JavaScript and Python (deployed
 * under the hub name `NAME-js` / `NAME-py` by `polyglotPlugins`).
 */
export const BUILDS = [
  { lang: 'Rust', suffix: '' },
  { lang: 'JavaScript', suffix: '-js', dir: 'plugins-js' },
  { lang: 'Python', suffix: '-py', dir: 'plugins-python' },
];

/** Path of an example hub built from JavaScript or Python (`./dev test` builds them). */
export function polyglotWasm(build, name) {
  const file = path.join(REPO_ROOT, build.dir, 'target', `${name}.wasm`);
  if (!existsSync(file)) {
    throw new Error(`${file} is missing: build it with \`./dev test\` (or node sdk-js/build.mjs / python3 sdk-python/build.py)`);
  }
  return file;
}

/** Path of the `name` hub's component in one of the BUILDS: Rust's from the plugins workspace. */
export function hubWasm(build, name) {
  return build.dir ? polyglotWasm(build, name) : pluginWasm(name);
}

/** How long a server loading the JavaScript and Python builds may take to start, uncached. */
export const POLYGLOT_START_MS = 300_000;

/** `--plugins` entries deploying the JavaScript and Python builds of `names` to `tenant`. */
export function polyglotPlugins(names, tenant = 'demo') {
  const plugins = {};
  for (const build of BUILDS.filter((b) => b.dir)) {
    for (const name of names) plugins[`${tenant}/${name}${build.suffix}.wasm`] = polyglotWasm(build, name);
  }
  return plugins;
}

/**
 * `--plugins` entries deploying every one of the BUILDS of hub `name` (the Rust one included) to
 * each of `tenants`, as `TENANT/NAME{suffix}.wasm`.
 */
export function everyBuildPlugins(name, tenants = ['demo']) {
  const plugins = {};
  for (const build of BUILDS) {
    const wasm = hubWasm(build, name);
    for (const tenant of tenants) plugins[`${tenant}/${name}${build.suffix}.wasm`] = wasm;
  }
  return plugins;
}

/** Path of a component built by the plugins workspace; fails clearly when it is missing. */
export function pluginWasm(name) {
  const file = path.join(PLUGINS_WASM_DIR, `${name}.wasm`);
  if (!existsSync(file)) {
    throw new Error(
      `${file} is missing: build the plugins workspace first ` +
        '(`cd plugins && cargo build --target wasm32-wasip2 --release`, which `./dev test` does)',
    );
  }
  return file;
}

/** Resolves with `promise`, or rejects after `ms` with a message naming `what`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const ANSI = /\x1b\[[0-9;]*m/g;
// Text (`listening addr=...`) or JSON (`"message":"listening","addr":"..."`) logs.
const LISTENING = /listening\b.*?\baddr(?:=|":)"?((?:127\.0\.0\.1|\[::1\]|localhost):(\d+))/;

/**
 * Starts `switchboard serve --listen 127.0.0.1:0` and waits for its listening line.
 *
 * @param {object} [options]
 * @param {string} [options.config]  TOML text; written to a temp file and passed as `--config`.
 * @param {Record<string, string | Buffer>} [options.plugins]  files for a temp `--plugins` dir,
 *   keyed by relative path (`demo/hostile.wasm`); a string value is a file to copy, a Buffer
 *   is written as is.
 * @param {string[]} [options.args]  more arguments for `serve`.
 * @param {Record<string, string>} [options.env]  more environment variables (`RUST_LOG`, ...).
 * @param {number} [options.startTimeoutMs]  how long to wait for the listening line (raise it for
 *   JavaScript and Python plugins, which take seconds each to compile when not yet cached).
 * @param {string[]} [options.wrap]  a command that execs the server with its arguments, such as
 *   `['prlimit', '--nofile=256:256', '--']` (it must exec, so `pid` stays the server's).
 * @returns {Promise<{url: string, addr: string, port: number, pid: number, configPath?: string,
 *   pluginsDir?: string, log: () => string, waitForLog: Function, running: () => boolean,
 *   stop: () => Promise<void>, kill: (signal?: string) => Promise<void>}>}
 */
export async function startServer({ config, plugins, args = [], env = {}, wrap = [], startTimeoutMs = START_TIMEOUT_MS } = {}) {
  if (!existsSync(SWITCHBOARD_BIN)) {
    throw new Error(`${SWITCHBOARD_BIN} is missing: run \`cargo build --release\` (or set SWITCHBOARD_BIN)`);
  }
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'switchboard-e2e-'));
  tempDirs.add(tmp);
  const argv = ['serve', '--listen', '127.0.0.1:0'];
  let configPath;
  if (config !== undefined) {
    configPath = path.join(tmp, 'switchboard.toml');
    await writeFile(configPath, config);
    argv.push('--config', configPath);
  }
  let pluginsDir;
  if (plugins !== undefined) {
    pluginsDir = path.join(tmp, 'plugins');
    await mkdir(pluginsDir, { recursive: true });
    for (const [rel, source] of Object.entries(plugins)) {
      const dest = path.join(pluginsDir, rel);
      await mkdir(path.dirname(dest), { recursive: true });
      if (typeof source === 'string') await copyFile(source, dest);
      else await writeFile(dest, source);
    }
    argv.push('--plugins', pluginsDir);
  }
  argv.push(...args);

  const [command, ...commandArgs] = [...wrap, SWITCHBOARD_BIN, ...argv];
  const child = spawn(command, commandArgs, {
    cwd: tmp,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  live.add(child);
  let spawnError;
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      // The process could not be spawned (or signalled); there will be no 'exit'.
      spawnError = err;
      live.delete(child);
      resolve({ code: null, signal: null, error: err });
    });
  });

  let output = '';
  const logWaiters = new Set();
  const onData = (chunk) => {
    output += chunk.toString('utf8').replace(ANSI, '');
    for (const w of logWaiters) w();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);

  /** Waits (bounded) until the server's output matches `pattern`; resolves with the match. */
  const waitForLog = (pattern, timeoutMs = 5_000) => {
    let check;
    const found = new Promise((resolve, reject) => {
      check = () => {
        const m = output.match(pattern);
        if (m) resolve(m);
        else if (child.exitCode !== null || child.signalCode !== null || spawnError) {
          const why = spawnError ? `could not be started (${spawnError.message})` : 'exited';
          reject(new Error(`switchboard ${why} before logging ${pattern}; its output:\n${output}`));
        }
      };
      logWaiters.add(check);
      exited.then(check);
      check();
    });
    return withTimeout(found, timeoutMs, `switchboard log line ${pattern}; its output so far:\n${output}`).finally(
      () => logWaiters.delete(check),
    );
  };

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && !spawnError) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    await rm(tmp, { recursive: true, force: true });
    tempDirs.delete(tmp);
  };

  let match;
  try {
    match = await waitForLog(LISTENING, startTimeoutMs);
  } catch (err) {
    await stop();
    throw err;
  }
  const addr = match[1];
  return {
    url: `http://${addr}`,
    addr,
    /** The server's process id (for /proc figures: fds, RSS). */
    pid: child.pid,
    port: Number(match[2]),
    configPath,
    pluginsDir,
    log: () => output,
    waitForLog,
    running: () => child.exitCode === null && child.signalCode === null,
    /** Resolves with `{code, signal}` when the process has exited. */
    exited,
    stop,
    /** Kills the process with `signal` (SIGKILL: no drain, no goodbye) and waits until it is gone. */
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await withTimeout(exited, STOP_TIMEOUT_MS, `switchboard exit after ${signal}`);
    },
  };
}

/** The client URL of a hub: `http://ADDR/hubs/{tenant}/{hub}`. */
export function hubUrl(server, tenant, hub) {
  return `${server.url}/hubs/${tenant}/${hub}`;
}

/** Polls `condition` every 10 ms until it holds; fails after `timeoutMs`. */
export async function until(condition, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Starts a server (`startServer` options) and gives it with the URL of its demo tenant's chat hub. */
export async function startChatServer(options) {
  const server = await startServer(options);
  return { server, chat: hubUrl(server, 'demo', 'chat') };
}

/**
 * Mints a client token with `switchboard token --tenant T --user U [--config F] [--ttl-secs N]`.
 */
export function mintToken({ tenant = 'demo', user, config, ttlSecs } = {}) {
  const argv = ['token', '--tenant', tenant, '--user', user];
  if (config !== undefined) argv.push('--config', config);
  if (ttlSecs !== undefined) argv.push('--ttl-secs', String(ttlSecs));
  return new Promise((resolve, reject) => {
    execFile(SWITCHBOARD_BIN, argv, { timeout: 15_000, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`switchboard ${argv.join(' ')} failed: ${err.message}\n${stderr}`));
        return;
      }
      const token = stdout.trim();
      if (!/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token)) {
        reject(new Error(`switchboard ${argv.join(' ')} printed no JWT: ${JSON.stringify(stdout)}`));
        return;
      }
      resolve(token);
    });
  });
}

/** A random suffix for names (users, groups, identifiers) that must not collide within a run. */
export function unique(prefix = '') {
  return `${prefix}${Math.random().toString(36).slice(2, 10)}`;
}
