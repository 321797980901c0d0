"""A test host for Python hubs: runs a hub module's methods natively
(``python3 -m unittest``), without a server or a component, and records what they did.
See README.md, "Testing".

    from switchboard_hub.testing import Caller, TestHost
    import hub

    host = TestHost(hub)
    ann = Caller("conn-1").user("ann")
    assert host.invoke(ann, "hello", "Ann") == "Hello, Ann"
    assert host.sent()[0].to == To("all", except_=["conn-1"])

While a TestHost runs a hub function, every host call of the SDK (clients, groups, kv,
streaming, invocation, connection, log) goes to it: an in-memory store, captured sends
delivered to the connections it knows, group membership, connection items, stream items and
upload streams, log lines. The hub's code is exactly what the component runs, dispatched by
the same code (camelCase names, argument counts, results, errors).
"""

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Optional

from . import HostError, HubError, UploadError, _Hub, _Refused, bind_host

__all__ = ["Caller", "TestHost", "Call", "Streamed", "Sent", "To", "Message", "Invoked", "GroupChange", "LogLine"]

_NO_INVOCATION = "no invocation is running on the test host"


def _parse(text: str) -> Any:
    """JSON the SDK encoded, as a value (text that is not JSON stays a string)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class Caller:
    """The connection a test calls from: its id, user, token claims and the request that
    opened it. The setters return the caller, to chain them."""

    def __init__(self, connection_id: str):
        self.connection_id = connection_id
        self.user_id: Optional[str] = None
        self.claims: dict = {}
        self.query_pairs: list = []
        self.headers: list = []
        self.cookies: list = []
        self.transport_name = "WebSockets"

    def user(self, user_id: str) -> "Caller":
        """Authenticated as ``user_id`` (also its ``sub`` claim, unless a claim says otherwise)."""
        self.user_id = user_id
        self.claims.setdefault("sub", user_id)
        return self

    def claim(self, name: str, value: Any) -> "Caller":
        self.claims[name] = value
        return self

    def query(self, name: str, value: str) -> "Caller":
        self.query_pairs.append((name, str(value)))
        return self

    def header(self, name: str, value: str) -> "Caller":
        self.headers.append((name, str(value)))
        return self

    def cookie(self, name: str, value: str) -> "Caller":
        """A cookie of the request, as one the tenant's ``plugin_cookies`` allows."""
        self.cookies.append((name, str(value)))
        return self

    def transport(self, name: str) -> "Caller":
        """``"WebSockets"`` (the default), ``"ServerSentEvents"`` or ``"LongPolling"``."""
        self.transport_name = name
        return self


@dataclass
class To:
    """Recipients of a send as the hub named them: ``kind`` is ``"all"`` (``except_``),
    ``"connections"`` or ``"users"`` (``ids``), or ``"groups"`` (``groups``, ``except_``)."""

    kind: str
    ids: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    except_: list = field(default_factory=list)


@dataclass
class Sent:
    to: To
    method: str
    args: list


@dataclass
class Message:
    method: str
    args: list


@dataclass
class Invoked:
    connection_id: str
    method: str
    args: list


@dataclass
class GroupChange:
    change: str  # "added" or "removed"
    connection_id: str
    group: str


@dataclass
class LogLine:
    level: str
    message: str


@dataclass
class Streamed:
    """What a streaming method did: its items, then ``error`` (None, or the client's text)."""

    items: list
    error: Optional[str] = None


def _to(target: tuple) -> To:
    kind = target[0]
    if kind == "all":
        return To("all", except_=list(target[1]))
    if kind in ("connections", "users"):
        return To(kind, ids=list(target[1]))
    return To("groups", groups=list(target[1]), except_=list(target[2]))


class _Connection:
    def __init__(self, caller: Caller):
        self.caller = caller
        self.items: dict = {}
        self.inbox: list = []
        self.connected = True


class _Invocation:
    def __init__(self, connection_id: str, uploads: list, cancel_after: Optional[int]):
        self.connection_id = connection_id
        self.uploads = uploads
        self.emitted: list = []
        self.cancel_after = cancel_after


