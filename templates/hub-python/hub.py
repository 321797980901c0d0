"""The {{hub}} hub. Each function is a hub method; clients call it by its camelCase name."""

from switchboard_hub import clients


def hello(ctx, name):
    """hello(name): a greeting, returned to the caller."""
    return f"Hello, {name}!"


def broadcast(ctx, text):
    """broadcast(text): onMessage(user, text) to every connection of the hub."""
    clients.all().send("onMessage", ctx.user_id or "anonymous", text)
