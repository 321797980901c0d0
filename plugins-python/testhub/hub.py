"""The test hub in Python: the methods of plugins/testhub that the end-to-end suites run
against every language's build (plugin-request, plugin-types, plugin-time). Not a sample:
each method does one thing a test asserts."""

from typing import Any, Optional

from switchboard_hub import HostError, binary, bytes_of, clients, connection, date, datetime_of, invocation, kv


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


def wait_until_cancelled(ctx) -> None:
    """Sleeps until its connection ends, then stores whether it saw that under
    ``waited:<connection id>``."""
    try:
        while True:
            invocation.sleep(0.05)
    except HostError:
        pass
    kv.set(f"waited:{ctx.connection_id}", "cancelled" if invocation.cancelled() else "not cancelled")
