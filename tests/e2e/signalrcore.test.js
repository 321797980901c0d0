// signalrcore (PyPI, pinned; `./dev` installs it into tests/.tools/signalrcore), a second Python
// client written apart from pysignalr, on every transport and protocol it has: WebSockets with
// JSON and MessagePack, Server-Sent Events with JSON (SSE carries text only, so negotiate offers
// it no binary format, as ASP.NET), long polling with JSON and MessagePack. Each run echoes
// values, reads the hub's view of it, receives a broadcast and a group send, gets a method's
// error, a void result and a server stream, and finally a group message from an official JS
// client. The Python side is tests/e2e/python/signalrcore_client.py.
//
// signalrcore's long polling POSTs its handshake before its first poll; ASP.NET Core accepts
// that (the connection exists from negotiate) and so does Switchboard. Its long polling has two
// bugs of its own that no server can make up for, so it runs fewer steps there: it hands on
// only the first record of a poll's answer (the rest wait for the next poll), which leaves out
// steps answered with two records at once; and it splits MessagePack on the JSON record
// separator, so long polling with MessagePack is not run at all.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { connect, inbox, invoke } from './lib/client.js';
import { REPO_ROOT, hubUrl, pluginWasm, startServer, unique, withTimeout } from './lib/server.js';

const PYTHON_PATH = process.env.SIGNALRCORE_PATH ?? path.join(REPO_ROOT, 'tests', '.tools', 'signalrcore');
const SCRIPT = path.join(REPO_ROOT, 'tests', 'e2e', 'python', 'signalrcore_client.py');
const RUN_MS = 90_000;

const RUNS = [
  ['WebSockets', 'json'],
  ['WebSockets', 'messagepack'],
  ['ServerSentEvents', 'json'],
  ['LongPolling', 'json'],
];

const STEPS = [
  'connected',
  'transport',
  'echo',
  'context',
  'broadcast received',
  'joinGroup',
  'group send received',
  'error',
  'void',
  'stream',
  'ready',
  'message from node',
];

/** Long polling: the steps answered with one record each (see above). */
const LONG_POLLING_STEPS = ['connected', 'transport', 'echo', 'context', 'joinGroup', 'ready', 'message from node'];

let server;
before(async () => {
  if (!existsSync(path.join(PYTHON_PATH, 'signalrcore'))) {
    throw new Error(
      `signalrcore is not installed in ${PYTHON_PATH}: run \`./dev test\`, or ` +
        `\`python3 -m pip install --target ${PYTHON_PATH} signalrcore==1.0.2\``,
    );
  }
  server = await startServer({ plugins: { 'demo/testhub.wasm': pluginWasm('testhub') } });
});
after(() => server?.stop());

/** Runs the client; calls `onLine(parsed)` per JSON line. Resolves with `{code, lines, stderr}`. */
function runClient(args, onLine) {
  const child = spawn('python3', [SCRIPT, ...args], {
    env: { ...process.env, PYTHONPATH: PYTHON_PATH, PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk.toString('utf8');
    let newline;
    while ((newline = stdout.indexOf('\n')) >= 0) {
      const line = stdout.slice(0, newline);
      stdout = stdout.slice(newline + 1);
      let parsed;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = { unparsed: line };
      }
      lines.push(parsed);
      onLine(parsed);
    }
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise((resolve) => {
    child.once('exit', (code) => resolve({ code, lines, stderr }));
    child.once('error', (err) => resolve({ code: null, lines, stderr: `${stderr}\n${err.message}` }));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_MS);
  return exited.finally(() => clearTimeout(timer));
}

for (const [transport, protocol] of RUNS) {
  test(`signalrcore over ${transport} with ${protocol}`, { timeout: RUN_MS + 30_000 }, async (t) => {
    const url = hubUrl(server, 'demo', 'testhub');
    const group = unique('sc-');
    const js = await connect(t, url);
    const jsMessages = inbox(js, 'message');
    await invoke(js, 'joinGroup', group);

    let readySeen = false;
    const result = await runClient([url, transport, protocol, group], (line) => {
      if (line.step === 'ready' && !readySeen) {
        readySeen = true;
        js.invoke('sendToGroup', group, 'from-node').catch(() => {});
      }
    });
    const report = `exit ${result.code}; stdout:\n${result.lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${result.stderr.slice(-4000)}`;
    assert.equal(result.code, 0, report);
    const passed = result.lines.filter((l) => l.ok).map((l) => l.step);
    const steps = transport === 'LongPolling' ? LONG_POLLING_STEPS : STEPS;
    for (const step of steps) assert.ok(passed.includes(step), `step '${step}' passed; ${report}`);
    assert.equal(result.lines.filter((l) => l.step === 'echo' && l.ok).length, 7, report);

    // The hub saw the connection signalrcore opened, and the JS client got its group send.
    const context = result.lines.find((l) => l.step === 'context');
    assert.match(context.connection_id, /\S/);
    if (transport !== 'LongPolling') {
      await withTimeout(jsMessages.next((args) => args[0] === 'from-signalrcore'), 5_000, 'the group send from Python');
    }
  });
}