class TestHost:
    """An in-memory Switchboard host for one hub module. Each test makes its own.

    ``tenant`` and ``hub`` are what the Context reports; ``detailed_errors`` is the tenant's
    setting of that name (what the client reads of an unexpected exception)."""

    __test__ = False  # not a unittest/pytest test class

    def __init__(self, module, tenant: str = "tenant", hub: str = "hub", detailed_errors: bool = False):
        self._hub = _Hub(module)
        self.tenant = tenant
        self.hub = hub
        self.detailed = detailed_errors
        self._connections: dict = {}
        self._groups: dict = {}
        self._kv: dict = {}
        self._sent: list = []
        self._changes: list = []
        self._invoked: list = []
        self._logs: list = []
        self._failing: dict = {}
        self._answer: Optional[Callable] = None
        self._invocation: Optional[_Invocation] = None
        self._slept_ms = 0

    # --- running hub functions

    def raw_context(self, caller: Caller) -> SimpleNamespace:
        """The raw context the hub's Context is made from, for calls from ``caller``."""
        return SimpleNamespace(
            tenant=self.tenant,
            hub=self.hub,
            connection_id=caller.connection_id,
            user_id=caller.user_id,
            claims_json=json.dumps(caller.claims),
        )

    def connect(self, caller: Caller) -> None:
        """Runs the hub's ``on_connected``; raises its refusal as a HubError."""
        try:
            self._run(caller, [], None, lambda: self._hub.on_connected(self.raw_context(caller)))
        except _Refused as e:
            self._forget(caller)
            raise HubError(str(e)) from None

    def disconnect(self, caller: Caller, error: Optional[str] = None) -> None:
        """Runs ``on_disconnected(ctx, error)``, then drops the caller's groups and items."""
        self._run(caller, [], None, lambda: self._hub.on_disconnected(self.raw_context(caller), error))
        self._forget(caller)

    def invoke(self, caller: Caller, method: str, *args: Any) -> Any:
        """Calls ``method`` as ``caller``, as a client would: its result (None for a void
        completion too), or a raised HubError whose message is the text the client sees."""
        return self.call(caller, method).args(*args).invoke()

    def stream(self, caller: Caller, method: str, *args: Any) -> Streamed:
        """Calls streaming ``method``: its items, and its error text or None."""
        return self.call(caller, method).args(*args).stream()

    def call(self, caller: Caller, method: str) -> "Call":
        """A call with more to set up: raw JSON arguments, upload streams, a client that cancels."""
        return Call(self, caller, method)

    def enter(self, caller: Caller, fn: Callable[[], Any]) -> Any:
        """Runs ``fn`` as if ``caller``'s hub function did: its host calls go to this host."""
        return self._run(caller, [], None, fn)[0]

    def _run(self, caller: Caller, uploads: list, cancel_after: Optional[int], fn):
        connection = self._connections.get(caller.connection_id)
        if connection is None:
            connection = self._connections[caller.connection_id] = _Connection(caller)
        connection.caller = caller
        connection.connected = True
        outer = self._invocation
        self._invocation = _Invocation(caller.connection_id, uploads, cancel_after)
        previous = bind_host(_Imports(self))
        try:
            return fn(), self._invocation.emitted
        finally:
            bind_host(previous)
            self._invocation = outer

    def _forget(self, caller: Caller) -> None:
        connection = self._connections.get(caller.connection_id)
        if connection is not None:
            connection.connected = False
            connection.items.clear()
        for group in list(self._groups):
            self._groups[group].discard(caller.connection_id)
            if not self._groups[group]:
                del self._groups[group]

    # --- what the hub did

    def sent(self) -> list:
        """Every send the hub made, in order (``Sent(to, method, args)``)."""
        return list(self._sent)

    def take_sent(self) -> list:
        """The sends so far, forgotten (with every connection's received messages)."""
        for connection in self._connections.values():
            connection.inbox = []
        sent, self._sent = self._sent, []
        return sent

    def received(self, caller: Caller) -> list:
        """What ``caller``'s connection received (``Message(method, args)``): sends that named it,
        its user, a group it was in, or everyone, while it was connected."""
        connection = self._connections.get(caller.connection_id)
        return list(connection.inbox) if connection else []

    def answer_client_invocations(self, answer: Callable[[str, str, list], Any]) -> None:
        """How clients answer client results: ``answer(connection_id, method, args)`` returns
        the client's result, or raises (its text is the client's error)."""
        self._answer = answer

    def client_invocations(self) -> list:
        return list(self._invoked)

    def group_members(self, group: str) -> list:
        return sorted(self._groups.get(group, ()))

    def groups_of(self, caller: Caller) -> list:
        return sorted(g for g, members in self._groups.items() if caller.connection_id in members)

    def group_changes(self) -> list:
        return list(self._changes)

    def kv(self, key: str) -> Optional[str]:
        entry = self._kv.get(key)
        return entry[0] if entry else None

    def kv_ttl(self, key: str) -> Optional[int]:
        """The TTL in ms ``key`` was last set with; None when absent or set without one."""
        entry = self._kv.get(key)
        return entry[1] if entry else None

    def kv_entries(self) -> list:
        return sorted((k, v) for k, (v, _) in self._kv.items())

    def set_kv(self, key: str, value: str) -> None:
        """Sets ``key`` as a hub would, with no expiry (to prepare a test)."""
        self._kv[key] = (value, None)

    def expire(self, key: str) -> None:
        """Ends ``key`` as if its TTL ran out (entries never expire by themselves)."""
        self._kv.pop(key, None)

    def item(self, caller: Caller, key: str) -> Optional[str]:
        connection = self._connections.get(caller.connection_id)
        return connection.items.get(key) if connection else None

    def fail(self, call: str, reason: str) -> None:
        """Makes host call ``call`` (``"kv.set"``, ``"clients.send"``, ...) fail with ``reason``."""
        self._failing[call] = reason

    def heal(self, call: str) -> None:
        self._failing.pop(call, None)

    def logs(self) -> list:
        return list(self._logs)

    def slept(self) -> float:
        """How long the hub slept, in seconds. Time is virtual: a sleep returns at once."""
        return self._slept_ms / 1000


