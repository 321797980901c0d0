// Point 7: a negotiate must not keep its request headers. Negotiates with many large headers
// that never start: the node keeps a few KiB per pending negotiate at most (or refuses a
// head above its limit with 431), and the negotiated connections expire.

import { expect, pool, sleep } from '../lib/harness.mjs';
import { demoTenant } from '../lib/node.mjs';
import { RawWs } from '../lib/wire.mjs';

export const name = 'negotiate-headers';
export const point = 7;
export const description = 'negotiates with many 4 KB headers: a few KiB each at most, and they expire when never started';

const HEADER = 4_000; // "4 KB": name and value fit the 4 KiB a plugin may see of one header
const DISCONNECT_SECS = 8; // longer than both waves, so none expires while measured
const PER_NEGOTIATE_KIB = 16;

async function negotiateWith(node, headers) {
  try {
    const r = await fetch(`${node.url}/hubs/demo/chat/negotiate?negotiateVersion=1`, { method: 'POST', headers, signal: AbortSignal.timeout(5_000) });
    const text = await r.text();
    return { status: r.status, token: r.status === 200 ? JSON.parse(text).connectionToken : null };
  } catch (err) {
    return { status: `no answer (${err.message})`, token: null };
  }
}

/** Negotiates `count` times with `headerCount` headers of 4 KB; the RSS growth they leave. */
async function wave(ctx, node, count, headerCount, rng) {
  const headers = {};
  for (let h = 0; h < headerCount; h++) headers[`x-pad-${h}`] = rng.word(HEADER);
  const before = ctx.stats(node).rssKiB;
  // Two at a time: the request buffers themselves come and go; what stays is what is kept.
  const results = await pool(count, 2, () => negotiateWith(node, headers));
  await sleep(300);
  const after = ctx.stats(node).rssKiB;
  const statuses = {};
  for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  const accepted = results.filter((r) => r.status === 200);
  return { statuses, accepted: accepted.length, tokens: accepted.map((r) => r.token), growthKiB: after - before };
}

export async function run(ctx) {
  const count = ctx.size(100, 300);
  const node = await ctx.startNode({ config: `disconnect_timeout_secs = ${DISCONNECT_SECS}\n${demoTenant()}` });
  // Warm up the allocator and the plugin with a few plain negotiates.
  await pool(20, 2, () => negotiateWith(node, {}));
  await sleep(300);
  ctx.figure('baseline', ctx.stats(node));

  // Within a 64 KiB head limit: 14 headers of 4 KB (56 KB), which must be accepted.
  const fits = await wave(ctx, node, count, 14, ctx.rng);
  ctx.figure('fits_14x4KB', { statuses: fits.statuses, rss_growth_kib: fits.growthKiB, per_accepted_kib: fits.accepted ? Math.round(fits.growthKiB / fits.accepted) : null });
  // The shape: 60 headers of 4 KB (240 KB). Refusing it (431) is fine; keeping it is not.
  const big = await wave(ctx, node, count, 60, ctx.rng);
  ctx.figure('big_60x4KB', { statuses: big.statuses, rss_growth_kib: big.growthKiB, per_accepted_kib: big.accepted ? Math.round(big.growthKiB / big.accepted) : null });

  // Never started: after the disconnect timeout the tokens are unknown (404 on the upgrade).
  await sleep(DISCONNECT_SECS * 1000 + 2_000);
  const probe = [...big.tokens.slice(0, 5), ...fits.tokens.slice(0, 5)];
  const expired = [];
  for (const token of probe) {
    try {
      const ws = await RawWs.open(node.port, `/hubs/demo/chat?id=${encodeURIComponent(token)}`, { ms: 3_000 });
      ws.destroy();
      expired.push('101');
    } catch (err) {
      expired.push((String(err.message).match(/HTTP\/1\.1 (\d{3})/) ?? [null, 'no answer'])[1]);
    }
  }
  ctx.figure('upgrade_after_disconnect_timeout', expired);
  ctx.figure('after_expiry', ctx.stats(node));

  const badBig = Object.keys(big.statuses).filter((s) => s !== '200' && s !== '431');
  expect(badBig.length === 0, 'negotiates with 60 headers of 4 KB', 'answered 200 or 431', JSON.stringify(big.statuses));
  expect(fits.accepted === count, 'negotiates with 14 headers of 4 KB', `all ${count} answered 200`, JSON.stringify(fits.statuses));
  if (big.accepted > 0) {
    const per = big.growthKiB / big.accepted;
    expect(per < PER_NEGOTIATE_KIB, 'RSS kept per pending negotiate with 240 KB of headers', `< ${PER_NEGOTIATE_KIB} KiB`, `${Math.round(per)} KiB`);
  }
  const perFits = fits.growthKiB / count;
  expect(perFits < PER_NEGOTIATE_KIB, 'RSS kept per pending negotiate with 56 KB of headers', `< ${PER_NEGOTIATE_KIB} KiB`, `${Math.round(perFits)} KiB`);
  expect(expired.every((s) => s === '404'), 'WebSocket upgrades of negotiates never started, after the disconnect timeout', 'all 404', JSON.stringify(expired));
}
