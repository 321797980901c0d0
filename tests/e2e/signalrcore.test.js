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
import path from 'node:path';
import { after, before, test } from 'node:test';
import { connect, inbox, invoke } from './lib/client.js';
import { requirePythonPackage, runPythonClient } from './lib/python.js';
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
  requirePythonPackage(PYTHON_PATH, 'signalrcore', '1.0.2');
  server = await startServer({ plugins: { 'demo/testhub.wasm': pluginWasm('testhub') } });
});
after(() => server?.stop());

for (const [transport, protocol] of RUNS) {
  test(`signalrcore over ${transport} with ${protocol}`, { timeout: RUN_MS + 30_000 }, async (t) => {
    const url = hubUrl(server, 'demo', 'testhub');
    const group = unique('sc-');
    const js = await connect(t, url);
    const jsMessages = inbox(js, 'message');
    await invoke(js, 'joinGroup', group);

    let readySeen = false;
    const result = await runPythonClient(SCRIPT, [url, transport, protocol, group], { pythonPath: PYTHON_PATH, runMs: RUN_MS }, (line) => {
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
