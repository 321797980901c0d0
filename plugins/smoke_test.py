"""Contract smoke test of the built plugins, without the Switchboard server.

Runs each component on wasmtime-py (PyPI `wasmtime`, component model) with a
fake host that records sends, group changes, KV writes, stream items and log
lines, and checks the behaviour other tests rely on: notify's exact texts and
TTL, chat's results (null versus void, whoami, streams), the hostile
fixture's traps and panic message, and that wrong_world is not a hub.

    pip install wasmtime            # 50.x or later
    cargo build --target wasm32-wasip2 --release
    python3 smoke_test.py [target/wasm32-wasip2/release]

Prints one line per check and exits non-zero if any failed.
"""
import json, os, sys, threading, time
from wasmtime import Engine, Store, WasiConfig, Config
from wasmtime.component import Component, Linker, Record, Variant

R = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "target/wasm32-wasip2/release")
cfg = Config(); cfg.epoch_interruption = True
engine = Engine(cfg)

class Host:
    def __init__(self):
        self.kv = {}; self.sent = []; self.groups = []; self.logs = []; self.emitted = []; self.uploads = {}
host = Host()

linker = Linker(engine)
linker.add_wasip2()
with linker.root() as root:
    with root.add_instance("switchboard:hub/types@0.1.0"):
        pass
    with root.add_instance("switchboard:hub/clients@0.1.0") as i:
        def send(store, target, method, args):
            host.sent.append((target.tag, target.payload if not isinstance(target.payload, Record) else dict(target.payload.__dict__), method, json.loads(args)))
            return None
        i.add_func("send", send)
        i.add_func("invoke", lambda store, conn, method, args, t: Variant("ok", json.dumps({"echo": [conn, method, json.loads(args), t]})))
    with root.add_instance("switchboard:hub/groups@0.1.0") as i:
        i.add_func("add", lambda store, c, g: (host.groups.append(("add", c, g)), None)[1])
        i.add_func("remove", lambda store, c, g: (host.groups.append(("remove", c, g)), None)[1])
    with root.add_instance("switchboard:hub/kv@0.1.0") as i:
        def kv_set(store, k, v, ttl):
            host.kv[k] = (v, ttl); return None
        i.add_func("get", lambda store, k: Variant("ok", host.kv[k][0] if k in host.kv else None))
        i.add_func("set", kv_set)
        i.add_func("delete", lambda store, k: (host.kv.pop(k, None), None)[1])
        i.add_func("compare-and-set", lambda store, k, e, v, ttl: Variant("ok", False))
    with root.add_instance("switchboard:hub/streaming@0.1.0") as i:
        i.add_func("emit", lambda store, item: (host.emitted.append(json.loads(item)), None)[1])
        def next_upload(store, idx):
            items = host.uploads.setdefault(idx, [])
            if items and items[0] == "ERR":
                return Variant("err", "client failed the stream")
            return Variant("ok", json.dumps(items.pop(0)) if items else None)
        i.add_func("next-upload", next_upload)
    with root.add_instance("switchboard:hub/log@0.1.0") as i:
        i.add_func("log", lambda store, level, msg: (host.logs.append((level, msg)), None)[1])

def ctx(conn="conn-1", user=None):
    r = Record()
    for k, v in {"tenant": "acme", "hub": "h", "connection-id": conn, "user-id": user, "claims-json": "{}"}.items():
        setattr(r, k, v)
    return r

def instance(name):
    comp = Component.from_file(engine, f"{R}/{name}.wasm")
    store = Store(engine)
    store.set_wasi(WasiConfig())
    store.set_epoch_deadline(1_000_000)
    inst = linker.instantiate(store, comp)
    return store, inst

def call(store, inst, export, *args):
    f = inst.get_func(store, export)
    out = f(store, *args)
    f.post_return(store)
    return out

def invoke(name, method, args, **kw):
    store, inst = instance(name)
    return call(store, inst, "invoke", ctx(**kw), method, json.dumps(args) if not isinstance(args, str) else args)

def describe(name):
    store, inst = instance(name)
    d = call(store, inst, "describe")
    return d.__dict__["sdk-version"], [(m.name, m.kind, m.__dict__["upload-streams"]) for m in d.methods]

failures = 0
passes = 0
def check(label, got, want):
    global failures, passes
    ok = got == want
    failures += not ok
    passes += ok
    print(("ok   " if ok else "FAIL ") + label + ("" if ok else f"\n     got  {got!r}\n     want {want!r}"))

