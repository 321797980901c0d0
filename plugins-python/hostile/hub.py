"""A hub that misbehaves on purpose, for the limit tests: spin() never returns, allocate()
keeps memory until the host's limit stops it; ping() shows the hub still serves after that.
wait(ms) sleeps, which costs no CPU time but counts against the wall-clock limit.
upload_outcome(items) says how its upload stream ended, as the SDK's UploadError told it."""

from typing import Any

from switchboard_hub import UploadError, invocation, uploads


def ping(ctx) -> str:
    return "pong"


def spin(ctx):
    turns = 0
    while True:
        turns += 1


def allocate(ctx):
    hoard = []
    while True:
        hoard.append(bytearray(b"\xa5" * (1 << 20)))


def wait(ctx, ms: int) -> int:
    invocation.sleep(ms / 1000)
    return ms


@uploads(1)
def upload_outcome(ctx, items) -> Any:
    seen = []
    try:
        for item in items:
            seen.append(item)
    except UploadError as e:
        return {"items": seen, e.kind: str(e)}
    return {"items": seen}
