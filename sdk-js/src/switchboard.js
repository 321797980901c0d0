// The Switchboard hub SDK for JavaScript: what a hub module imports. A hub is an ES module
// whose exported functions are its methods (see README.md); `build.mjs` turns it into a
// component of the switchboard:hub world with componentize-js.
//
// Host calls that fail throw a HostError; a method that throws a HubError fails the
// invocation with exactly its message.
//
// The module imports nothing of the component: `build.mjs`'s entry module hands it the
// world's imports (`bindHost`), and `testing.js` hands it a test host's, so the same hub code
// runs in the component and natively under `node --test`.

/** The host's imports (`switchboard:hub/<interface>@0.1.0`, by interface name), once bound. */
let imports = null;

/** Which host calls go where: the world's imports in the component, a TestHost's natively. */
export function bindHost(host) {
  const previous = imports;
  imports = host;
  return previous;
}

/** The bound imports, or a HostError saying there is no host. */
function bound() {
  if (imports === null) {
    throw new HostError('no Switchboard host: run the hub in a component, or on a TestHost (testing.js)');
  }
  return imports;
}

/** An error whose message is what the calling client sees, word for word. */
export class HubError extends Error {}

/** A host call failed (the host's text is the message). A HubError, so it reaches the client. */
export class HostError extends HubError {}

/** Runs a host call, turning its `err` into a HostError. */
function host(call) {
  try {
    return call();
  } catch (e) {
    throw new HostError(e?.payload !== undefined ? String(e.payload) : String(e?.message ?? e));
  }
}

const json = (value) => JSON.stringify(value === undefined ? null : value);

/** Where a send goes: every target has `send(method, ...args)`. */
class Target {
  constructor(target) {
    this.target = target;
  }

  /** Invokes `method(...args)` on every connection of the target. */
  send(method, ...args) {
    host(() => bound().clients.send(this.target, method, json(args)));
  }
}

/** One connection: can also be asked for a client result. */
class Connection extends Target {
  constructor(id) {
    super({ tag: 'connections', val: [id] });
    this.id = id;
  }

  /** Calls `method(...args)` on the client and returns its result (SignalR client results). */
  invoke(method, args = [], { timeoutMs = 10_000 } = {}) {
    return JSON.parse(host(() => bound().clients.invoke(this.id, method, json(args), timeoutMs)));
  }
}

const list = (v) => (Array.isArray(v) ? v : [v]);

export const clients = {
  all: (except = []) => new Target({ tag: 'all', val: list(except) }),
  others: (ctx) => new Target({ tag: 'all', val: [ctx.connectionId] }),
  caller: (ctx) => new Connection(ctx.connectionId),
  connection: (id) => new Connection(id),
  connections: (ids) => new Target({ tag: 'connections', val: list(ids) }),
  user: (id) => new Target({ tag: 'users', val: [id] }),
  users: (ids) => new Target({ tag: 'users', val: list(ids) }),
  group: (group, except = []) => new Target({ tag: 'groups', val: { groups: [group], except: list(except) } }),
  groups: (groups, except = []) => new Target({ tag: 'groups', val: { groups: list(groups), except: list(except) } }),
  othersInGroup: (ctx, group) => clients.group(group, [ctx.connectionId]),
};

export const groups = {
  add: (connectionId, group) => host(() => bound().groups.add(connectionId, group)),
  remove: (connectionId, group) => host(() => bound().groups.remove(connectionId, group)),
};

const ttl = (ttlMs) => (ttlMs === undefined ? undefined : BigInt(Math.max(0, Math.floor(ttlMs))));

/** The tenant's key-value store (strings; shared by every node of a cluster). */
export const kv = {
  get: (key) => host(() => bound().kv.get(key)) ?? null,
  set: (key, value, { ttlMs } = {}) => host(() => bound().kv.set(key, value, ttl(ttlMs))),
  delete: (key) => host(() => bound().kv.delete(key)),
  compareAndSet: (key, expected, value, { ttlMs } = {}) =>
    host(() => bound().kv.compareAndSet(key, expected ?? undefined, value, ttl(ttlMs))),
};

/** The running call: whether its caller still wants it, and waiting without spending CPU time. */
export const invocation = {
  /** Whether the client cancelled this stream or its connection ended. */
  cancelled: () => bound().invocation.cancelled(),
  /** Waits `ms` milliseconds (no CPU time); throws a HostError at once when the call is cancelled. */
  sleep: (ms) => host(() => bound().invocation.sleep(Math.max(0, Math.min(0xffffffff, Math.floor(ms))))),
};

