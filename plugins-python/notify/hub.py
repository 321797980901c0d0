"""The notify hub in Python: register_client(id) maps an identifier to the caller's
connection for 24 h; notify_client(id, status) sends addMessage(text) to that connection only."""

from switchboard_hub import HubError, clients, kv

DAY_MS = 24 * 60 * 60 * 1000
MESSAGES = ["Here's the message for confirmation", "Here's the message for failure"]
STATUSES = ["confirmed", "failed"]


def _key(id) -> str:
    if isinstance(id, bool) or not (isinstance(id, int) or (isinstance(id, float) and id.is_integer())):
        raise HubError(f"specificIdentifier must be an integer, got {id!r}")
    return f"notify:client:{int(id)}"


def _message(status) -> str:
    name = status.lower() if isinstance(status, str) else None
    index = STATUSES.index(name) if name in STATUSES else status if status in (0, 1) and not isinstance(status, (bool, str)) else None
    if index is None:
        raise HubError(f'Unknown status {status!r}: expected "Confirmed" (0) or "Failed" (1)')
    return MESSAGES[int(index)]


def register_client(ctx, id) -> None:
    kv.set(_key(id), ctx.connection_id, ttl_ms=DAY_MS)


def notify_client(ctx, id, status) -> None:
    text = _message(status)
    connection = kv.get(_key(id))
    if connection is None:
        raise HubError("Unable to find connection")
    clients.connection(connection).send("addMessage", text)
