"""signalrcore (PyPI) against a running Switchboard: a second, independent Python client.

    PYTHONPATH=tests/.tools/signalrcore python3 tests/e2e/python/signalrcore_client.py \
        HUB_URL TRANSPORT PROTOCOL GROUP [TOKEN]

HUB_URL is a `testhub` URL; TRANSPORT is WebSockets, ServerSentEvents or LongPolling; PROTOCOL
is json or messagepack. signalrcore is synchronous (threads), so every wait here is bounded by
WAIT. The script prints one JSON line per step ({"step": ..., "ok": true, ...}); after the last
step it prints {"step": "ready"} and waits for a group message `message("from-node")` sent by
the test, then exits 0. A failed step prints {"ok": false, ...} and exits 1.

Steps: the connection opens (handshake done) on the transport asked for; echo of JSON values,
whichever protocol carries them; the hub's view of the connection (its id, user and query); a
broadcast and a group send received; the error of a throwing method; an empty result (`void`);
a server stream.
"""

import json
import logging
import queue
import sys
import threading
import uuid

from signalrcore.hub.handlers import StreamHandler
from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.messages.stream_invocation_message import StreamInvocationMessage
from signalrcore.protocol.messagepack_protocol import MessagePackHubProtocol
from signalrcore.types import HttpTransportType

WAIT = 10.0


def report(step, ok=True, **fields):
    print(json.dumps({"step": step, "ok": ok, **fields}, default=repr), flush=True)


class Failed(Exception):
    pass


def main(url, transport, protocol, group, token=None):
    options = {"transport": HttpTransportType(transport)}
    if token:
        options["access_token_factory"] = lambda: token
    builder = HubConnectionBuilder().with_url(url, options=options)
    builder.configure_logging(logging.ERROR)
    if protocol == "messagepack":
        builder.with_hub_protocol(MessagePackHubProtocol())
    connection = builder.build()

    opened = threading.Event()
    closed = threading.Event()
    inbox = queue.Queue()
    # Completions by invocation id: (result, error).
    waiting = {}
    lock = threading.Lock()

    def complete(invocation_id, outcome):
        with lock:
            box = waiting.pop(invocation_id, None)
        if box is not None:
            box.put(outcome)

    def on_error(message):
        # signalrcore reports a Completion with an error here, not to the invocation.
        invocation_id = getattr(message, "invocation_id", None)
        if invocation_id is not None:
            complete(invocation_id, (None, message.error))

    connection.on_open(opened.set)
    connection.on_close(closed.set)
    connection.on_error(on_error)
    connection.on("message", lambda args: inbox.put(args[0]))

    def call(method, *args):
        """Invokes `method` and waits for its Completion: (result, error)."""
        invocation_id = str(uuid.uuid4())
        box = queue.Queue()
        with lock:
            waiting[invocation_id] = box
        connection.send(
            method,
            list(args),
            on_invocation=lambda m: complete(m.invocation_id, (m.result, None)),
            invocation_id=invocation_id,
        )
        try:
            return box.get(timeout=WAIT)
        except queue.Empty:
            raise Failed(json.dumps({"step": f"{method} completes", "error": "timed out"}))

    def receive(expected):
        """Waits for `message(expected)`, skipping other messages."""
        while True:
            try:
                value = inbox.get(timeout=WAIT)
            except queue.Empty:
                raise Failed(json.dumps({"step": f"receive {expected}", "error": "timed out"}))
            if value == expected:
                return value

    def check(step, condition, **fields):
        if not condition:
            raise Failed(json.dumps({"step": step, **fields}, default=repr))
        report(step, **fields)

    try:
        connection.start()
        check("connected", opened.wait(WAIT), transport=transport, protocol=protocol)
        used = type(connection.transport).__name__
        expected = {
            "WebSockets": "WebsocketTransport",
            "ServerSentEvents": "SSETransport",
            "LongPolling": "LongPollingTransport",
        }[transport]
        check("transport", used == expected, used=used)

        values = ["text", 42, 1.5, True, None, [1, "two", None], {"nested": {"list": [1, 2]}}]
        for value in values:
            result, error = call("echo", value)
            check("echo", error is None and result == value, value=value, result=result, error=error)

        context, error = call("context")
        check(
            "context",
            error is None and isinstance(context, dict) and context.get("connectionId"),
            connection_id=context and context.get("connectionId"),
            user_id=context and context.get("userId"),
            query=context and context.get("query"),
        )

        if transport == "LongPolling":
            # signalrcore's long polling hands on only the first record of a poll's answer
            # and keeps the rest until the next poll brings more, so steps answered with two
            # records at once (a message and a completion) would wait a whole poll timeout.
            result, error = call("joinGroup", group)
            check("joinGroup", error is None, error=error)
            report("ready")
            check("message from node", receive("from-node") == "from-node")
            return 0

        result, error = call("broadcast", "sc-broadcast")
        check("broadcast received", error is None and receive("sc-broadcast") == "sc-broadcast", error=error)

        result, error = call("joinGroup", group)
        check("joinGroup", error is None, error=error)
        result, error = call("sendToGroup", group, "from-signalrcore")
        check("group send received", error is None and receive("from-signalrcore") == "from-signalrcore")

        result, error = call("throw", "boom from signalrcore")
        check("error", result is None and error is not None and "boom from signalrcore" in error, error=error)

        result, error = call("void")
        check("void", result is None and error is None, result=result, error=error)

        items = queue.Queue()
        # connection.stream() sends the invocation before it returns the handler to subscribe
        # to, so items that arrive at once (SSE, long polling) would find no callbacks: the
        # same steps here, subscribed before the send.
        invocation_id = str(uuid.uuid4())
        handler = StreamHandler("counter", invocation_id)
        handler.subscribe(
            {
                "next": lambda item: items.put(("item", item)),
                "complete": lambda message: items.put(("complete", None)),
                "error": lambda message: items.put(("error", getattr(message, "error", message))),
            }
        )
        connection.stream_handlers[invocation_id].append(handler)
        connection.transport.send(StreamInvocationMessage(invocation_id, "counter", [5], headers={}))
        received = []
        while True:
            try:
                kind, value = items.get(timeout=WAIT)
            except queue.Empty:
                raise Failed(json.dumps({"step": "stream", "error": "timed out", "received": received}))
            if kind != "item":
                break
            received.append(value)
        check("stream", kind == "complete" and received == [0, 1, 2, 3, 4], received=received, end=kind, error=value)

        report("ready")
        check("message from node", receive("from-node") == "from-node")
        return 0
    except Failed as failed:
        print(json.dumps({"ok": False, "failed": json.loads(str(failed))}), flush=True)
        return 1
    except Exception as error:  # a refused negotiate, a closed connection
        print(json.dumps({"ok": False, "error": repr(error)}), flush=True)
        return 1
    finally:
        stopper = threading.Thread(target=connection.stop, daemon=True)
        stopper.start()
        stopper.join(WAIT)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
