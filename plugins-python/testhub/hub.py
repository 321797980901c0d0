"""The test hub in Python: the methods of plugins/testhub that the end-to-end suites run
against every language's build (features, plugin-errors, plugin-request, plugin-types,
plugin-time). Not a sample: each method does one thing a test asserts."""

import json
from typing import Any, Optional

from switchboard_hub import (
    HostError,
    HubError,
    UploadError,
    binary,
    bytes_of,
    clients,
    connection,
    date,
    datetime_of,
    groups,
    invocation,
    kv,
    uploads,
)

CLIENT_RESULT_TIMEOUT_MS = 10_000
"""How long ``clientResult`` waits for the client's answer."""


def echo(ctx, value) -> Any:
    """Any JSON value back, unchanged (a MessagePack client's bin reads as base64)."""
    return value


def echo_typed(ctx, data, at) -> list:
    """A binary value and a timestamp back, read and marked again by the SDK, as the result
    and as typed(data, at) sent to the caller."""
    typed = [binary(bytes_of(data)), date(datetime_of(at))]
    clients.caller(ctx).send("typed", *typed)
    return typed


def request(ctx, headers: list, cookies: list) -> dict:
    """The caller's transport and what the hub sees of each named header and cookie."""
    return {
        "transport": connection.transport(),
        "headers": {name: connection.header(name) for name in headers},
        "cookies": {name: connection.cookie(name) for name in cookies},
    }


def kv_get(ctx, key: str) -> Optional[str]:
    """The value at ``key`` in the tenant's store, or null."""
    return kv.get(key)


def ticks(ctx, count: int, interval_ms: int):
    """A stream: 0, 1, ... one every ``interval_ms``, sleeping in between. When the client
    cancels, it stores how many items it sent under ``ticks:<connection id>`` and returns."""
    for i in range(count):
        yield i
        try:
            invocation.sleep(interval_ms / 1000)
        except HostError:
            kv.set(f"ticks:{ctx.connection_id}", str(i + 1))
            return


def wait(ctx, ms: int) -> int:
    """Sleeps ``ms``, then returns it (sleeping costs no CPU time)."""
    invocation.sleep(ms / 1000)
    return ms


def send_to_group_after(ctx, ms: int, group: str, value) -> None:
    """Sleeps ``ms``, then members of ``group`` receive message(value), even when the caller's
    connection ended meanwhile (a plugin need not honour cancellation)."""
    try:
        invocation.sleep(ms / 1000)
    except HostError:
        pass
    clients.group(group).send("message", value)


def kv_set_after(ctx, ms: int, key: str, value: str) -> None:
    """Sleeps ``ms``, then stores ``value`` under ``key``, cancelled or not (as
    ``send_to_group_after``)."""
    try:
        invocation.sleep(ms / 1000)
    except HostError:
        pass
    kv.set(key, value)


def wait_until_cancelled(ctx) -> None:
    """Sleeps until its connection ends, then stores whether it saw that under
    ``waited:<connection id>``."""
    try:
        while True:
            invocation.sleep(0.05)
    except HostError:
        pass
    kv.set(f"waited:{ctx.connection_id}", "cancelled" if invocation.cancelled() else "not cancelled")


def echo_args(ctx, *args) -> list:
    """All arguments back as an array."""
    return list(args)


def throw(ctx, message: str) -> None:
    """Fails with ``message`` as the client's error text."""
    raise HubError(message)


def crash(ctx, message: str) -> None:
    """Raises a ValueError, which the client reads only with detailed errors."""
    raise ValueError(message)


def void(ctx) -> None:
    """Returns nothing."""


def counter(ctx, count: int):
    """A stream: 0 .. count - 1, then completes."""
    yield from range(count)


def infinite(ctx):
    """A stream: 0, 1, 2, ... until the client cancels."""
    i = 0
    while True:
        yield i
        i += 1


def failing_stream(ctx, count: int, message: str):
    """A stream: ``count`` items, then fails with ``message``."""
    yield from range(count)
    raise HubError(message)


@uploads(1)
def concat(ctx, parts) -> str:
    """Joins an upload stream of strings."""
    return "".join(parts)


@uploads(2)
def concat_two(ctx, separator: str, a, b) -> str:
    """Joins two upload streams, the first's items first, ``separator`` between them."""
    return "".join(a) + separator + "".join(b)


@uploads(1)
def upload_outcome(ctx, key: str, items) -> Any:
    """How the upload stream ended (its items, and the client's error or the cancellation),
    returned and stored under ``key``, where "started" stands while it waits."""
    kv.set(key, "started")
    seen, outcome = [], {}
    try:
        for item in items:
            seen.append(item)
    except UploadError as e:
        if e.kind == "host":
            raise
        outcome = {"client": str(e)} if e.kind == "client" else {"cancelled": True}
    outcome["items"] = seen
    kv.set(key, json.dumps(outcome))
    return outcome


@uploads(1)
def upload_echo(ctx, items):
    """A stream fed by an upload stream: each item back."""
    yield from items


def client_result(ctx, method: str, arg) -> Any:
    """What the caller's ``method(arg)`` returns; its error fails this call."""
    return clients.caller(ctx).invoke(method, arg, timeout_ms=CLIENT_RESULT_TIMEOUT_MS)


def join_group(ctx, group: str) -> None:
    groups.add(ctx.connection_id, group)


def leave_group(ctx, group: str) -> None:
    groups.remove(ctx.connection_id, group)


def send_to_group(ctx, group: str, value) -> None:
    """Members receive message(value)."""
    clients.group(group).send("message", value)


def broadcast(ctx, value) -> None:
    """Every connection receives message(value)."""
    clients.all().send("message", value)


def send_to_user(ctx, user: str, value) -> None:
    """The user's connections receive message(value)."""
    clients.user(user).send("message", value)


def context(ctx) -> dict:
    """What the hub knows of the caller's connection."""
    return {
        "connectionId": ctx.connection_id,
        "userId": ctx.user_id,
        "tenant": ctx.tenant,
        "hub": ctx.hub,
        "claims": ctx.claims,
        "query": dict(connection.query()),
        "userAgent": connection.header("user-agent"),
        "authorization": connection.header("authorization"),
    }


def set_item(ctx, key: str, value: str) -> None:
    """Keeps a value on the connection."""
    connection.set_item(key, value)


def get_item(ctx, key: str) -> Optional[str]:
    """A value kept by an earlier call of this connection, or null."""
    return connection.get_item(key)
