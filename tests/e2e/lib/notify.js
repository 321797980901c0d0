// The bundled `notify` hub: a client registers a numeric identifier, another notifies it by that
// identifier with a status, and the registered connection receives `addMessage(text)`.

import assert from 'node:assert/strict';
import { connect, inbox, invoke, WAIT_MS } from './client.js';

/** The text `addMessage` carries for the status "Confirmed" (or 0). */
export const CONFIRMED = "Here's the message for confirmation";
/** The text `addMessage` carries for any other status. */
export const FAILED = "Here's the message for failure";

let nextId = Math.floor(Math.random() * 1_000_000) * 1000;
/** A fresh numeric identifier (a server is shared by one file's tests). */
export const freshId = () => ++nextId;

/** Connects to the notify hub at `url` and records its `addMessage` calls. */
export async function notifyMember(t, url) {
  const connection = await connect(t, url);
  return { connection, box: inbox(connection, 'addMessage') };
}

/**
 * Makes sure `who` has received everything `sender` sent it before: `who` registers a fresh
 * identifier, `sender` notifies it with "Failed", and `who` must see the failure text as its
 * next message (within `timeoutMs`). Call it only on connections that expect no confirmation text.
 */
export async function barrier(sender, who, timeoutMs = WAIT_MS) {
  const id = freshId();
  await invoke(who.connection, 'registerClient', id);
  const before = who.box.messages.length;
  await invoke(sender.connection, 'notifyClient', id, 'Failed');
  await who.box.next(() => who.box.messages.length > before, timeoutMs);
  assert.deepEqual(who.box.messages.slice(before, before + 1), [[FAILED]], 'the marker was not the next message');
}
