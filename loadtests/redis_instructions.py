"""What one call-next costs Redis, counted in instructions: a figure that a
noisy machine cannot move, for comparing two versions of the scripts.

    python -m loadtests.redis_instructions [--tickets 600] [--calls 300]
                                           [--mix normal|credit] [--rule credit|fifo|ratio]

Runs the bundled redis-server under valgrind's callgrind (valgrind must be
on PATH: `apt-get install valgrind`), fills the hall of
`loadtests.dispatch_cost` (3 groups, 30 windows serving two each) with
`--tickets` tickets one second apart (`--mix credit`: one in five elderly or
disabled with a 20-minute credit; `normal`: all normal), opens the windows
and counts the instructions Redis executes for `--calls` call-nexts (the
count starts after the fill). Wall-clock figures on a shared VM vary by a
third from one minute to the next; this one varies by well under 1%.

To compare with another version, copy this file (and `dispatch_cost.py`)
into that checkout's `loadtests/` and run it there with that checkout on
the path (`PYTHONPATH=. python -m loadtests.redis_instructions`); a version
before `[dispatch]` has only the rule credit, and its `dispatch_cost.py`
must leave `[dispatch]` and `order` out of the hall.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadtests.dispatch_cost import CLASSES, GROUPS, hall_toml
from qms.embedded_redis import find_redis_server
from queue_core.config import load_hall_config
from queue_core.models import NORMAL, WindowStatus
from queue_core.redis_client import create_redis
from queue_core.scripts import Scripts
from queue_core.store import HallStore

START_S = 1_795_222_800.0


async def play(sock: Path, pid: int, tickets: int, calls: int, mix: str, rule: str) -> None:
    """Fill the hall, then make `calls` call-nexts with the count on."""
    redis = create_redis(f"unix://{sock}")
    path = sock.parent / "hall.toml"
    path.write_text(hall_toml("instructions", rule, "place"), encoding="utf-8")
    config = load_hall_config(path)
    clock = [START_S]
    store = HallStore(redis, Scripts.register(redis), config, clock=lambda: clock[0])
    for i in range(tickets):
        clock[0] += 1
        priority = NORMAL if mix == "normal" else CLASSES[i % len(CLASSES)]
        await store.issue(f"s-{GROUPS[i % 3]}", priority)
    windows = [w.id for w in config.windows]
    for w in windows:
        await store.set_window(w, WindowStatus.OPEN)
    await store.call_next(windows[0])  # the first call's one-off work stays out
    await _toggle("on", pid)
    for i in range(calls):
        clock[0] += 1
        await store.call_next(windows[(i + 1) % len(windows)])
    await _toggle("off", pid)
    await redis.aclose()


async def _toggle(state: str, pid: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        "callgrind_control", "-i", state, str(pid),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    if await proc.wait() != 0:
        raise RuntimeError(f"callgrind_control -i {state} failed")


def count(tickets: int, calls: int, mix: str, rule: str) -> float:
    """Thousands of instructions Redis executes per call-next."""
    tmp = Path(tempfile.mkdtemp(prefix="qms-instructions-"))
    sock, out = tmp / "redis.sock", tmp / "callgrind.out"
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         str(find_redis_server()), "--port", "0", "--unixsocket", str(sock), "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start under valgrind")
            time.sleep(0.2)  # valgrind starts slowly; nothing to wait on
        asyncio.run(play(sock, server.pid, tickets, calls, mix, rule))
    finally:
        server.terminate()
        server.wait()
    total = 0
    for name in glob.glob(f"{out}*"):
        for line in Path(name).read_text().splitlines():
            if line.startswith(("totals:", "summary:")):
                total = max(total, int(line.split()[1]))
    shutil.rmtree(tmp)
    return total / calls / 1000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.redis_instructions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--tickets", type=int, default=600)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--mix", choices=["normal", "credit"], default="credit")
    p.add_argument("--rule", choices=["credit", "fifo", "ratio"], default="credit")
    args = p.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("redis_instructions: valgrind is not on PATH (apt-get install valgrind)",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.calls < 1 or args.tickets <= args.calls:
        p.error("--tickets must exceed --calls, and --calls be at least 1")
    try:
        k = count(args.tickets, args.calls, args.mix, args.rule)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"redis_instructions: {exc}", file=sys.stderr)
        return 1
    what = f"{args.mix} mix, rule {args.rule}, {args.tickets} tickets, {args.calls} calls"
    print(f"{k:.1f} k instructions per call-next ({what})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
