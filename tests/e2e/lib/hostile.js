// The bundled `hostile` hub, which misbehaves on request: `spin` loops forever, `allocate`
// grows its memory without end, `ping` answers "pong".

import assert from 'node:assert/strict';
import { invoke, rejectsWith } from './client.js';
import { withTimeout } from './server.js';

/**
 * On connections `hostile` (to a hostile hub under CPU and memory limits) and `neighbour` (to
 * any hub with `echo`): `spin` fails with "CPU time limit" within `timeoutMs` while the
 * neighbour is answered, `allocate` fails with "memory limit", and then a fresh instance
 * answers `ping` on the same connection.
 */
export async function expectCpuAndMemoryLimits(hostile, neighbour, timeoutMs) {
  const [, echoed] = await Promise.all([
    rejectsWith(withTimeout(hostile.invoke('spin'), timeoutMs, 'spin'), 'CPU time limit'),
    invoke(neighbour, 'echo', 'during spin'),
  ]);
  assert.equal(echoed, 'during spin');
  await rejectsWith(withTimeout(hostile.invoke('allocate'), timeoutMs, 'allocate'), 'memory limit');
  assert.equal(await invoke(hostile, 'ping'), 'pong');
}
