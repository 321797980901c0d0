// A hub that misbehaves on purpose, for the limit tests: spin() never returns, allocate()
// keeps memory until the host's limit stops it; ping() shows the hub still serves after that.
// wait(ms) sleeps, which costs no CPU time but counts against the wall-clock limit.
import { invocation } from '../../sdk-js/src/switchboard.js';

export function ping(ctx) {
  return 'pong';
}

export function spin(ctx) {
  let turns = 0;
  for (;;) turns = (turns + 1) | 0;
}

export function allocate(ctx) {
  const hoard = [];
  for (;;) hoard.push(new Uint8Array(1 << 20).fill(0xa5));
}

export function wait(ctx, ms) {
  invocation.sleep(ms);
  return ms;
}
