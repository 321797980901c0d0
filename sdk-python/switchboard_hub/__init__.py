"""The Switchboard hub SDK for Python: what a hub module imports.

A hub is a Python module whose public functions are its methods (see README.md);
``build.py`` turns it into a component of the switchboard:hub world with
componentize-py. A function ``register_client`` is the SignalR method
``registerClient`` (clients match names case-insensitively); a generator function
is a server-to-client stream; ``@uploads(n)`` marks client-to-server streams.

Host calls that fail raise ``HostError``; a method that raises ``HubError`` fails
the invocation with exactly its message.
"""

import base64 as _base64
import datetime as _dt
import inspect
import json
import traceback
from typing import Any, Iterator, Optional

__all__ = [
    "HubError",
    "binary",
    "date",
    "bytes_of",
    "datetime_of",
    "HostError",
    "UploadError",
    "Context",
    "clients",
    "groups",
    "kv",
    "invocation",
    "connection",
    "log",
    "uploads",
    "method",
    "bind_host",
]


class HubError(Exception):
    """An error whose message is what the calling client sees, word for word."""


class HostError(HubError):
    """A host call failed; the host's text is the message."""


# The host's imports. The module imports nothing of the component: in the component,
# ``export_hub`` binds the switchboard:hub world's imports (``_wit.WitHost``); natively, a
# ``testing.TestHost`` binds its own while it runs a hub function. Either serves the calls
# below and raises ``HostError`` (``UploadError`` for uploads) when the host refuses one.
_bound = None


def bind_host(host):
    """Makes ``host`` serve the SDK's host calls; returns the one bound before (or None)."""
    global _bound
    previous, _bound = _bound, host
    return previous


def _host():
    if _bound is None:
        raise HostError("no Switchboard host: run the hub in a component, or on a TestHost (switchboard_hub.testing)")
    return _bound


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class _Target:
    def __init__(self, target):
        self._target = target

    def send(self, method: str, *args: Any) -> None:
        """Invokes ``method(*args)`` on every connection of the target."""
        _host().send(self._target, method, _json(list(args)))


class _Connection(_Target):
    def __init__(self, connection_id: str):
        super().__init__(("connections", [connection_id]))
        self.id = connection_id

    def invoke(self, method: str, *args: Any, timeout_ms: int = 10_000) -> Any:
        """Calls ``method(*args)`` on the client and returns its result (a client result)."""
        return json.loads(_host().invoke(self.id, method, _json(list(args)), timeout_ms))


class clients:  # noqa: N801 - a namespace, used as ``clients.all()``
    @staticmethod
    def all(except_: list = ()) -> _Target:
        return _Target(("all", list(except_)))

    @staticmethod
    def others(ctx: "Context") -> _Target:
        return _Target(("all", [ctx.connection_id]))

    @staticmethod
    def caller(ctx: "Context") -> _Connection:
        return _Connection(ctx.connection_id)

    @staticmethod
    def connection(connection_id: str) -> _Connection:
        return _Connection(connection_id)

    @staticmethod
    def connections(ids: list) -> _Target:
        return _Target(("connections", list(ids)))

    @staticmethod
    def user(user_id: str) -> _Target:
        return _Target(("users", [user_id]))

    @staticmethod
    def users(ids: list) -> _Target:
        return _Target(("users", list(ids)))

    @staticmethod
    def group(group: str, except_: list = ()) -> _Target:
        return _Target(("groups", [group], list(except_)))

    @staticmethod
    def groups(groups: list, except_: list = ()) -> _Target:
        return _Target(("groups", list(groups), list(except_)))

    @staticmethod
    def others_in_group(ctx: "Context", group: str) -> _Target:
        return clients.group(group, [ctx.connection_id])


class groups:  # noqa: N801
    @staticmethod
    def add(connection_id: str, group: str) -> None:
        _host().group_add(connection_id, group)

    @staticmethod
    def remove(connection_id: str, group: str) -> None:
        _host().group_remove(connection_id, group)


class invocation:  # noqa: N801
    """The running call: whether its caller still wants it, and waiting without spending CPU time."""

    @staticmethod
    def cancelled() -> bool:
        """Whether the client cancelled this stream or its connection ended."""
        return _host().cancelled()

    @staticmethod
    def sleep(seconds: float) -> None:
        """Waits ``seconds`` (to the millisecond) without counting against the CPU limit.

        Raises ``HostError`` at once when the call is cancelled.
        """
        ms = max(0, min(0xFFFFFFFF, round(seconds * 1000)))
        _host().sleep(ms)


