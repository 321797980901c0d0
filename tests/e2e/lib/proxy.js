// A TCP proxy on 127.0.0.1 between a client and a server, which a test can cut: every
// connection through it dies at once without a WebSocket close (what a network drop looks like
// to both ends). It can also hold new connections (accepted, nothing forwarded) until released,
// to keep a client from reaching the server for a while. It keeps the first 64 KiB each client
// sent (`requests()`), to check what a client really puts on the wire.

import net from 'node:net';

/**
 * Starts a proxy to 127.0.0.1:`targetPort` on a free port.
 * @returns {Promise<{port: number, url: string, accepted: () => number, cut: () => number,
 *   hold: () => void, release: () => void, retarget: (port: number) => void,
 *   requests: () => string, close: () => Promise<void>}>}
 */
export async function startProxy(targetPort) {
  let target = targetPort;
  const TAP_LIMIT = 64 * 1024;
  let tapped = '';
  const pairs = new Set();
  let held = null; // sockets waiting for release() while holding
  let accepted = 0;

  const forward = (client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: target });
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (chunk) => {
      if (tapped.length < TAP_LIMIT) tapped += chunk.toString('latin1').slice(0, TAP_LIMIT - tapped.length);
    });
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  };

  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    accepted++;
    client.setNoDelay(true);
    if (held) {
      held.push(client);
      client.on('error', () => client.destroy());
    } else {
      forward(client);
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    /** Sends new connections to another port (open ones stay where they are). */
    retarget(port) {
      target = port;
    },
    /** What clients sent so far (the first 64 KiB), as latin1 text. */
    requests: () => tapped,
    /** Connections accepted so far. */
    accepted: () => accepted,
    /** Resets every connection through the proxy; returns how many there were. */
    cut() {
      const n = pairs.size;
      for (const pair of [...pairs]) {
        pairs.delete(pair);
        pair.client.resetAndDestroy();
        pair.upstream.resetAndDestroy();
      }
      return n;
    },
    /** From now on, new connections wait (accepted, nothing forwarded) until release(). */
    hold() {
      held ??= [];
    },
    /** Forwards the held connections (the ones still open) and every new one. */
    release() {
      const waiting = held ?? [];
      held = null;
      for (const client of waiting) if (!client.destroyed) forward(client);
    },
    async close() {
      for (const client of held ?? []) client.destroy();
      held = null;
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
