// A test host for JavaScript hubs: runs a hub module's methods natively (`node --test`),
// without a server or a component, and records what they did. See README.md, "Testing".
//
//   import { Caller, TestHost } from '../../sdk-js/src/testing.js';
//   import * as hub from './hub.js';
//
//   const host = new TestHost(hub);
//   const ann = new Caller('conn-1').user('ann');
//   assert.equal(host.invoke(ann, 'hello', 'Ann'), 'Hello, Ann');
//   assert.deepEqual(host.sent()[0].to, { kind: 'all', except: ['conn-1'] });
//
// While a TestHost runs a hub function, every host call of the SDK (clients, groups, kv,
// streaming, invocation, connection, log) goes to it: an in-memory store, captured sends
// delivered to the connections it knows, group membership, connection items, stream items and
// upload streams, log lines. The hub's code is exactly what the component runs, dispatched by
// the same code (names, argument counts, errors).

import { HubError, bindHost, exportHub } from './switchboard.js';

const NO_INVOCATION = 'no invocation is running on the test host';

/** A host call's failure, as the component's imports throw it (`payload` is the WIT `err`). */
function refused(payload) {
  return Object.assign(new Error(typeof payload === 'string' ? payload : JSON.stringify(payload)), { payload });
}

/** JSON the SDK encoded, as a value (text that is not JSON stays a string). */
function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The connection a test calls from: its id, user, token claims and the request that opened it. */
export class Caller {
  constructor(connectionId) {
    this.connectionId = connectionId;
    this.userId = null;
    this.claims = {};
    this.queryPairs = [];
    this.headers = [];
    this.cookies = [];
    this.transportName = 'WebSockets';
  }

  /** Authenticated as `userId` (also its `sub` claim, unless a claim says otherwise). */
  user(userId) {
    this.userId = userId;
    if (!('sub' in this.claims)) this.claims.sub = userId;
    return this;
  }

  /** Token claim `name` set to `value`. */
  claim(name, value) {
    this.claims[name] = value;
    return this;
  }

  /** Query parameter `name=value` on the request that opened the connection. */
  query(name, value) {
    this.queryPairs.push([name, String(value)]);
    return this;
  }

  /** Header `name: value` on that request. */
  header(name, value) {
    this.headers.push([name, String(value)]);
    return this;
  }

  /** Cookie `name=value` on that request (as one the tenant's `plugin_cookies` allows). */
  cookie(name, value) {
    this.cookies.push([name, String(value)]);
    return this;
  }

  /** Another transport: 'WebSockets' (the default), 'ServerSentEvents' or 'LongPolling'. */
  transport(name) {
    this.transportName = name;
    return this;
  }
}

/** Recipients of a send as the hub named them: `{ kind: 'all' | 'connections' | 'users' | 'groups', ... }`. */
function recipients(target) {
  switch (target.tag) {
    case 'all':
      return { kind: 'all', except: [...target.val] };
    case 'connections':
      return { kind: 'connections', ids: [...target.val] };
    case 'users':
      return { kind: 'users', ids: [...target.val] };
    default:
      return { kind: 'groups', groups: [...target.val.groups], except: [...target.val.except] };
  }
}

/** An in-memory Switchboard host for one hub module. Each test makes its own. */
export class TestHost {
  /**
   * @param hub the hub module (`import * as hub from './hub.js'`)
   * @param options `tenant` and `hub` (as the Context reports them; 'tenant' and 'hub'),
   *   `detailedErrors` (the tenant's `detailed_errors`; false)
   */
  constructor(hub, { tenant = 'tenant', hub: hubName = 'hub', detailedErrors = false } = {}) {
    this.exported = exportHub(hub, 'test');
    this.tenant = tenant;
    this.hubName = hubName;
    this.detailedErrors = detailedErrors;
    this.connections = new Map();
    this.groups = new Map();
    this.store = new Map();
    this.sends = [];
    this.changes = [];
    this.invoked = [];
    this.lines = [];
    this.failing = new Map();
    this.answer = null;
    this.invocation = null;
    this.sleptMs = 0;
  }

