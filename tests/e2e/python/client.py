"""pysignalr (PyPI) against a running Switchboard: the Python client of the conformance suite.

    PYTHONPATH=tests/.tools/python python3 tests/e2e/python/client.py HUB_URL GROUP

HUB_URL is a `testhub` URL (http://127.0.0.1:PORT/hubs/demo/testhub). pysignalr negotiates
without `negotiateVersion` (v0), puts the connection id in `id=`, and speaks JSON over
WebSockets. The script runs each step with a bounded wait and prints one JSON line per step
({"step": ..., "ok": true, ...}); after the last step it prints {"step": "ready"} and waits (up
to 10 s) for a group message `message("from-node")` sent by the test, then exits 0. Any failed
step prints {"step": ..., "ok": false, "error": ...} and exits 1.

Steps: echo of JSON values; the hub's view of the connection (its id must be the `id=` of the
WebSocket URL, as v0 requires); a broadcast received; a group joined and a group send received;
the error of a throwing method; a client result (the hub invokes a method on this client and
gets its return value).
"""

import asyncio
import json
import sys
import urllib.parse

from pysignalr.client import SignalRClient
from pysignalr.messages import CompletionMessage

WAIT = 10.0


def report(step, ok=True, **fields):
    print(json.dumps({"step": step, "ok": ok, **fields}), flush=True)


class Failed(Exception):
    pass


async def main(url, group):
    client = SignalRClient(url, retry_count=1)
    opened = asyncio.Event()
    inbox = asyncio.Queue()
    errors = []

    async def on_open():
        opened.set()

    async def on_message(args):
        await inbox.put(args[0])

    async def on_error(message: CompletionMessage):
        errors.append(message.error)

    async def double(args):
        return args[0] * 2

    client.on_open(on_open)
    client.on("message", on_message)
    client.on("double", double)
    client.on_error(on_error)

    async def call(method, *args):
        """Invokes `method` and waits for its Completion: (result, error)."""
        done = asyncio.get_running_loop().create_future()

        async def completed(message: CompletionMessage):
            if not done.done():
                done.set_result((message.result, message.error))

        await client.send(method, list(args), on_invocation=completed)
        return await asyncio.wait_for(done, WAIT)

    async def receive(expected):
        """Waits for `message(expected)`, skipping other messages."""
        while True:
            value = await asyncio.wait_for(inbox.get(), WAIT)
            if value == expected:
                return value

    def check(step, condition, **fields):
        if not condition:
            raise Failed(json.dumps({"step": step, **fields}))
        report(step, **fields)

    runner = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(opened.wait(), WAIT)
        ws_url = client._transport._url  # the URL pysignalr connected to, after negotiate
        ws_id = urllib.parse.parse_qs(urllib.parse.urlsplit(ws_url).query).get("id", [None])[0]
        report("connected", url=ws_url)

        for value in ["text", 42, 1.5, True, None, [1, "two", None], {"nested": {"list": [1, 2]}}]:
            result, error = await call("echo", value)
            check("echo", error is None and result == value, value=value, result=result, error=error)

        context, error = await call("context")
        check(
            "v0 id is the connection id",
            error is None and context["connectionId"] == ws_id,
            connection_id=context and context["connectionId"],
            id=ws_id,
        )

        result, error = await call("broadcast", "py-broadcast")
        check("broadcast received", error is None and await receive("py-broadcast") == "py-broadcast")

        result, error = await call("joinGroup", group)
        check("joinGroup", error is None, error=error)
        result, error = await call("sendToGroup", group, "from-python")
        check("group send received", error is None and await receive("from-python") == "from-python")

        result, error = await call("throw", "boom from python")
        check("error", result is None and error is not None and "boom from python" in error, error=error)

        result, error = await call("clientResult", "double", 21)
        check("client result", error is None and result == 42, result=result, error=error)

        report("ready")
        check("message from node", await receive("from-node") == "from-node")
        return 0
    except Failed as failed:
        print(json.dumps({"ok": False, "failed": json.loads(str(failed))}), flush=True)
        return 1
    except Exception as error:  # a wait that timed out, a closed connection
        print(json.dumps({"ok": False, "error": repr(error)}), flush=True)
        return 1
    finally:
        runner.cancel()
        try:
            await runner
        except BaseException:
            pass


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
