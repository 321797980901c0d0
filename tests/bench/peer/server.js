// The Socket.IO 4.8 peer for tests/bench/run.sh: the same work as Switchboard's `chat` hub.
//   send(name, message)  -> event `addNewMessageToPage(name, message)` to every socket
//   echo(value, ack)     -> ack(value)
// WebSocket transport only, no per-message deflate (Switchboard does not compress either).
//
//   node server.js [--port 0] [--redis redis://127.0.0.1:6379]
//
// Logs `listening addr=127.0.0.1:PORT` to stderr, like Switchboard. With --redis it uses
// @socket.io/redis-adapter, so several nodes on one Redis fan out to each other's sockets.

import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    redis: { type: 'string' },
  },
});

const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
  maxHttpBufferSize: 32768,
});

if (values.redis) {
  const { createClient } = await import('redis');
  const { createAdapter } = await import('@socket.io/redis-adapter');
  const pub = createClient({ url: values.redis });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

io.on('connection', (socket) => {
  socket.on('send', (name, message) => {
    io.emit('addNewMessageToPage', name, message);
  });
  socket.on('echo', (value, ack) => {
    if (typeof ack === 'function') ack(value);
  });
});

httpServer.listen(Number(values.port), '127.0.0.1', () => {
  const { address, port } = httpServer.address();
  process.stderr.write(`listening addr=${address}:${port}\n`);
});

const stop = () => {
  io.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
