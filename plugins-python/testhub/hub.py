"""The test hub in Python: the methods of plugins/testhub that the end-to-end suites run
against every language's build (plugin-request.test.js, plugin-types.test.js). Not a sample:
each method does one thing a test asserts."""

from typing import Any

from switchboard_hub import binary, bytes_of, clients, connection, date, datetime_of


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