class _Imports:
    """The host calls of the SDK, served from a TestHost's state."""

    def __init__(self, host: TestHost):
        self.h = host

    def _check(self, call: str) -> None:
        reason = self.h._failing.get(call)
        if reason is not None:
            raise HostError(reason)

    def _cancelled(self) -> bool:
        i = self.h._invocation
        return i is not None and i.cancel_after is not None and len(i.emitted) >= i.cancel_after

    def _caller(self) -> Optional[_Connection]:
        i = self.h._invocation
        return self.h._connections.get(i.connection_id) if i else None

    def _receives(self, to: To, id: str, connection: _Connection) -> bool:
        if to.kind == "all":
            return id not in to.except_
        if to.kind == "connections":
            return id in to.ids
        if to.kind == "users":
            return connection.caller.user_id is not None and connection.caller.user_id in to.ids
        member = any(id in self.h._groups.get(g, ()) for g in to.groups)
        return member and id not in to.except_

    def send(self, target: tuple, method: str, args_json: str) -> None:
        self._check("clients.send")
        to, args = _to(target), _parse(args_json)
        for id, connection in self.h._connections.items():
            if connection.connected and self._receives(to, id, connection):
                connection.inbox.append(Message(method, args))
        self.h._sent.append(Sent(to, method, args))

    def invoke(self, connection_id: str, method: str, args_json: str, timeout_ms: int) -> str:
        self._check("clients.invoke")
        args = _parse(args_json)
        self.h._invoked.append(Invoked(connection_id, method, args))
        if self.h._answer is None:
            raise HostError("the test host has no client results (see TestHost.answer_client_invocations)")
        try:
            return json.dumps(self.h._answer(connection_id, method, args))
        except Exception as e:
            raise HostError(str(e)) from None

    def group_add(self, connection_id: str, group: str) -> None:
        self._check("groups.add")
        self.h._groups.setdefault(group, set()).add(connection_id)
        self.h._changes.append(GroupChange("added", connection_id, group))

    def group_remove(self, connection_id: str, group: str) -> None:
        self._check("groups.remove")
        members = self.h._groups.get(group)
        if members is not None:
            members.discard(connection_id)
            if not members:
                del self.h._groups[group]
        self.h._changes.append(GroupChange("removed", connection_id, group))

    def kv_get(self, key: str) -> Optional[str]:
        self._check("kv.get")
        return self.h.kv(key)

    def kv_set(self, key: str, value: str, ttl_ms: Optional[int]) -> None:
        self._check("kv.set")
        self.h._kv[key] = (value, ttl_ms)

    def kv_delete(self, key: str) -> None:
        self._check("kv.delete")
        self.h._kv.pop(key, None)

    def kv_compare_and_set(self, key: str, expected: Optional[str], value: str, ttl_ms: Optional[int]) -> bool:
        self._check("kv.compare_and_set")
        if self.h.kv(key) != expected:
            return False
        self.h._kv[key] = (value, ttl_ms)
        return True

    def emit(self, item_json: str) -> None:
        if self._cancelled():
            raise HostError("the client cancelled the stream")
        if self.h._invocation is None:
            raise HostError(_NO_INVOCATION)
        self.h._invocation.emitted.append(_parse(item_json))

    def next_upload(self, index: int) -> Optional[str]:
        if self._cancelled():
            raise UploadError("cancelled", "the call was cancelled")
        i = self.h._invocation
        if i is None or index >= len(i.uploads):
            raise UploadError("host", f"the invocation has no upload stream {index}")
        upload = i.uploads[index]
        if upload["items"]:
            return upload["items"].pop(0)
        error, upload["error"] = upload["error"], None
        if error is not None:
            raise UploadError("client", error)
        return None

    def cancelled(self) -> bool:
        return self._cancelled()

    def sleep(self, ms: int) -> None:
        self._check("invocation.sleep")
        if self._cancelled():
            raise HostError("the call was cancelled")
        self.h._slept_ms += ms

    def detailed_errors(self) -> bool:
        return self.h.detailed

    def query(self) -> list:
        c = self._caller()
        return list(c.caller.query_pairs) if c else []

    def header(self, name: str) -> Optional[str]:
        c = self._caller()
        found = [v for k, v in (c.caller.headers if c else []) if k.lower() == name.lower()]
        return found[0] if found else None

    def cookie(self, name: str) -> Optional[str]:
        c = self._caller()
        found = [v for k, v in (c.caller.cookies if c else []) if k == name]
        return found[0] if found else None

    def transport(self) -> Optional[str]:
        c = self._caller()
        return c.caller.transport_name if c else None

    def get_item(self, key: str) -> Optional[str]:
        c = self._caller()
        return c.items.get(key) if c else None

    def set_item(self, key: str, value: Optional[str]) -> None:
        self._check("connection.set_item")
        c = self._caller()
        if c is None:
            raise HostError("this call has no connection")
        if value is None:
            c.items.pop(key, None)
        else:
            c.items[key] = value

    def log(self, level: str, message: str) -> None:
        self.h._logs.append(LogLine(level, message))


