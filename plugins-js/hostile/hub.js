// A hub that misbehaves on purpose, for the limit tests: spin() never returns, allocate()
// keeps memory until the host's limit stops it; ping() shows the hub still serves after that.
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