/** The caller's connection: the request that opened it, and its items. */
export const connection = {
  query: () => bound().connection.query(),
  header: (name) => bound().connection.header(name) ?? null,
  /** A cookie of that request, if the tenant's `plugin_cookies` lists it; else null. */
  cookie: (name) => bound().connection.cookie(name) ?? null,
  /** 'WebSockets', 'ServerSentEvents' or 'LongPolling'; null for a call no connection made. */
  transport: () => bound().connection.transport() ?? null,
  getItem: (key) => bound().connection.getItem(key) ?? null,
  setItem: (key, value) => host(() => bound().connection.setItem(key, value ?? undefined)),
};

const write = (level) => (...parts) => bound().log.log(level, parts.map(String).join(' '));
export const log = {
  trace: write('trace'),
  debug: write('debug'),
  info: write('info'),
  warn: write('warn'),
  error: write('error'),
};

/**
 * Marks a method whose last `count` parameters are client-to-server streams: each is an
 * iterable of the client's items (it waits for the next one).
 */
export function uploads(count, method) {
  method.uploadStreams = count;
  return method;
}

/**
 * Why an upload stream failed: `kind` is 'client' (the client completed it with an error; the
 * message is the client's own text), 'cancelled' (the client cancelled the call or left) or
 * 'host'. A HubError: left uncaught, the calling client sees its message.
 */
export class UploadError extends HubError {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

/** The next item of upload stream `index` (undefined at its end), or an UploadError. */
function nextUpload(index) {
  try {
    return bound().streaming.nextUploadItem(index);
  } catch (e) {
    const reason = e?.payload;
    if (reason?.tag === 'client') throw new UploadError('client', String(reason.val));
    if (reason?.tag === 'cancelled') throw new UploadError('cancelled', 'the call was cancelled');
    throw new UploadError('host', String(reason?.val ?? e?.message ?? e));
  }
}

/** The items of the caller's `index`-th upload stream. */
function* upload(index) {
  for (;;) {
    const item = nextUpload(index);
    if (item === undefined || item === null) return;
    yield JSON.parse(item);
  }
}

/** What a handler gets as its first parameter. */
class Context {
  constructor(raw) {
    this.tenant = raw.tenant;
    this.hub = raw.hub;
    this.connectionId = raw.connectionId;
    this.userId = raw.userId ?? null;
    this.claimsJson = raw.claimsJson;
  }

