"""Command line of the load tool: one scenario per run, one JSON line on stdout.

The line holds the scenario's figures plus, with ``--server-pid``, the server process's peak
resident memory (VmHWM: the most it has held since it started) and current RSS after the
scenario. Errors go to stderr with a non-zero exit, never a half-filled result line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from benchmarks.load import (
    create_rooms,
    echo,
    federation_ingest,
    initial_sync,
    messages,
    register,
    send,
    state_res,
    sync_fanout,
)
from benchmarks.load.client import Http

SCENARIOS: dict[str, ModuleType] = {
    "send": send, "sync-fanout": sync_fanout, "initial-sync": initial_sync,
    "create-rooms": create_rooms, "messages": messages, "register": register,
    "state-res": state_res, "federation-ingest": federation_ingest, "echo": echo,
}
NO_SERVER = {"state-res"}


def memory_mb(pid: int) -> dict[str, float]:
    """Peak (VmHWM) and current (VmRSS) resident memory of ``pid`` in MiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_peak_mb": fields["VmHWM"], "rss_mb": fields["VmRSS"]}


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m benchmarks.load",
                                   description=__doc__.split("\n\n")[0])
    sub = main.add_subparsers(dest="scenario", required=True)
    for name, module in SCENARIOS.items():
        p = sub.add_parser(name, help=(module.__doc__ or "").split("\n")[0],
                           description=module.__doc__)
        p.add_argument("--base-url", required=name not in NO_SERVER,
                       help="homeserver URL, e.g. http://127.0.0.1:8008")
        p.add_argument("--server-pid", type=int, help="read this process's memory afterwards")
        p.add_argument("--room-version", default="12", help="version of every room created")
        p.add_argument("--pool-size", type=int, default=100, help="HTTP connections at most")
        module.add_arguments(p)
    return main


async def run(args: argparse.Namespace) -> dict[str, Any]:
    module = SCENARIOS[args.scenario]
    if args.scenario in NO_SERVER:
        figures: dict[str, Any] = await module.run(None, args)
    else:
        async with Http(args.base_url.rstrip("/"), args.pool_size) as http:
            figures = await module.run(http, args)
    return {"scenario": args.scenario, "base_url": args.base_url, **figures}


def main() -> None:
    args = parser().parse_args()
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = None
    started = time.perf_counter()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        try:
            result = runner.run(run(args))
        except Exception as e:  # one line to stderr, exit 1
            print(f"{args.scenario}: {type(e).__name__}: {e}", file=sys.stderr)
            sys.exit(1)
    result["wall_s"] = round(time.perf_counter() - started, 2)
    if args.server_pid:
        result.update(memory_mb(args.server_pid))
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
