// A hub that misbehaves on purpose, for the limit tests: spin() never returns, allocate()
// keeps memory until the host's limit stops it; ping() shows the hub still serves after that.
// wait(ms) sleeps, which costs no CPU time but counts against the wall-clock limit.
// uploadOutcome(items) says how its upload stream ended, as the SDK's UploadError told it.
import { UploadError, invocation, uploads } from '../../sdk-js/src/switchboard.js';

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

export const uploadOutcome = uploads(1, (ctx, items) => {
  const seen = [];
  try {
    for (const item of items) seen.push(item);
  } catch (e) {
    if (e instanceof UploadError) return { items: seen, [e.kind]: e.message };
    throw e;
  }
  return { items: seen };
});
