"""``echo``: the send loop against the bare JSON echo endpoint (echo_server.py).

U workers each POST M message bodies one after another, all U at once, exactly as ``send``
does with PUT /send, but to POST /echo: requests per second here is the most any server on
this aiohttp stack could answer on this machine, the yardstick for ``send``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from benchmarks.load.client import Http, latency_summary, now


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=20, help="U: concurrent workers")
    parser.add_argument("--messages", type=int, default=50, help="M: requests per worker")


async def run(http: Http, args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []

    async def worker(index: int) -> None:
        for n in range(args.messages):
            started = now()
            await http.request("POST", "/echo", body={
                "msgtype": "m.text", "body": f"message {n} from sender {index}"})
            latencies.append(now() - started)

    await asyncio.gather(*(worker(-1 - i) for i in range(args.users)))  # warm-up: connections
    latencies.clear()
    started = now()
    await asyncio.gather(*(worker(i) for i in range(args.users)))
    elapsed = now() - started
    total = args.users * args.messages
    return {"users": args.users, "messages_per_user": args.messages, "requests": total,
            "seconds": round(elapsed, 3), "requests_per_s": round(total / elapsed, 1),
            **latency_summary("latency", latencies)}