  /** The raw context the hub's Context is made from, for calls from `caller`. */
  rawContext(caller) {
    return {
      tenant: this.tenant,
      hub: this.hubName,
      connectionId: caller.connectionId,
      userId: caller.userId ?? undefined,
      claimsJson: JSON.stringify(caller.claims),
    };
  }

  /** Connects `caller`: runs the hub's `onConnected`. Throws the refusal (a HubError) it gets. */
  connect(caller) {
    try {
      this.run(caller, {}, () => this.exported.onConnected(this.rawContext(caller)));
    } catch (e) {
      this.forget(caller);
      throw new HubError(typeof e === 'string' ? e : String(e?.message ?? e));
    }
  }

  /** Disconnects `caller`: runs `onDisconnected(ctx, error)`, then drops its groups and items. */
  disconnect(caller, error = null) {
    this.run(caller, {}, () => this.exported.onDisconnected(this.rawContext(caller), error ?? undefined));
    this.forget(caller);
  }

  /**
   * Calls `method` as `caller` with `args`, as a client would: the result (undefined for a
   * void completion), or a thrown HubError whose message is the text the client would see.
   */
  invoke(caller, method, ...args) {
    return this.call(caller, method).args(...args).invoke();
  }

  /** Calls streaming `method`: `{ items, error }`, error being null or the client's text. */
  stream(caller, method, ...args) {
    return this.call(caller, method).args(...args).stream();
  }

  /** A call with more to set up: raw JSON arguments, upload streams, a client that cancels. */
  call(caller, method) {
    return new Call(this, caller, method);
  }

  /** Runs `f` as if `caller`'s hub function did: its host calls go to this host. */
  enter(caller, f) {
    return this.run(caller, {}, f);
  }

  /** Runs a hub function for `caller` with this host bound. */
  run(caller, { uploads = [], cancelAfter = null } = {}, f) {
    let connection = this.connections.get(caller.connectionId);
    if (!connection) {
      connection = { items: new Map(), inbox: [] };
      this.connections.set(caller.connectionId, connection);
    }
    Object.assign(connection, { caller, connected: true });
    const outer = this.invocation;
    this.invocation = { connectionId: caller.connectionId, uploads, emitted: [], cancelAfter };
    const previous = bindHost(this.imports());
    try {
      return f();
    } finally {
      bindHost(previous);
      this.lastEmitted = this.invocation.emitted;
      this.invocation = outer;
    }
  }

  forget(caller) {
    const connection = this.connections.get(caller.connectionId);
    if (connection) {
      connection.connected = false;
      connection.items.clear();
    }
    for (const [group, members] of this.groups) {
      members.delete(caller.connectionId);
      if (members.size === 0) this.groups.delete(group);
    }
  }

  /** Throws the reason `call` was made to fail, if it was. */
  check(call) {
    if (this.failing.has(call)) throw refused(this.failing.get(call));
  }

  cancelled() {
    const i = this.invocation;
    return i !== null && i.cancelAfter !== null && i.emitted.length >= i.cancelAfter;
  }

  caller() {
    return this.invocation && this.connections.get(this.invocation.connectionId);
  }

  receives(to, id, connection) {
    const member = (group) => this.groups.get(group)?.has(id) ?? false;
    switch (to.kind) {
      case 'all':
        return !to.except.includes(id);
      case 'connections':
        return to.ids.includes(id);
      case 'users':
        return connection.caller.userId !== null && to.ids.includes(connection.caller.userId);
      default:
        return to.groups.some(member) && !to.except.includes(id);
    }
  }

