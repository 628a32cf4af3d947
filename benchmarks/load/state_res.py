"""``state-res``: the protocol core's state-resolution benchmark (benchmarks/state_res.py).

It runs Myelin's resolver in-process on a synthetic room, so it has no Synapse counterpart
and ignores ``--base-url``; it is here so one runner reports every figure of the issue. Runs
the script with this interpreter and returns its median seconds per algorithm.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

from benchmarks.load.client import Http

SCRIPT = Path(__file__).resolve().parents[1] / "state_res.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", type=int, default=10_000, help="state events per set")
    parser.add_argument("--conflicted", type=int, default=1_000, help="conflicted events")
    parser.add_argument("--repeat", type=int, default=5, help="timed resolutions")


async def run(http: Http | None, args: argparse.Namespace) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--state", str(args.state), "--conflicted",
        str(args.conflicted), "--repeat", str(args.repeat),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"state_res.py failed: {err.decode(errors='replace')[-2000:]}")
    report = orjson.loads(out.splitlines()[-1])
    return {"state_events_per_set": report["state_events_per_set"],
            "conflicted_events": report["conflicted_events"],
            "v2_median_s": report["v2_median_s"], "v2.1_median_s": report["v2.1_median_s"]}
