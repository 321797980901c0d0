// A plain round-robin HTTP load balancer on 127.0.0.1 for the cluster tests: every request
// (and every WebSocket upgrade) goes to the next node in turn, with no sticky sessions, so
// negotiate and the requests after it land on different nodes. It records which node got
// which request.

import http from 'node:http';
import net from 'node:net';
import { withTimeout } from './server.js';

/**
 * Starts a balancer in front of `nodes` (each `{ port }`).
 * @returns {Promise<{url: string, port: number, log: {method: string, url: string, node: number}[], close: () => Promise<void>}>}
 */
export async function startBalancer(nodes) {
  let next = 0;
  const log = [];
  const pick = (method, url) => {
    const node = next;
    next = (next + 1) % nodes.length;
    log.push({ method, url, node });
    return nodes[node];
  };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const node = pick(req.method, req.url);
    const upstream = http.request(
      { host: '127.0.0.1', port: node.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        // Streams as it arrives (Server-Sent Events, held long polls).
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (req, client, head) => {
    const node = pick(req.method, req.url);
    const upstream = net.connect(node.port, '127.0.0.1', () => {
      let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      upstream.write(`${lines}\r\n`);
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream).add(client);
    const end = () => {
      upstream.destroy();
      client.destroy();
    };
    upstream.on('error', end).on('close', end);
    client.on('error', end).on('close', end);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    log,
    async close() {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await withTimeout(closed, 5_000, 'balancer close');
    },
  };
}
