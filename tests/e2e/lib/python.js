// Python SignalR clients from PyPI (pysignalr, signalrcore), run as child processes that print
// one JSON line per step.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** Throws, saying how to install it, unless `pkg` is installed (`pip --target`) in `pythonPath`. */
export function requirePythonPackage(pythonPath, pkg, version) {
  if (!existsSync(path.join(pythonPath, pkg))) {
    throw new Error(
      `${pkg} is not installed in ${pythonPath}: run \`./dev test\`, or ` +
        `\`python3 -m pip install --target ${pythonPath} ${pkg}==${version}\``,
    );
  }
}

/**
 * Runs `python3 script ...args` with `pythonPath` on PYTHONPATH; calls `onLine(parsed)` for each
 * JSON line it prints (`{unparsed: line}` for any other line). Resolves with
 * `{code, lines, stderr}` when it exits; killed after `runMs`.
 */
export function runPythonClient(script, args, { pythonPath, runMs }, onLine) {
  const child = spawn('python3', [script, ...args], {
    env: { ...process.env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1' },
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
  const timer = setTimeout(() => child.kill('SIGKILL'), runMs);
  return exited.finally(() => clearTimeout(timer));
}
