// Configuration from the environment, the way containers and orchestrators pass it: every
// config key as a SWITCHBOARD_* variable (nested keys joined by `__`), secrets read from
// files (`..._FILE`), errors that say where the bad value is (FILE:LINE:COLUMN or the
// variable) exactly once, and `switchboard check-config` that validates without starting.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { cli } from './lib/admin.js';
import { WAIT_MS, connect, invoke } from './lib/client.js';
import { negotiate } from './lib/raw.js';
import { hubUrl, pluginWasm, startServer } from './lib/server.js';

const SIGNING_KEY = 'acme-signing-key-from-a-file';
const ADMIN_KEY = 'admin-key-from-a-secret-file';

async function tempDir(t) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-config-env-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('configuration from the environment', { timeout: 90_000 }, () => {
  test('tenants, nested limits and secret files come from SWITCHBOARD_* variables', async (t) => {
    const dir = await tempDir(t);
    const keyFile = path.join(dir, 'signing_keys');
    const adminFile = path.join(dir, 'admin_keys');
    await writeFile(keyFile, `${SIGNING_KEY}\n`);
    await writeFile(adminFile, `${ADMIN_KEY}\n`);
    const env = {
      SWITCHBOARD_TENANTS__ACME__SIGNING_KEYS_FILE: keyFile,
      SWITCHBOARD_TENANTS__ACME__LIMITS__CONNECTIONS: '1',
      SWITCHBOARD_ADMIN__KEYS_FILE: adminFile,
      SWITCHBOARD_KEEP_ALIVE_SECS: '5',
    };
    const server = await startServer({ plugins: { 'acme/testhub.wasm': pluginWasm('testhub') }, env });
    t.after(() => server.stop());

    // The token command reads the same environment, so it signs with the file's key.
    const { code, stdout, stderr } = await cli(['token', '--tenant', 'acme', '--user', 'ann'], { env });
    assert.equal(code, 0, stderr);
    const token = stdout.trim();
    const url = hubUrl(server, 'acme', 'testhub');
    const connection = await connect(t, url, { token });
    assert.equal(await invoke(connection, 'echo', 'from env'), 'from env');

    // The nested limit: one connection, so the next negotiation is refused.
    const second = await negotiate(url, { token });
    assert.match(String(second.body.error), /allows at most 1 on this server/, JSON.stringify(second.body));

    // Tenants from the environment replace the built-in demo tenant.
    assert.equal((await negotiate(hubUrl(server, 'demo', 'chat'))).status, 404);

    // The admin key from its file opens the admin API; a wrong one does not.
    const admin = (key) =>
      fetch(`${server.url}/admin/v1/tenants`, {
        headers: { authorization: `Bearer ${key}` },
        signal: AbortSignal.timeout(WAIT_MS),
      });
    assert.equal((await admin(ADMIN_KEY)).status, 200);
    assert.equal((await admin('admin-key-that-is-not-configured')).status, 401);
  });

  test('check-config: 0 and "ok" for a good file, 1 and FILE:LINE:COLUMN once for a bad one', async (t) => {
    const dir = await tempDir(t);
    const good = path.join(dir, 'good.toml');
    await writeFile(good, '[tenants.acme]\nsigning_keys = ["k"]\n');
    const ok = await cli(['check-config', good]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^ok: .*good\.toml \(1 tenants\)/);

    const cases = [
      // An unknown key, on line 4.
      ['[nats]\nurl = "nats://127.0.0.1:4222"\n\nbogus = 1\n', /bad\.toml:4:1: unknown field `bogus`/],
      // A wrong type: the value on line 2.
      ['[limits]\nconnections = "many"\n', /bad\.toml:2:15: invalid type: string "many", expected usize/],
      // A value out of range: the checked key's own line.
      [
        '[tenants.acme]\nsigning_keys = ["k"]\n[tenants.acme.limits]\nmemory_mb = 1\nconnections = 0\n',
        /bad\.toml:5:1: tenant 'acme': limits\.connections must be positive/,
      ],
      // TOML syntax.
      ['max_message_size = [\n', /bad\.toml:1:21: unclosed array/],
    ];
    const bad = path.join(dir, 'bad.toml');
    for (const [text, expected] of cases) {
      await writeFile(bad, text);
      const result = await cli(['check-config', bad]);
      assert.equal(result.code, 1, `${text}: ${result.stdout}`);
      assert.match(result.stderr, expected);
      assert.equal(result.stderr.trim().split('\n').length, 1, `reported once:\n${result.stderr}`);
      assert.doesNotMatch(result.stderr, /backtrace/i);
    }

    // A bad value from the environment is reported at its variable.
    const fromEnv = await cli(['check-config', good], {
      env: { SWITCHBOARD_TENANTS__ACME__LIMITS__CONNECTIONS: '0' },
    });
    assert.equal(fromEnv.code, 1);
    assert.match(fromEnv.stderr, /^error: SWITCHBOARD_TENANTS__ACME__LIMITS__CONNECTIONS: .*connections must be positive/);
    const typed = await cli(['check-config', good], { env: { SWITCHBOARD_NATS__PARTITIONS: 'four' } });
    assert.equal(typed.code, 1);
    assert.match(typed.stderr, /^error: SWITCHBOARD_NATS__PARTITIONS: invalid type: string "four"/);
    const missing = await cli(['check-config', good], {
      env: { SWITCHBOARD_ADMIN__KEYS_FILE: path.join(dir, 'no-such-file') },
    });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /SWITCHBOARD_ADMIN__KEYS_FILE: cannot read .*no-such-file/);
  });

  test('serve refuses a bad config with the same one-line message, before listening', async (t) => {
    const dir = await tempDir(t);
    const bad = path.join(dir, 'bad.toml');
    await writeFile(bad, 'keep_alive_secs = 10\n\n  client_timeout_secs = 5\n');
    const result = await cli(['serve', '--listen', '127.0.0.1:0', '--config', bad]);
    assert.equal(result.code, 1);
    const lines = (result.stdout + result.stderr).trim().split('\n');
    const errors = lines.filter((l) => l.includes('client_timeout_secs must be larger'));
    assert.equal(errors.length, 1, lines.join('\n'));
    assert.match(errors[0], /bad\.toml:3:3: /);
    assert.ok(!lines.some((l) => /listening/.test(l)), 'never listened');
  });

  test('every serve option has help text and an environment variable', async () => {
    const { code, stdout } = await cli(['serve', '--help']);
    assert.equal(code, 0);
    for (const [option, variable] of [
      ['--listen', 'SWITCHBOARD_LISTEN'],
      ['--plugins', 'SWITCHBOARD_PLUGINS'],
      ['--config', 'SWITCHBOARD_CONFIG'],
      ['--nats', 'SWITCHBOARD_NATS'],
    ]) {
      const entry = stdout.split(/\n(?= {2}\S| {6}--)/).find((e) => e.includes(option));
      assert.ok(entry, `${option} in:\n${stdout}`);
      assert.match(entry, new RegExp(`\\[env: ${variable}=`), entry);
      assert.match(entry, /[a-z]{3,}.*[a-z]{3,}/, `${option} has a description`);
    }
    // The environment sets serve options too: a config given by SWITCHBOARD_CONFIG is checked.
    const viaEnv = await cli(['check-config'], { env: { SWITCHBOARD_CONFIG: '/no/such/switchboard.toml' } });
    assert.equal(viaEnv.code, 1);
    assert.match(viaEnv.stderr, /cannot read config file \/no\/such\/switchboard\.toml/);
  });
});