  /** The switchboard:hub imports, served from this host's state. */
  imports() {
    const host = this;
    return {
      clients: {
        send(target, method, argsJson) {
          host.check('clients.send');
          const to = recipients(target);
          const args = parse(argsJson);
          for (const [id, c] of host.connections) {
            if (c.connected && host.receives(to, id, c)) c.inbox.push({ method, args });
          }
          host.sends.push({ to, method, args });
        },
        invoke(connectionId, method, argsJson) {
          host.check('clients.invoke');
          const args = parse(argsJson);
          host.invoked.push({ connectionId, method, args });
          if (host.answer === null) {
            throw refused('the test host has no client results (see TestHost.answerClientInvocations)');
          }
          try {
            return JSON.stringify(host.answer(connectionId, method, args) ?? null);
          } catch (e) {
            throw refused(String(e?.message ?? e));
          }
        },
      },
      groups: {
        add(connectionId, group) {
          host.check('groups.add');
          if (!host.groups.has(group)) host.groups.set(group, new Set());
          host.groups.get(group).add(connectionId);
          host.changes.push({ change: 'added', connectionId, group });
        },
        remove(connectionId, group) {
          host.check('groups.remove');
          host.groups.get(group)?.delete(connectionId);
          if (host.groups.get(group)?.size === 0) host.groups.delete(group);
          host.changes.push({ change: 'removed', connectionId, group });
        },
      },
      kv: {
        get(key) {
          host.check('kv.get');
          return host.store.get(key)?.value;
        },
        set(key, value, ttlMs) {
          host.check('kv.set');
          host.store.set(key, { value, ttlMs: ttlMs === undefined ? null : Number(ttlMs) });
        },
        delete(key) {
          host.check('kv.delete');
          host.store.delete(key);
        },
        compareAndSet(key, expected, value, ttlMs) {
          host.check('kv.compareAndSet');
          const current = host.store.get(key)?.value;
          if (current !== expected) return false;
          host.store.set(key, { value, ttlMs: ttlMs === undefined ? null : Number(ttlMs) });
          return true;
        },
      },
      streaming: {
        emit(itemJson) {
          if (host.cancelled()) throw refused('the client cancelled the stream');
          if (host.invocation === null) throw refused(NO_INVOCATION);
          host.invocation.emitted.push(parse(itemJson));
        },
        nextUploadItem(index) {
          if (host.cancelled()) throw refused({ tag: 'cancelled' });
          const upload = host.invocation?.uploads[index];
          if (!upload) throw refused({ tag: 'host', val: `the invocation has no upload stream ${index}` });
          if (upload.items.length > 0) return upload.items.shift();
          if (upload.error !== null) {
            const error = upload.error;
            upload.error = null;
            throw refused({ tag: 'client', val: error });
          }
          return undefined;
        },
      },
      invocation: {
        cancelled: () => host.cancelled(),
        sleep(ms) {
          host.check('invocation.sleep');
          if (host.cancelled()) throw refused('the call was cancelled');
          host.sleptMs += ms;
        },
        detailedErrors: () => host.detailedErrors,
      },
      connection: {
        query: () => (host.caller()?.caller.queryPairs ?? []).map(([k, v]) => [k, v]),
        header(name) {
          const wanted = name.toLowerCase();
          return host.caller()?.caller.headers.find(([k]) => k.toLowerCase() === wanted)?.[1];
        },
        cookie: (name) => host.caller()?.caller.cookies.find(([k]) => k === name)?.[1],
        transport: () => host.caller()?.caller.transportName ?? undefined,
        getItem: (key) => host.caller()?.items.get(key),
        setItem(key, value) {
          host.check('connection.setItem');
          const items = host.caller()?.items;
          if (!items) throw refused('this call has no connection');
          if (value === undefined) items.delete(key);
          else items.set(key, value);
        },
      },
      log: {
        log(level, message) {
          host.lines.push({ level, message });
        },
      },
    };
  }

  /** Every send the hub made, in order: `{ to, method, args }`. */
  sent() {
    return this.sends.map((s) => ({ ...s }));
  }

  /** The sends so far, forgotten (with every connection's received messages). */
  takeSent() {
    for (const c of this.connections.values()) c.inbox = [];
    const sent = this.sends;
    this.sends = [];
    return sent;
  }

  /**
   * What `caller`'s connection received, in order (`{ method, args }`): sends that named it,
   * its user, a group it was in, or everyone, while it was connected.
   */
  received(caller) {
    return [...(this.connections.get(caller.connectionId)?.inbox ?? [])];
  }

