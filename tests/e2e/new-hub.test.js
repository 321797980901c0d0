// `switchboard new hub` and `switchboard dev`, as a new plugin author uses them, in each
// language: write a project from the template, run `dev` against a running node, call the hub
// with the official client, edit the source and see the new version serve, then break it and
// see the build error in the terminal while the last good version keeps serving.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, inbox, invoke } from './lib/client.js';
import { ADMIN_KEY, ADMIN_SECTION, cli } from './lib/admin.js';
import { REPO_ROOT, SWITCHBOARD_BIN, hubUrl, startServer, withTimeout } from './lib/server.js';

/** A first Rust build compiles the SDK's dependencies; a Python deploy compiles CPython. */
const FIRST_DEPLOY_MS = 420_000;
const NEXT_DEPLOY_MS = 300_000;

const CONFIG = `
${ADMIN_SECTION}
[tenants.demo]
allow_anonymous = true
signing_keys = ["demo-signing-key-new-hub"]
`;

/** The toolchains ./dev installs under tests/.tools, unless the environment names others. */
const TOOLS = path.join(REPO_ROOT, 'tests', '.tools');
const TOOL_ENV = {
  SWITCHBOARD_JS_TOOLS: process.env.SWITCHBOARD_JS_TOOLS ?? path.join(TOOLS, 'componentize-js'),
  SWITCHBOARD_PY_TOOLS: process.env.SWITCHBOARD_PY_TOOLS ?? path.join(TOOLS, 'componentize-py'),
  // One cache for every run: the SDK's dependencies compile once.
  CARGO_TARGET_DIR: path.join(TOOLS, 'new-hub-target'),
};

/** Per language: the source file, and an edit and a breakage of it. */
const LANGS = {
  rust: { file: 'src/lib.rs', from: 'format!("Hello, {name}!")', to: 'format!("Howdy, {name}!")', broken: '\nfn broken( {\n' },
  js: { file: 'hub.js', from: '`Hello, ${name}!`', to: '`Howdy, ${name}!`', broken: '\nexport function (\n' },
  python: { file: 'hub.py', from: 'f"Hello, {name}!"', to: 'f"Howdy, {name}!"', broken: '\ndef broken(:\n' },
};

/** The unit tests a JavaScript or Python project comes with, run on the SDK's test host. */
const UNIT_TESTS = { js: ['node', ['--test']], python: ['python3', ['-m', 'unittest', '-v']] };