  /** The token's claims as an object ({} when anonymous). */
  get claims() {
    return JSON.parse(this.claimsJson);
  }
}

const LIFECYCLE = new Set(['onConnected', 'onDisconnected']);
const isGenerator = (f) => Object.getPrototypeOf(f)?.[Symbol.toStringTag] === 'GeneratorFunction';

/** The hub's methods from its module: every exported function but the lifecycle hooks. */
function collect(module) {
  const methods = new Map();
  for (const [name, value] of Object.entries(module)) {
    if (typeof value !== 'function' || LIFECYCLE.has(name)) continue;
    const key = name.toLowerCase();
    if (methods.has(key)) throw new Error(`hub method '${name}' is exported twice (names match case-insensitively)`);
    methods.set(key, {
      name,
      fn: value,
      stream: isGenerator(value),
      uploads: value.uploadStreams ?? 0,
      // A rest parameter takes any number of arguments (before the upload streams).
      variadic: hasRest(value),
    });
  }
  return methods;
}

/** `Name: message` of what a method threw, as ASP.NET's detailed errors word an exception. */
function describeThrown(e) {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Whether the tenant shows clients why a call failed (`detailed_errors`). */
function detailedErrors() {
  try {
    return bound().invocation.detailedErrors() === true;
  } catch {
    return false;
  }
}

/**
 * The text a client sees for what `method` threw: a HubError's message; for anything else,
 * ASP.NET's "unexpected error" sentence, followed by what was thrown only when the tenant
 * shows detailed errors. The stack always goes to the tenant log.
 */
function failure(method, e) {
  if (e instanceof HubError) return e.message;
  try {
    log.error(`hub method '${method}' threw: ${e?.stack ?? e}`);
  } catch {
    // No host to log to (a call outside a component or test host).
  }
  const text = `An unexpected error occurred invoking '${method}' on the server.`;
  return detailedErrors() ? `${text} ${describeThrown(e)}` : text;
}

/** Whether a function's last parameter is a rest parameter (`(ctx, ...args)`). */
function hasRest(fn) {
  const params = /^[^(]*\(([^)]*)\)/.exec(Function.prototype.toString.call(fn));
  return params !== null && params[1].includes('...');
}

/** The four exports of the hub world, for a hub module. `build.mjs` wires them up. */
export function exportHub(module, version) {
  const methods = collect(module);
  return {
    describe() {
      return {
        sdkVersion: `switchboard-hub-js ${version}`,
        methods: [...methods.values()].map((m) => ({
          name: m.name,
          kind: m.stream ? 'server-stream' : 'unary',
          uploadStreams: m.uploads,
        })),
      };
    },

    onConnected(ctx) {
      try {
        module.onConnected?.(new Context(ctx));
      } catch (e) {
        throw failure('onConnected', e);
      }
    },

    onDisconnected(ctx, error) {
      try {
        module.onDisconnected?.(new Context(ctx), error ?? null);
      } catch (e) {
        failure('onDisconnected', e);
      }
    },

    invoke(ctx, name, argsJson) {
      const method = methods.get(name.toLowerCase());
      if (!method) throw `Unknown hub method '${name}'`;
      let args;
      try {
        args = JSON.parse(argsJson);
      } catch (e) {
        throw `Failed to invoke '${method.name}': invalid arguments: ${e.message}`;
      }
      const expected = method.fn.length - 1 - method.uploads;
      const fits = Array.isArray(args) && (method.variadic ? args.length >= expected : args.length === expected);
      if (!fits) {
        const wanted = `${method.variadic ? 'at least ' : ''}${expected} argument(s)`;
        throw `Failed to invoke '${method.name}': invalid arguments: expected ${wanted}, got ${Array.isArray(args) ? args.length : 'no array'}`;
      }
      for (let i = 0; i < method.uploads; i++) args.push(upload(i));
      try {
        const result = method.fn(new Context(ctx), ...args);
        if (method.stream) {
          for (const item of result) {
            try {
              bound().streaming.emit(json(item));
            } catch {
              // The client cancelled the stream or left: stop the generator.
              result.return?.();
              break;
            }
          }
          return undefined;
        }
        return result === undefined ? undefined : json(result);
      } catch (e) {
        throw failure(method.name, e);
      }
    },
  };
}

// === MessagePack types ===
// Arguments arrive as JSON: bin from a MessagePack client as base64 text, a timestamp as ISO 8601
// UTC text. Values marked with `binary()` / `date()` go out as bin and a timestamp to MessagePack
// clients, and as the plain base64 / ISO text to JSON clients.

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function toBase64(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += BASE64[(n >> 18) & 63] + BASE64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? BASE64[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.length ? BASE64[n & 63] : '=';
  }
  return out;
}

/** Marks bytes (a Uint8Array, an array of numbers, or base64 text) as binary data. */
export function binary(bytes) {
  return { $binary: typeof bytes === 'string' ? bytes : toBase64(Uint8Array.from(bytes)) };
}

/** Marks a Date (or ISO 8601 text with an offset) as a timestamp. */
export function date(value) {
  return { $date: value instanceof Date ? value.toISOString() : String(value) };
}

/** Standard base64, padded: what MessagePack clients' bin reads as and the host decodes. */
const BASE64_TEXT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The bytes of a base64 argument (or of a `binary()` marker); a HubError for anything else. */
export function bytesOf(value) {
  const text = typeof value === 'string' ? value : value?.$binary;
  if (typeof text !== 'string' || !BASE64_TEXT.test(text)) throw new HubError('expected base64 text');
  const clean = text.replace(/=+$/, '');
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let at = 0;
  for (const ch of clean) {
    const v = BASE64.indexOf(ch);
    if (v < 0) throw new HubError('expected base64 text');
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/** An ISO 8601 date and time with its offset (`Z` or `±HH:MM`), as the host reads a `$date`. */
const ISO_DATE_TIME = /^[+-]?\d{4,6}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/i;

/**
 * The Date of an ISO 8601 argument (or of a `date()` marker); a HubError for anything else. A
 * Date keeps milliseconds: digits past them are dropped (pass the text to `date()` to keep them).
 */
export function dateOf(value) {
  const text = typeof value === 'string' ? value : value?.$date;
  if (typeof text !== 'string' || !ISO_DATE_TIME.test(text)) throw new HubError('expected an ISO 8601 date');
  // Date.parse reads at most three fraction digits in every engine: cut the rest.
  const parsed = new Date(text.replace(/(\.\d{3})\d+/, '$1'));
  if (Number.isNaN(parsed.getTime())) throw new HubError('expected an ISO 8601 date');
  return parsed;
}
