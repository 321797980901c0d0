// The {{hub}} hub. Each exported function is a hub method that clients call by its name.
import { clients } from '{{sdk_import}}';

/** hello(name): a greeting, returned to the caller. */
export function hello(ctx, name) {
  return `Hello, ${name}!`;
}

/** broadcast(text): onMessage(user, text) to every connection of the hub. */
export function broadcast(ctx, text) {
  clients.all().send('onMessage', ctx.userId ?? 'anonymous', text);
}
