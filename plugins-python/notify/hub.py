"""The notify hub in Python: register_client(id) maps an identifier to the caller's
connection for 24 h; notify_client(id, status) sends addMessage(text) to that connection only."""

import json

from switchboard_hub import HubError, clients, kv

DAY_MS = 24 * 60 * 60 * 1000
MESSAGES = ["Here's the message for confirmation", "Here's the message for failure"]
STATUSES = ["confirmed", "failed"]


def _key(id) -> str:
    """The key of an identifier: an integral JSON number, in canonical form."""
    if type(id) not in (int, float) or id != int(id):
        raise HubError(f"specificIdentifier must be an integer, got {json.dumps(id)}")
    return f"notify:client:{int(id)}"


def _message(status) -> str:
    """The text for a status sent by name (any case) or by number."""
    if isinstance(status, str) and status.lower() in STATUSES:
        return MESSAGES[STATUSES.index(status.lower())]
    if type(status) in (int, float) and status in (0, 1):
        return MESSAGES[int(status)]
    raise HubError(f'Unknown status {json.dumps(status)}: expected "Confirmed" (0) or "Failed" (1)')


def register_client(ctx, id) -> None:
    kv.set(_key(id), ctx.connection_id, ttl_ms=DAY_MS)


def notify_client(ctx, id, status) -> None:
    text = _message(status)
    connection = kv.get(_key(id))
    if connection is None:
        raise HubError("Unable to find connection")
    clients.connection(connection).send("addMessage", text)
