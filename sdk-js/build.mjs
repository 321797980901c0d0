#!/usr/bin/env node
// Builds a JavaScript hub module into a Switchboard hub component:
//
//   node sdk-js/build.mjs HUB.js OUT.wasm
//
// HUB.js exports its methods as plain functions (see README.md). This writes a small entry
// module that hands the SDK the switchboard:hub world's imports and wires the hub to its
// exports, then runs componentize-js, which embeds the JS engine and pre-initialises it
// (Wizer) with the hub already loaded.
// componentize-js is found in $SWITCHBOARD_JS_TOOLS (its node_modules folder's parent),
// else next to this file (`npm ci` in sdk-js), else in tests/.tools/componentize-js, where
// `./dev serve` and `./dev test` install it.

import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

const SDK_DIR = path.dirname(fileURLToPath(import.meta.url));
const WIT_DIR = path.join(SDK_DIR, '..', 'wit');
const SDK_VERSION = JSON.parse(await readFile(path.join(SDK_DIR, 'package.json'), 'utf8')).version;

const [hubArg, outArg] = process.argv.slice(2);
if (!hubArg || !outArg) {
  console.error('usage: node build.mjs HUB.js OUT.wasm');
  process.exit(2);
}
const hub = path.resolve(hubArg);
const out = path.resolve(outArg);
/** Where componentize-js is: $SWITCHBOARD_JS_TOOLS, else `npm ci` here, else where `./dev` puts it. */
function toolsDir() {
  if (process.env.SWITCHBOARD_JS_TOOLS) return process.env.SWITCHBOARD_JS_TOOLS;
  const installed = path.join(SDK_DIR, '..', 'tests', '.tools', 'componentize-js');
  return existsSync(path.join(SDK_DIR, 'node_modules')) || !existsSync(installed) ? SDK_DIR : installed;
}
const tools = toolsDir();
const { componentize } = await import(
  pathToFileURL(path.join(tools, 'node_modules', '@bytecodealliance', 'componentize-js', 'src', 'componentize.js'))
);

/** The deepest folder holding every path: componentize-js maps it as the component's root. */
function commonRoot(paths) {
  const split = paths.map((p) => path.dirname(p).split(path.sep));
  const root = [];
  for (let i = 0; split.every((s) => i < s.length && s[i] === split[0][i]); i++) root.push(split[0][i]);
  return root.join(path.sep) || path.sep;
}

const buildDir = path.join(path.dirname(out), `.${path.basename(out, '.wasm')}.build`);
await mkdir(buildDir, { recursive: true });
const entry = path.join(buildDir, 'entry.js');
const sdk = path.join(SDK_DIR, 'src', 'switchboard.js');
const rel = (to) => {
  const r = path.relative(buildDir, to).split(path.sep).join('/');
  return r.startsWith('.') ? r : `./${r}`;
};
await writeFile(
  entry,
  `import * as clients from 'switchboard:hub/clients@0.1.0';
import * as groups from 'switchboard:hub/groups@0.1.0';
import * as kv from 'switchboard:hub/kv@0.1.0';
import * as streaming from 'switchboard:hub/streaming@0.1.0';
import * as invocation from 'switchboard:hub/invocation@0.1.0';
import * as connection from 'switchboard:hub/connection@0.1.0';
import * as log from 'switchboard:hub/log@0.1.0';
import * as hub from ${JSON.stringify(rel(hub))};
import { bindHost, exportHub } from ${JSON.stringify(rel(sdk))};
bindHost({ clients, groups, kv, streaming, invocation, connection, log });
const exported = exportHub(hub, ${JSON.stringify(SDK_VERSION)});
export const describe = () => exported.describe();
export const onConnected = (ctx) => exported.onConnected(ctx);
export const onDisconnected = (ctx, error) => exported.onDisconnected(ctx, error);
export const invoke = (ctx, method, args) => exported.invoke(ctx, method, args);
`,
);

// componentize-js maps the working directory as the component's root when the sources are
// inside it, so every import must be below it.
process.chdir(commonRoot([entry, hub, sdk]));
const started = Date.now();
const { component } = await componentize({
  sourcePath: entry,
  witPath: WIT_DIR,
  worldName: 'hub',
  // The host offers WASI's CLI, clocks, random and I/O, not HTTP.
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);
await rm(buildDir, { recursive: true, force: true });
console.error(`${path.relative(process.cwd(), out) || out}: ${(component.length / 1e6).toFixed(1)} MB in ${Date.now() - started} ms`);
