// A Python client from PyPI, pysignalr (pinned; `./dev` installs it into tests/.tools/python),
// against a real server: negotiate v0 (no `negotiateVersion`, the connection id as `id=`), JSON
// over WebSockets, echo, broadcast, groups, errors, client results, and messages to and from an
// official JS client in the same group. The Python side is tests/e2e/python/client.py.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { connect, inbox, invoke } from './lib/client.js';
import { requirePythonPackage, runPythonClient } from './lib/python.js';
import { startProxy } from './lib/proxy.js';
import { REPO_ROOT, hubUrl, pluginWasm, startServer, unique, withTimeout } from './lib/server.js';

/** Where `./dev` installs pysignalr (`pip --target`), unless PYSIGNALR_PATH says otherwise. */
const PYTHON_PATH = process.env.PYSIGNALR_PATH ?? path.join(REPO_ROOT, 'tests', '.tools', 'python');
const SCRIPT = path.join(REPO_ROOT, 'tests', 'e2e', 'python', 'client.py');
const RUN_MS = 60_000;

let server;
before(async () => {
  requirePythonPackage(PYTHON_PATH, 'pysignalr', '1.3.3');
  server = await startServer({ plugins: { 'demo/testhub.wasm': pluginWasm('testhub') } });
});
after(() => server?.stop());

test('pysignalr: negotiate v0, echo, broadcast, groups, errors, client results, and a JS client in the same group', async (t) => {
  // Through a proxy that keeps what the Python client sends, to see its requests on the wire.
  const proxy = await startProxy(server.port);
  t.after(() => proxy.close());
  const group = unique('py-');
  const js = await connect(t, hubUrl(server, 'demo', 'testhub'));
  const jsMessages = inbox(js, 'message');
  await invoke(js, 'joinGroup', group);

  let readySeen = false;
  const result = await runPythonClient(SCRIPT, [`${proxy.url}/hubs/demo/testhub`, group], { pythonPath: PYTHON_PATH, runMs: RUN_MS }, (line) => {
    if (line.step === 'ready' && !readySeen) {
      readySeen = true;
      // The Python client waits for this group message from the JS client.
      js.invoke('sendToGroup', group, 'from-node').catch(() => {});
    }
  });
  const report = `exit ${result.code}; stdout lines:\n${result.lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${result.stderr}`;
  assert.equal(result.code, 0, report);
  const steps = result.lines.filter((l) => l.ok).map((l) => l.step);
  for (const step of [
    'connected',
    'echo',
    'v0 id is the connection id',
    'broadcast received',
    'joinGroup',
    'group send received',
    'error',
    'client result',
    'ready',
    'message from node',
  ]) {
    assert.ok(steps.includes(step), `step '${step}' passed; ${report}`);
  }
  const error = result.lines.find((l) => l.step === 'error');
  assert.match(error.error, /boom from python/);

  // What pysignalr put on the wire: a negotiate without negotiateVersion (v0), then a
  // WebSocket whose `id` is the connection id the hub reported.
  const requests = proxy.requests();
  const negotiateLine = requests.match(/^POST (\S*\/negotiate\S*) HTTP\/1\.1/m);
  assert.ok(negotiateLine, `a negotiate request; saw:\n${requests.slice(0, 2000)}`);
  assert.doesNotMatch(negotiateLine[1], /negotiateVersion/i, 'pysignalr negotiates v0');
  const upgrade = requests.match(/^GET (\S*\?id=([^\s&]+)\S*) HTTP\/1\.1/m);
  assert.ok(upgrade, 'a WebSocket request with an id');
  const v0 = result.lines.find((l) => l.step === 'v0 id is the connection id');
  assert.equal(decodeURIComponent(upgrade[2]), v0.connection_id, 'the id on the wire is the connection id');

  // The JS client in the same group got the Python client's group send.
  await withTimeout(jsMessages.next((args) => args[0] === 'from-python'), 5_000, 'the group send from Python');
});
