// A worker thread that sends to a group from its own connection, so the messages keep coming
// while the test's thread is busy (a slow client). Started with workerData {url, group, max, pauseMs}:
// connects and posts 'ready'; on 'go' sends `m0`, `m1`, ... four every `pauseMs` (10) ms or so (each burst
// acknowledged by a round trip) until 'stop' or `max`; then sends `last`, stops and posts how
// many `m` messages it sent.

import { parentPort, workerData } from 'node:worker_threads';
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr';
import { withTimeout } from './server.js';
import { WAIT_MS, invoke } from './client.js';

const { url, group, max, pauseMs = 10 } = workerData;
const connection = new HubConnectionBuilder()
  .withUrl(url, { transport: HttpTransportType.WebSockets })
  .configureLogging(LogLevel.Error)
  .build();
await withTimeout(connection.start(), WAIT_MS, 'start the sender');
let go;
let stop = false;
const started = new Promise((resolve) => (go = resolve));
parentPort.on('message', (m) => {
  if (m === 'go') go();
  else stop = true;
});
parentPort.postMessage('ready');
await started;
let sent = 0;
while (!stop && sent < max) {
  const burst = [];
  for (let i = 0; i < 4; i++) burst.push(connection.send('sendToGroup', group, `m${sent++}`));
  await withTimeout(Promise.all(burst), WAIT_MS, 'group sends');
  await invoke(connection, 'void');
  if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
}
await invoke(connection, 'sendToGroup', group, 'last');
await withTimeout(connection.stop(), WAIT_MS, 'stop the sender');
parentPort.postMessage(sent);
parentPort.close();