class kv:  # noqa: N801
    """The tenant's key-value store (strings; shared by every node of a cluster)."""

    @staticmethod
    def get(key: str) -> Optional[str]:
        return _host().kv_get(key)

    @staticmethod
    def set(key: str, value: str, ttl_ms: Optional[int] = None) -> None:
        _host().kv_set(key, value, ttl_ms)

    @staticmethod
    def delete(key: str) -> None:
        _host().kv_delete(key)

    @staticmethod
    def compare_and_set(key: str, expected: Optional[str], value: str, ttl_ms: Optional[int] = None) -> bool:
        return _host().kv_compare_and_set(key, expected, value, ttl_ms)


class connection:  # noqa: N801
    """The caller's connection: the request that opened it, and its items."""

    @staticmethod
    def query() -> list:
        return _host().query()

    @staticmethod
    def header(name: str) -> Optional[str]:
        return _host().header(name)

    @staticmethod
    def cookie(name: str) -> Optional[str]:
        """A cookie of that request, if the tenant's ``plugin_cookies`` lists it."""
        return _host().cookie(name)

    @staticmethod
    def transport() -> Optional[str]:
        """``"WebSockets"``, ``"ServerSentEvents"`` or ``"LongPolling"``; None for a call no connection made."""
        return _host().transport()

    @staticmethod
    def get_item(key: str) -> Optional[str]:
        return _host().get_item(key)

    @staticmethod
    def set_item(key: str, value: Optional[str]) -> None:
        _host().set_item(key, value)


def _writer(level):
    return lambda *parts: _host().log(level, " ".join(str(p) for p in parts))


class log:  # noqa: N801
    trace = staticmethod(_writer("trace"))
    debug = staticmethod(_writer("debug"))
    info = staticmethod(_writer("info"))
    warn = staticmethod(_writer("warn"))
    error = staticmethod(_writer("error"))


class Context:
    """What a handler gets as its first parameter."""

    def __init__(self, raw):
        self.tenant: str = raw.tenant
        self.hub: str = raw.hub
        self.connection_id: str = raw.connection_id
        self.user_id: Optional[str] = raw.user_id
        self.claims_json: str = raw.claims_json

    @property
    def claims(self) -> dict:
        """The token's claims ({} when anonymous)."""
        return json.loads(self.claims_json)


def uploads(count: int):
    """Marks a method whose last ``count`` parameters are client-to-server streams:
    each is an iterator over the client's items (it waits for the next one)."""

    def mark(fn):
        fn._switchboard_uploads = count
        return fn

    return mark


def method(name: str):
    """Gives a method its SignalR name, instead of the camelCase of the function's."""

    def mark(fn):
        fn._switchboard_name = name
        return fn

    return mark


class UploadError(HubError):
    """Why an upload stream failed. ``kind`` is ``"client"`` (the client completed it with an
    error; the message is the client's own text), ``"cancelled"`` (the client cancelled the
    call or left) or ``"host"``. A HubError: left uncaught, the calling client sees its message."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _upload(index: int) -> Iterator[Any]:
    while True:
        item = _host().next_upload(index)
        if item is None:
            return
        yield json.loads(item)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_LIFECYCLE = {"on_connected", "on_disconnected"}


class _Method:
    def __init__(self, fn):
        self.fn = fn
        self.name = getattr(fn, "_switchboard_name", None) or _camel(fn.__name__)
        self.stream = inspect.isgeneratorfunction(fn)
        self.uploads = getattr(fn, "_switchboard_uploads", 0)
        params = list(inspect.signature(fn).parameters.values())
        # ``*args`` takes any number of arguments after the named ones.
        self.variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
        named = [p for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        self.arity = len(named) - 1 - self.uploads
        # None is a void completion, unless the return annotation says the method returns
        # a value (`-> Any`, `-> Optional[int]`): then it is JSON null.
        returns = inspect.signature(fn).return_annotation
        self.void = returns in (inspect.Signature.empty, None, type(None), "None")


def _collect(module) -> dict:
    methods = {}
    for attr, fn in vars(module).items():
        if attr.startswith("_") or attr in _LIFECYCLE or not inspect.isfunction(fn):
            continue
        if fn.__module__ != module.__name__:
            continue  # imported, not defined by the hub
        m = _Method(fn)
        key = m.name.lower()
        if key in methods:
            raise ValueError(f"hub method '{m.name}' is defined twice (names match case-insensitively)")
        methods[key] = m
    return methods


class _Refused(Exception):
    """A call fails with this text for the client."""


def _failure(name: str, e: BaseException) -> str:
    """The text a client sees for what ``name`` raised: a HubError's message; for anything else,
    ASP.NET's "unexpected error" sentence, followed by the exception only when the tenant shows
    detailed errors. The traceback always goes to the tenant log."""
    if isinstance(e, HubError):
        return str(e)
    try:
        log.error(f"hub method '{name}' raised: {''.join(traceback.format_exception(e))}")
        detailed = _host().detailed_errors()
    except HubError:
        detailed = False  # no host to log to, or to ask
    text = f"An unexpected error occurred invoking '{name}' on the server."
    return f"{text} {type(e).__name__}: {e}" if detailed else text


class _Hub:
    """A hub module's methods, dispatched as the host calls them (names, argument counts,
    results, errors); the component's exports and the test host both go through it."""

    def __init__(self, module):
        self.module = module
        self.methods = _collect(module)

    def on_connected(self, ctx) -> None:
        hook = getattr(self.module, "on_connected", None)
        if hook is not None:
            try:
                hook(Context(ctx))
            except Exception as e:
                raise _Refused(_failure("on_connected", e)) from None

    def on_disconnected(self, ctx, error: Optional[str]) -> None:
        hook = getattr(self.module, "on_disconnected", None)
        if hook is not None:
            try:
                hook(Context(ctx), error)
            except Exception as e:
                _failure("on_disconnected", e)

    def invoke(self, ctx, name: str, args_json: str) -> Optional[str]:
        m = self.methods.get(name.lower())
        if m is None:
            raise _Refused(f"Unknown hub method '{name}'")
        try:
            args = json.loads(args_json)
        except ValueError as e:
            raise _Refused(f"Failed to invoke '{m.name}': invalid arguments: {e}") from None
        fits = isinstance(args, list) and (len(args) >= m.arity if m.variadic else len(args) == m.arity)
        if not fits:
            got = len(args) if isinstance(args, list) else "no array"
            wanted = f"{'at least ' if m.variadic else ''}{m.arity} argument(s)"
            raise _Refused(f"Failed to invoke '{m.name}': invalid arguments: expected {wanted}, got {got}")
        args.extend(_upload(i) for i in range(m.uploads))
        try:
            result = m.fn(Context(ctx), *args)
            if m.stream:
                for item in result:
                    try:
                        _host().emit(_json(item))
                    except HostError:
                        result.close()  # the client cancelled the stream or left
                        break
                return None
            return None if result is None and m.void else _json(result)
        except Exception as e:
            raise _Refused(_failure(m.name, e)) from None