# notify
check("notify describe", describe("notify"), ("0.1.0", [("registerClient", "unary", 0), ("notifyClient", "unary", 0)]))
check("register void", invoke("notify", "registerClient", [42], conn="conn-A"), Variant("ok", None))
check("kv stored with 24h ttl", host.kv.get("notify:client:42"), ("conn-A", 86_400_000))
check("register again replaces", invoke("notify", "RegisterClient", [42.0], conn="conn-B"), Variant("ok", None))
check("kv replaced", host.kv.get("notify:client:42")[0], "conn-B")
check("notify confirmed", invoke("notify", "notifyClient", [42, "Confirmed"]), Variant("ok", None))
check("sent once", host.sent.pop(), ("connections", ["conn-B"], "addMessage", ["Here's the message for confirmation"]))
check("notify failed=1", invoke("notify", "notifyClient", [42, 1]), Variant("ok", None))
check("sent failure text", host.sent.pop()[3], ["Here's the message for failure"])
check("unknown id", invoke("notify", "notifyClient", [7, 0]), Variant("err", "Unable to find connection"))
r = invoke("notify", "notifyClient", [42, "Maybe"])
check("unknown status named", (r.tag, r.payload.startswith("Failed to invoke 'notifyClient': invalid arguments: Unknown status \"Maybe\"")), ("err", True))
r = invoke("notify", "registerClient", ["x"])
check("bad args", (r.tag, r.payload.startswith("Failed to invoke 'registerClient': invalid arguments: ")), ("err", True))
check("unknown method", invoke("notify", "nope", []), Variant("err", "Unknown hub method 'nope'"))
check("no sends on errors", host.sent, [])

# chat
check("chat describe", describe("chat")[1][-2:], [("counter", "server-stream", 0), ("sum", "unary", 1)])
check("echo null", invoke("chat", "echo", [None]), Variant("ok", "null"))
check("echo obj", invoke("chat", "echo", [{"a": [1, None]}]), Variant("ok", '{"a":[1,null]}'))
check("whoami anon", json.loads(invoke("chat", "whoami", [], conn="c9").payload), {"connectionId": "c9", "userId": None})
check("whoami user", json.loads(invoke("chat", "whoami", [], conn="c9", user="ann").payload), {"connectionId": "c9", "userId": "ann"})
check("send", invoke("chat", "send", ["ann", "hi"]), Variant("ok", None))
check("send all", host.sent.pop(), ("all", [], "addNewMessageToPage", ["ann", "hi"]))
invoke("chat", "joinGroup", ["g"], conn="c1"); invoke("chat", "leaveGroup", ["g"], conn="c1")
check("groups", host.groups, [("add", "c1", "g"), ("remove", "c1", "g")])
invoke("chat", "sendToGroup", ["g", "ann", "hello"])
check("to group", host.sent.pop(), ("groups", {"groups": ["g"], "except": []}, "addNewMessageToPage", ["ann", "hello"]))
invoke("chat", "sendToUser", ["bob", "psst"], user="ann")
check("to user", host.sent.pop(), ("users", ["bob"], "addNewMessageToPage", ["ann", "psst"]))
invoke("chat", "sendToUser", ["bob", "psst"])
check("to user anon", host.sent.pop()[3], ["anonymous", "psst"])

check("counter", invoke("chat", "counter", [3]), Variant("ok", None))
check("counter items", host.emitted, [0, 1, 2])
host.uploads[0] = [1, 2, 39]
check("sum", invoke("chat", "sum", []), Variant("ok", "42"))
host.uploads[0] = [1, "ERR"]
check("sum upload error", invoke("chat", "sum", []), Variant("err", "streaming.next-upload failed: client failed the stream"))
host.uploads[0] = [1, "x"]
r = invoke("chat", "sum", [])
check("bad upload item", (r.tag, r.payload.startswith("invalid item in upload stream 0: ")), ("err", True))
host.uploads.clear()

# hostile
check("hostile describe", [m[0] for m in describe("hostile")[1]], ["ping", "spin", "allocate", "panic", "trap"])
check("ping", invoke("hostile", "ping", []), Variant("ok", '"pong"'))
for m in ["panic", "trap"]:
    host.logs.clear()
    try:
        invoke("hostile", m, [])
        check(m + " traps", "returned", "trap")
    except Exception as e:
        check(m + " traps", "trap" if "unreachable" in str(e) or "wasm trap" in str(e) or "backtrace" in str(e) else str(e)[:200], "trap")
        if m == "panic":
            logged = [(lvl, msg.startswith("panicked at fixtures/hostile/src/lib.rs:") and msg.endswith(": hostile plugin panicked on purpose")) for lvl, msg in host.logs]
            check("panic message logged", logged, [("error", True)])
store, inst = instance("hostile")
store.set_limits(memory_size=64 << 20)
t0 = time.time()
try:
    call(store, inst, "invoke", ctx(), "allocate", "[]"); check("allocate stopped", "returned", "trap")
except Exception as e:
    check("allocate stopped", "unreachable" in str(e), True); print(f"     after {time.time()-t0:.3f}s")
store, inst = instance("hostile")
store.set_epoch_deadline(2)
stop = threading.Event()
def ticker():
    while not stop.is_set():
        engine.increment_epoch(); time.sleep(0.01)
threading.Thread(target=ticker, daemon=True).start()
t0 = time.time()
try:
    call(store, inst, "invoke", ctx(), "spin", "[]"); check("spin interrupted", "returned", "trap")
except Exception as e:
    check("spin interrupted", "interrupt" in str(e), True); print(f"     after {time.time()-t0:.3f}s")
stop.set()

# wrong world: a valid component, but not a hub (no describe, another invoke)
store, inst = instance("wrong_world")
check("wrong_world has no describe", inst.get_func(store, "describe"), None)
check("wrong_world invoke has another type", [n for n, _ in inst.get_func(store, "invoke").type(store).params], ["method", "args-json"])

print(f"{passes} passed, {failures} failed")
sys.exit(1 if failures else 0)
