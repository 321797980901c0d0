// The deployment files in deploy/ against the real binary: the compose file's and the
// Containerfile's SWITCHBOARD_* settings are ones the config loader takes, and a node started
// with them (on a real three-server NATS JetStream cluster) is healthy; the systemd unit's
// ExecStart with its Environment= lines serves /healthz, and `systemd-analyze` accepts the
// unit and rates its hardening. Also: the bundled example hubs are found next to the binary,
// and a node that finds none still serves everything else.
//
// The compose file is read with Python's yaml module (Debian's python3-yaml).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { cli } from './lib/admin.js';
import { waitReady } from './lib/cluster.js';
import { WAIT_MS, connect, invoke } from './lib/client.js';
import { freePorts, startNatsCluster } from './lib/nats.js';
import { negotiate } from './lib/raw.js';
import { PLUGINS_WASM_DIR, REPO_ROOT, SWITCHBOARD_BIN, hubUrl, pluginWasm, startServer } from './lib/server.js';

const DEPLOY = path.join(REPO_ROOT, 'deploy');
const NOTE = /names no config key/;

function run(file, args, { env = process.env, timeout = 30_000 } = {}) {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function tempDir(t) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-packaging-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function get(url) {
  const response = await fetch(url, { signal: AbortSignal.timeout(WAIT_MS) });
  await response.arrayBuffer();
  return response.status;
}

/** The compose file as plain data. */
async function compose() {
  const script = 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))';
  const { code, stdout, stderr } = await run('python3', ['-c', script, path.join(DEPLOY, 'compose.yaml')]);
  assert.equal(code, 0, `cannot read deploy/compose.yaml (python3 with yaml): ${stderr}`);
  return JSON.parse(stdout);
}

/** The Containerfile's ENV settings (`ENV A=1 \` continued lines). */
async function imageEnv() {
  const text = (await readFile(path.join(DEPLOY, 'Containerfile'), 'utf8')).replace(/\\\n/g, ' ');
  const env = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('ENV ')) continue;
    for (const pair of line.slice(4).trim().split(/\s+/)) {
      const at = pair.indexOf('=');
      assert.ok(at > 0, `ENV entry without '=': ${pair}`);
      env[pair.slice(0, at)] = pair.slice(at + 1);
    }
  }
  return env;
}

/** The Containerfile's HEALTHCHECK command (its exec form, a JSON array). */
async function imageHealthcheck() {
  const text = (await readFile(path.join(DEPLOY, 'Containerfile'), 'utf8')).replace(/\\\n/g, ' ');
  const line = text.split('\n').find((l) => l.startsWith('HEALTHCHECK '));
  assert.ok(line, 'the Containerfile has a HEALTHCHECK');
  return JSON.parse(line.slice(line.indexOf(' CMD ') + 5));
}

/**
 * A Switchboard service's environment as the container sees it: the image's ENV, then the
 * service's `environment`; secrets (/run/secrets/NAME) become files in `dir` with fresh keys.
 */
async function serviceEnv(service, dir) {
  const env = { ...(await imageEnv()) };
  const given = Array.isArray(service.environment)
    ? Object.fromEntries(service.environment.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]))
    : service.environment;
  const secrets = {};
  for (const [key, value] of Object.entries(given)) {
    const secret = String(value).match(/^\/run\/secrets\/([\w-]+)$/);
    if (secret) {
      const file = path.join(dir, secret[1]);
      secrets[secret[1]] = randomBytes(24).toString('hex');
      await writeFile(file, `${secrets[secret[1]]}\n`);
      env[key] = file;
    } else {
      env[key] = String(value);
    }
  }
  return { env, secrets };
}

/** The `[Service]` settings of the systemd unit: every value of each key, in order. */
async function unitService() {
  const text = await readFile(path.join(DEPLOY, 'switchboard.service'), 'utf8');
  const settings = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const header = line.match(/^\[(\w+)\]$/);
    if (header) {
      section = header[1];
    } else if (section === 'Service') {
      const at = line.indexOf('=');
      (settings[line.slice(0, at)] ??= []).push(line.slice(at + 1));
    }
  }
  return settings;
}

