// The chat hub in JavaScript: the classic SignalR sample, plus groups and users, and the
// methods tests use to check results and streams: echo, whoami, counter (a server-to-client
// stream) and sum (a client-to-server stream). Every chat message reaches clients as
// addNewMessageToPage(name, message).
import { clients, groups, uploads } from '../../sdk-js/src/switchboard.js';

const ON_MESSAGE = 'addNewMessageToPage';

/** send(name, message): to every connection of the hub, the caller included. */
export function send(ctx, name, message) {
  clients.all().send(ON_MESSAGE, name, message);
}

export function joinGroup(ctx, group) {
  groups.add(ctx.connectionId, group);
}

export function leaveGroup(ctx, group) {
  groups.remove(ctx.connectionId, group);
}

/** sendToGroup(group, name, message): to the group's members (the caller only if it is one). */
export function sendToGroup(ctx, group, name, message) {
  clients.group(group).send(ON_MESSAGE, name, message);
}

/** sendToUser(userId, message): to every connection of that user, named after the caller. */
export function sendToUser(ctx, userId, message) {
  clients.user(userId).send(ON_MESSAGE, ctx.userId ?? 'anonymous', message);
}

/** echo(value): returns its argument unchanged, null included. */
export function echo(ctx, value) {
  return value;
}

export function whoami(ctx) {
  return { connectionId: ctx.connectionId, userId: ctx.userId };
}

/** counter(count), a stream: 0, 1, ..., count - 1. */
export function* counter(ctx, count) {
  for (let i = 0; i < count; i++) yield i;
}

/** sum(numbers), where numbers is an upload stream: their sum once the client completes it. */
export const sum = uploads(1, (ctx, numbers) => {
  let total = 0;
  for (const n of numbers) total += n;
  return total;
});