  /** How clients answer the hub's client results: `answer(connectionId, method, args)` returns or throws. */
  answerClientInvocations(answer) {
    this.answer = answer;
  }

  /** The client results the hub asked for: `{ connectionId, method, args }`. */
  clientInvocations() {
    return [...this.invoked];
  }

  /** The members of `group`, sorted. */
  groupMembers(group) {
    return [...(this.groups.get(group) ?? [])].sort();
  }

  /** The groups `caller` is in, sorted. */
  groupsOf(caller) {
    return [...this.groups].filter(([, members]) => members.has(caller.connectionId)).map(([g]) => g).sort();
  }

  /** Every group change, in order: `{ change: 'added' | 'removed', connectionId, group }`. */
  groupChanges() {
    return [...this.changes];
  }

  /** The value of `key` in the store, or null. */
  kv(key) {
    return this.store.get(key)?.value ?? null;
  }

  /** The TTL (ms) `key` was last set with; null when absent or set without one. */
  kvTtl(key) {
    return this.store.get(key)?.ttlMs ?? null;
  }

  /** Every `[key, value]` in the store, sorted by key. */
  kvEntries() {
    return [...this.store].map(([k, e]) => [k, e.value]).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Sets `key` as a hub would, with no expiry (to prepare a test). */
  setKv(key, value) {
    this.store.set(key, { value, ttlMs: null });
  }

  /** Ends `key` as if its TTL ran out (entries never expire by themselves). */
  expire(key) {
    this.store.delete(key);
  }

  /** An item of `caller`'s connection, or null. */
  item(caller, key) {
    return this.connections.get(caller.connectionId)?.items.get(key) ?? null;
  }

  /** Makes host call `call` ('kv.set', 'clients.send', 'groups.add', ...) fail with `reason`. */
  fail(call, reason) {
    this.failing.set(call, reason);
  }

  /** Makes `call` succeed again. */
  heal(call) {
    this.failing.delete(call);
  }

  /** The lines the hub logged: `{ level, message }`. */
  logs() {
    return [...this.lines];
  }

  /** How long the hub slept (ms). Time is virtual: a sleep returns at once. */
  slept() {
    return this.sleptMs;
  }
}

/** One invocation being set up; finish it with `invoke()` or `stream()`. */
class Call {
  constructor(host, caller, method) {
    this.host = host;
    this.caller = caller;
    this.method = method;
    this.json = '[]';
    this.uploads = [];
    this.cancelAt = null;
  }

  /** The client's arguments. */
  args(...args) {
    this.json = JSON.stringify(args);
    return this;
  }

  /** The argument array as raw JSON text, as the host passes it on. */
  argsJson(text) {
    this.json = text;
    return this;
  }

  /** The next upload stream: the client sends these items, then completes it. */
  upload(items) {
    this.uploads.push({ items: [...items].map((i) => JSON.stringify(i)), error: null });
    return this;
  }

  /** The next upload stream, which the client completes with `error` after these items. */
  uploadFailing(items, error) {
    this.uploads.push({ items: [...items].map((i) => JSON.stringify(i)), error });
    return this;
  }

  /** The client cancels the server stream after receiving `count` items. */
  cancelAfter(count) {
    this.cancelAt = count;
    return this;
  }

  run() {
    const { host, caller } = this;
    return host.run(caller, { uploads: this.uploads, cancelAfter: this.cancelAt }, () => {
      try {
        return { result: host.exported.invoke(host.rawContext(caller), this.method, this.json) };
      } catch (e) {
        return { error: typeof e === 'string' ? e : String(e?.message ?? e) };
      }
    });
  }

  /** Runs the method: its result (undefined: void), or throws a HubError with the client's text. */
  invoke() {
    const { result, error } = this.run();
    if (error !== undefined) throw new HubError(error);
    return result === undefined ? undefined : JSON.parse(result);
  }

  /** Runs a streaming method: `{ items, error }` (error: null, or the client's text). */
  stream() {
    const { error } = this.run();
    return { items: this.host.lastEmitted, error: error ?? null };
  }
}
