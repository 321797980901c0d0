"""The chat hub in Python: the classic SignalR sample, plus groups and users, and the methods
tests use to check results and streams: echo, whoami, counter (a server-to-client stream) and
sum (a client-to-server stream). Every chat message reaches clients as
addNewMessageToPage(name, message)."""

from typing import Any

from switchboard_hub import clients, groups, uploads

ON_MESSAGE = "addNewMessageToPage"


def send(ctx, name, message):
    """send(name, message): to every connection of the hub, the caller included."""
    clients.all().send(ON_MESSAGE, name, message)


def join_group(ctx, group):
    groups.add(ctx.connection_id, group)


def leave_group(ctx, group):
    groups.remove(ctx.connection_id, group)


def send_to_group(ctx, group, name, message):
    """sendToGroup(group, name, message): to the group's members (the caller only if it is one)."""
    clients.group(group).send(ON_MESSAGE, name, message)


def send_to_user(ctx, user_id, message):
    """sendToUser(userId, message): to every connection of that user, named after the caller."""
    clients.user(user_id).send(ON_MESSAGE, ctx.user_id or "anonymous", message)


def echo(ctx, value) -> Any:
    """echo(value): returns its argument unchanged, null included."""
    return value


def whoami(ctx) -> dict:
    return {"connectionId": ctx.connection_id, "userId": ctx.user_id}


def counter(ctx, count):
    """counter(count), a stream: 0, 1, ..., count - 1."""
    yield from range(count)


@uploads(1)
def sum(ctx, numbers) -> int:
    """sum(numbers), where numbers is an upload stream: their sum once the client completes it."""
    total = 0
    for n in numbers:
        total += n
    return total