/** Runs `command args` in `cwd`: its exit code and output. */
function run(command, args, cwd) {
  // Not as a test of this runner's: a `node --test` that inherits its context runs no file.
  const { NODE_TEST_CONTEXT, ...env } = process.env;
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

let server;
let work;
before(async () => {
  // Inside the repository: componentize-js maps one folder that holds both the hub and the SDK.
  await mkdir(path.join(REPO_ROOT, 'tests', '.tools'), { recursive: true });
  work = await mkdtemp(path.join(REPO_ROOT, 'tests', '.tools', 'new-hub-'));
  server = await startServer({ config: CONFIG, plugins: { 'demo/.keep': Buffer.alloc(0) } });
});
after(async () => {
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** `switchboard dev DIR ...` running; `waitFor(re)` resolves with the first output line matching. */
function startDev(t, dir, extraArgs = []) {
  const child = spawn(SWITCHBOARD_BIN, ['dev', dir, '--url', server.url, '--admin-key', ADMIN_KEY, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...TOOL_ENV, NO_COLOR: '1' },
  });
  let stdout = '';
  let stderr = '';
  const waiters = new Set();
  const check = () => {
    for (const w of waiters) w();
  };
  child.stdout.on('data', (d) => {
    stdout += d;
    check();
  });
  child.stderr.on('data', (d) => {
    // Build tools write here; keep the tail only.
    stderr = (stderr + d).slice(-64 * 1024);
  });
  t.after(() => child.kill('SIGKILL'));
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    /** Resolves with the match of `re` in stdout after `from` characters (bounded). */
    waitFor(re, ms, from = 0) {
      let w;
      const found = new Promise((resolve, reject) => {
        w = () => {
          const m = stdout.slice(from).match(re);
          if (m) resolve(m);
          else if (child.exitCode !== null) reject(new Error(`dev exited: ${stdout}\n${stderr}`));
        };
        waiters.add(w);
        child.once('exit', w);
        w();
      });
      // The output is read when the wait fails, not when it starts.
      return withTimeout(found, ms, `dev output ${re}`)
        .catch((e) => {
          throw new Error(`${e.message}; stdout:\n${stdout}\nstderr tail:\n${stderr.slice(-4000)}`);
        })
        .finally(() => waiters.delete(w));
    },
  };
}

describe('new hub and dev', { timeout: 3 * FIRST_DEPLOY_MS }, () => {
  for (const [lang, edit] of Object.entries(LANGS)) {
    test(`${lang}: new hub, dev deploys it, an edit redeploys, a broken build keeps the last version`, { timeout: FIRST_DEPLOY_MS + 3 * NEXT_DEPLOY_MS }, async (t) => {
      const hub = `greeter_${lang}`;
      const dir = path.join(work, hub);
      const created = await cli(['new', 'hub', hub, '--lang', lang, '--dir', dir]);
      assert.equal(created.code, 0, created.stderr);
      assert.match(created.stdout, new RegExp(`wrote a ${lang} hub`));

      // The project's own unit test passes as written, natively (no server, no build).
      if (UNIT_TESTS[lang]) {
        const [command, args] = UNIT_TESTS[lang];
        const unit = await run(command, args, dir);
        assert.equal(unit.code, 0, unit.output);
        assert.match(unit.output, lang === 'js' ? /# pass 1\b/ : /Ran 1 test\b[\s\S]*\bOK\b/);
      }

      const dev = startDev(t, dir);
      const firstRound = await dev.waitFor(
        new RegExp(`deployed demo/${hub} version 1 |build failed.*|deploy (failed|refused).*`),
        FIRST_DEPLOY_MS,
      );
      assert.match(firstRound[0], /^deployed/, dev.stderr.slice(-4000));

      const url = hubUrl(server, 'demo', hub);
      const first = await connect(t, url);
      assert.equal(await invoke(first, 'hello', 'Ada'), 'Hello, Ada!');
      const box = inbox(first, 'onMessage');
      await invoke(first, 'broadcast', 'hi all');
      assert.deepEqual(await box.next(), ['anonymous', 'hi all']);

      // An edit: dev rebuilds and deploys version 2; the next call runs it.
      const source = path.join(dir, edit.file);
      const text = await readFile(source, 'utf8');
      assert.ok(text.includes(edit.from), `${edit.file} has ${edit.from}`);
      let mark = dev.stdout.length;
      await writeFile(source, text.replace(edit.from, edit.to));
      await dev.waitFor(new RegExp(`deployed demo/${hub} version 2 `), NEXT_DEPLOY_MS, mark);
      assert.equal(await invoke(first, 'hello', 'Ada'), 'Howdy, Ada!');

      // A broken edit: the build error reaches the terminal, version 2 keeps serving.
      mark = dev.stdout.length;
      await writeFile(source, text.replace(edit.from, edit.to) + edit.broken);
      await dev.waitFor(/build failed: .*the last good version keeps serving/, NEXT_DEPLOY_MS, mark);
      assert.equal(await invoke(first, 'hello', 'Bo'), 'Howdy, Bo!');
      assert.doesNotMatch(dev.stdout.slice(mark), /deployed/);
      assert.equal(dev.child.exitCode, null, 'dev keeps watching after a failed build');
    });
  }

  test('dev --once shows the node refusing a deploy, and fails', async (t) => {
    const dir = path.join(work, 'refused');
    const created = await cli(['new', 'hub', 'refused', '--lang', 'python', '--dir', dir]);
    assert.equal(created.code, 0, created.stderr);
    const dev = startDev(t, dir, ['--once', '--tenant', 'no-such-tenant']);
    await dev.waitFor(/deploy refused \(4\d\d\): .*no-such-tenant/, NEXT_DEPLOY_MS);
    const code = await withTimeout(new Promise((r) => (dev.child.exitCode !== null ? r(dev.child.exitCode) : dev.child.once('exit', r))), 10_000, 'dev exit');
    assert.notEqual(code, 0);
  });

  test('new hub refuses a bad name, an unknown language and a folder that holds files', async () => {
    const bad = await cli(['new', 'hub', '2bad/name', '--dir', path.join(work, 'bad')]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not a hub name/);
    const lang = await cli(['new', 'hub', 'x', '--lang', 'cobol', '--dir', path.join(work, 'x')]);
    assert.notEqual(lang.code, 0);
    assert.match(lang.stderr, /not one of rust, js, python/);
    const full = path.join(work, 'full');
    assert.equal((await cli(['new', 'hub', 'full', '--dir', full])).code, 0);
    const again = await cli(['new', 'hub', 'full', '--dir', full]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already exists and is not empty/);
    // componentize-js cannot map a project that shares only / with the SDK: said at once.
    const top = (p) => p.split(path.sep)[1];
    const base = ['/tmp', '/var/tmp', os.homedir()].find((d) => top(d) !== top(REPO_ROOT));
    if (base === undefined) return;
    const outside = await mkdtemp(path.join(base, 'switchboard-new-hub-'));
    try {
      const js = await cli(['new', 'hub', 'far', '--lang', 'js', '--dir', path.join(outside, 'far')]);
      assert.notEqual(js.code, 0);
      assert.match(js.stderr, /shares a parent folder/);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });
});
