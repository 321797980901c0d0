#!/usr/bin/env python3
"""Builds a Python hub module into a Switchboard hub component:

    python3 sdk-python/build.py HUB.py OUT.wasm

HUB.py defines its methods as plain functions (see README.md). This writes a small
entry module that wires them to the switchboard:hub world's exports, then runs
componentize-py, which embeds CPython and pre-initialises it (Wizer) with the hub
already imported. componentize-py is found on $SWITCHBOARD_PY_TOOLS (a
``pip install --target`` folder), else on the normal Python path, else in
tests/.tools/componentize-py, where ``./dev serve`` and ``./dev test`` install it.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SDK_DIR = Path(__file__).resolve().parent
WIT_DIR = SDK_DIR.parent / "wit"
VERSION = "0.1.0"

ENTRY = """\
import wit_world
import {module}
from switchboard_hub import export_hub


class WitWorld(export_hub({module}, {version!r}), wit_world.WitWorld):
    pass
"""


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python3 build.py HUB.py OUT.wasm", file=sys.stderr)
        return 2
    hub = Path(sys.argv[1]).resolve()
    out = Path(sys.argv[2]).resolve()
    build_dir = out.parent / f".{out.stem}.build"
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    (build_dir / "switchboard_entry.py").write_text(ENTRY.format(module=hub.stem, version=VERSION))

    env = dict(os.environ)
    tools = env.get("SWITCHBOARD_PY_TOOLS")
    installed = SDK_DIR.parent / "tests" / ".tools" / "componentize-py"
    if not tools and installed.is_dir():
        try:
            import componentize_py  # noqa: F401 - installed with pip: use that one
        except ImportError:
            tools = str(installed)
    if tools:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tools, env.get("PYTHONPATH")]))
    started = time.monotonic()
    command = [
        sys.executable, "-c", "import sys; from componentize_py import script; sys.argv[0] = \"componentize-py\"; sys.exit(script())",
        "-d", str(WIT_DIR), "-w", "hub",
        "componentize", "switchboard_entry",
        "-p", str(build_dir), "-p", str(hub.parent), "-p", str(SDK_DIR),
        "-o", str(out),
    ]
    done = subprocess.run(command, env=env, cwd=build_dir)
    shutil.rmtree(build_dir, ignore_errors=True)
    if done.returncode != 0:
        return done.returncode
    size = out.stat().st_size / 1e6
    print(f"\n{out.name}: {size:.1f} MB in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