describe('packaging', { timeout: 180_000 }, () => {
  test('a node that finds no bundled plugins still serves, and says so once', async (t) => {
    const empty = await tempDir(t);
    const server = await startServer({
      env: { SWITCHBOARD_BUNDLED_PLUGINS_DIR: empty },
      plugins: { 'demo/testhub.wasm': pluginWasm('testhub') },
    });
    t.after(() => server.stop());
    assert.equal(server.log().match(/no bundled example plugins found/g)?.length, 1, server.log());
    assert.ok(server.log().includes(empty), server.log());
    assert.equal(await get(`${server.url}/healthz`), 200);
    assert.equal(await get(`${server.url}/readyz`), 200);
    // No chat hub, so no demo page; the folder's hub works.
    assert.equal((await negotiate(hubUrl(server, 'demo', 'chat'))).status, 404);
    assert.equal(await get(`${server.url}/`), 404);
    const connection = await connect(t, hubUrl(server, 'demo', 'testhub'));
    assert.equal(await invoke(connection, 'echo', 'still serving'), 'still serving');
  });

  test('a node built in the repository finds the plugins workspace build by itself', async (t) => {
    if (path.relative(REPO_ROOT, SWITCHBOARD_BIN).split(path.sep)[0] !== 'target') {
      t.skip(`${SWITCHBOARD_BIN} is not a build in this repository`);
      return;
    }
    const server = await startServer();
    t.after(() => server.stop());
    const loaded = await server.waitForLog(/bundled example plugins loaded.*/);
    assert.match(loaded[0], /loaded=2/);
    assert.ok(loaded[0].includes(PLUGINS_WASM_DIR), loaded[0]);
    const connection = await connect(t, hubUrl(server, 'demo', 'chat'));
    assert.deepEqual(await invoke(connection, 'echo', { a: 1 }), { a: 1 });
  });

  test("the compose file's settings are config keys, and a node with them joins a NATS cluster", async (t) => {
    const file = await compose();
    const nodes = Object.entries(file.services).filter(([, s]) => s.build);
    const nats = Object.entries(file.services).filter(([, s]) => String(s.image).includes('nats'));
    assert.equal(nodes.length, 3, 'three Switchboard nodes');
    assert.equal(nats.length, 3, 'three nats-servers');
    for (const [, server] of nats) assert.ok(server.command.includes('--jetstream'));
    const dir = await tempDir(t);

    // Each node's environment, checked as `serve` reads it, with nothing of it ignored.
    for (const [name, service] of nodes) {
      assert.ok(service.healthcheck === undefined || !service.healthcheck.disable, name);
      const { env } = await serviceEnv(service, dir);
      const { code, stdout, stderr } = await run(SWITCHBOARD_BIN, ['check-config'], {
        env: { PATH: process.env.PATH, ...env },
      });
      assert.equal(code, 0, `${name}: ${stderr}`);
      assert.match(stdout, /^ok: <built-in> \(2 tenants\)/, name);
      assert.doesNotMatch(stderr, NOTE, `${name}: ${stderr}`);
    }

    // The first node's environment for real, on a real three-server JetStream cluster: only the
    // addresses (NATS, listen), the hubs' folder and the cache folder are this machine's.
    const cluster = await startNatsCluster(3, { label: 'packaging' });
    t.after(() => cluster.close());
    const { env, secrets } = await serviceEnv(nodes[0][1], dir);
    Object.assign(env, {
      SWITCHBOARD_NATS__URL: cluster.url,
      SWITCHBOARD_BUNDLED_PLUGINS_DIR: PLUGINS_WASM_DIR,
      SWITCHBOARD_COMPILE_CACHE_DIR: dir,
    });
    const server = await startServer({ env });
    t.after(() => server.stop());
    assert.equal(await get(`${server.url}/healthz`), 200);
    await waitReady(server);
    const connection = await connect(t, hubUrl(server, 'demo', 'chat'));
    assert.equal(await invoke(connection, 'echo', 'compose'), 'compose');
    // The image's health check, pointed at this node's port, passes; at a closed port it fails.
    const [check, ...checkArgs] = await imageHealthcheck();
    const at = (port) => checkArgs.map((a) => a.replace('127.0.0.1/5000', `127.0.0.1/${port}`));
    const healthy = await run(check, at(server.port), { timeout: 5_000 });
    assert.equal(healthy.code, 0, healthy.stderr);
    const closed = await run(check, at((await freePorts(1))[0]), { timeout: 5_000 });
    assert.notEqual(closed.code, 0);
    // The admin key from its secret file opens the admin API, which lists the env's tenants.
    const response = await fetch(`${server.url}/admin/v1/tenants`, {
      headers: { authorization: `Bearer ${secrets.admin_keys}` },
      signal: AbortSignal.timeout(WAIT_MS),
    });
    const body = await response.text();
    assert.equal(response.status, 200, body);
    assert.match(body, /"acme"/);
  });

  test("the systemd unit's ExecStart and Environment serve /healthz", async (t) => {
    const unit = await unitService();
    const [binary, ...args] = unit.ExecStart[0].split(/\s+/);
    assert.equal(binary, '/usr/local/bin/switchboard');
    const dir = await tempDir(t);
    const config = path.join(dir, 'switchboard.toml');
    await copyFile(path.join(DEPLOY, 'switchboard.toml'), config);
    const keyFile = path.join(dir, 'acme_signing_keys');
    await writeFile(keyFile, `${randomBytes(24).toString('hex')}\n`);
    const env = {};
    for (const assignment of unit.Environment) {
      const at = assignment.indexOf('=');
      env[assignment.slice(0, at)] = assignment.slice(at + 1).replace('%C', dir);
    }
    assert.equal(env.SWITCHBOARD_CONFIG, '/etc/switchboard/switchboard.toml');
    env.SWITCHBOARD_CONFIG = config;
    // What an operator's /etc/switchboard/switchboard.env adds: the tenant's key file, and a
    // plugin folder with a hub for it.
    env.SWITCHBOARD_TENANTS__ACME__SIGNING_KEYS_FILE = keyFile;
    await mkdir(path.join(dir, 'plugins', 'acme'), { recursive: true });
    await copyFile(pluginWasm('testhub'), path.join(dir, 'plugins', 'acme', 'testhub.wasm'));
    env.SWITCHBOARD_PLUGINS = path.join(dir, 'plugins');

    const checked = await run(SWITCHBOARD_BIN, ['check-config'], { env: { PATH: process.env.PATH, ...env } });
    assert.equal(checked.code, 0, checked.stderr);
    assert.doesNotMatch(checked.stderr, NOTE, checked.stderr);

    // `startServer` adds --listen 127.0.0.1:0, which wins over the unit's SWITCHBOARD_LISTEN.
    const server = await startServer({ args: args.slice(1), env });
    t.after(() => server.stop());
    assert.equal(args[0], 'serve');
    assert.equal(await get(`${server.url}/healthz`), 200);
    const token = await cli(['token', '--tenant', 'acme', '--user', 'ops'], { env });
    assert.equal(token.code, 0, token.stderr);
    const connection = await connect(t, hubUrl(server, 'acme', 'testhub'), { token: token.stdout.trim() });
    assert.equal(await invoke(connection, 'echo', 'from systemd'), 'from systemd');
  });

  test('systemd-analyze verifies the unit and rates its exposure at most 2.0', async (t) => {
    const analyze = '/usr/bin/systemd-analyze';
    if (!existsSync(analyze)) {
      t.skip('systemd-analyze is not installed');
      return;
    }
    // verify checks that ExecStart's binary exists: point it at this build.
    const dir = await tempDir(t);
    const unit = path.join(dir, 'switchboard.service');
    const text = await readFile(path.join(DEPLOY, 'switchboard.service'), 'utf8');
    await writeFile(unit, text.replaceAll('/usr/local/bin/switchboard', SWITCHBOARD_BIN));
    const verified = await run(analyze, ['verify', unit]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.stderr.trim(), '', verified.stderr);
    const security = await run(analyze, ['security', '--offline=true', '--no-pager', unit]);
    const level = security.stdout.match(/Overall exposure level for switchboard\.service: ([\d.]+)/);
    assert.ok(level, security.stdout + security.stderr);
    assert.ok(Number(level[1]) <= 2.0, `exposure ${level[1]}`);
  });
});