def export_hub(module, version: str):
    """The class implementing the hub world for a hub module, with the world's imports bound.
    ``build.py`` wires it up; only the component has the world (``wit_world``)."""
    from componentize_py_types import Err

    from . import _wit

    bind_host(_wit.WitHost())
    hub = _Hub(module)

    class Exports:
        def describe(self):
            return _wit.hub_info(f"switchboard-hub-python {version}", hub.methods.values())

        def on_connected(self, ctx) -> None:
            try:
                hub.on_connected(ctx)
            except _Refused as e:
                raise Err(str(e)) from None

        def on_disconnected(self, ctx, error: Optional[str]) -> None:
            hub.on_disconnected(ctx, error)

        def invoke(self, ctx, name: str, args_json: str) -> Optional[str]:
            try:
                return hub.invoke(ctx, name, args_json)
            except _Refused as e:
                raise Err(str(e)) from None

    return Exports


# === MessagePack types ===
# Arguments arrive as JSON: bin from a MessagePack client as base64 text, a timestamp as ISO 8601
# UTC text. Values marked with ``binary()`` / ``date()`` go out as bin and a timestamp to
# MessagePack clients, and as the plain base64 / ISO text to JSON clients.


def binary(data) -> dict:
    """Marks ``bytes`` (or base64 text) as binary data."""
    text = data if isinstance(data, str) else _base64.b64encode(bytes(data)).decode("ascii")
    return {"$binary": text}


def date(value) -> dict:
    """Marks a ``datetime`` (naive ones are taken as UTC) or ISO 8601 text as a timestamp."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        value = value.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return {"$date": str(value)}


def bytes_of(value) -> bytes:
    """The bytes of a base64 argument (or of a ``binary()`` marker); ``HubError`` for anything else."""
    text = value.get("$binary") if isinstance(value, dict) else value
    if not isinstance(text, str):
        raise HubError("expected base64 text")
    try:
        return _base64.b64decode(text, validate=True)
    except ValueError:
        raise HubError("expected base64 text") from None


def datetime_of(value) -> "_dt.datetime":
    """The aware ``datetime`` of an ISO 8601 argument with its offset (or of a ``date()``
    marker); ``HubError`` for anything else. A ``datetime`` keeps microseconds: digits past
    them are dropped (pass the text to ``date()`` to keep them)."""
    text = value.get("$date") if isinstance(value, dict) else value
    if not isinstance(text, str):
        raise HubError("expected an ISO 8601 date")
    try:
        parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise HubError("expected an ISO 8601 date") from None
    if parsed.tzinfo is None:
        raise HubError("expected an ISO 8601 date with its offset (Z or +HH:MM)")
    return parsed