class Call:
    """One invocation being set up; finish it with ``invoke()`` or ``stream()``."""

    def __init__(self, host: TestHost, caller: Caller, method: str):
        self._host = host
        self._caller = caller
        self._method = method
        self._json = "[]"
        self._uploads: list = []
        self._cancel_after: Optional[int] = None

    def args(self, *args: Any) -> "Call":
        self._json = json.dumps(list(args))
        return self

    def args_json(self, text: str) -> "Call":
        """The argument array as raw JSON text, as the host passes it on."""
        self._json = text
        return self

    def upload(self, items) -> "Call":
        """The next upload stream: the client sends these items, then completes it."""
        self._uploads.append({"items": [json.dumps(i) for i in items], "error": None})
        return self

    def upload_failing(self, items, error: str) -> "Call":
        """The next upload stream, which the client completes with ``error`` after these items."""
        self._uploads.append({"items": [json.dumps(i) for i in items], "error": error})
        return self

    def cancel_after(self, count: int) -> "Call":
        """The client cancels the server stream after receiving ``count`` items."""
        self._cancel_after = count
        return self

    def _dispatch(self):
        ctx = self._host.raw_context(self._caller)

        def run():
            try:
                return self._host._hub.invoke(ctx, self._method, self._json), None
            except _Refused as e:
                return None, str(e)

        (result, error), items = self._host._run(self._caller, self._uploads, self._cancel_after, run)
        return result, error, items

    def invoke(self) -> Any:
        """Runs the method: its result (None for void), or raises HubError with the client's text."""
        result, error, _ = self._dispatch()
        if error is not None:
            raise HubError(error)
        return None if result is None else json.loads(result)

    def stream(self) -> Streamed:
        """Runs a streaming method: its items, and its error text or None."""
        _, error, items = self._dispatch()
        return Streamed(items, error)
