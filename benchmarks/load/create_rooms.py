"""``create-rooms``: rooms created per second.

C users each create rooms one after another, all C at once, until N rooms exist. A room is
created with the public_chat preset and a name, so each creation writes the same handful of
state events (create, member, power levels, join rules, history visibility, name) on any
server. Registration is not timed.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from benchmarks.load.client import Http, User, latency_summary, now, register_many


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rooms", type=int, default=100, help="N: rooms in total")
    parser.add_argument("--concurrency", type=int, default=4, help="C: creating users")


async def run(http: Http, args: argparse.Namespace) -> dict[str, Any]:
    users = await register_many(http, "create_rooms", args.concurrency)
    latencies: list[float] = []
    per_user = [args.rooms // args.concurrency + (i < args.rooms % args.concurrency)
                for i in range(args.concurrency)]

    async def creator(user: User, count: int) -> None:
        for n in range(count):
            started = now()
            await user.create_room(args.room_version, name=f"bench room {n}")
            latencies.append(now() - started)

    started = now()
    await asyncio.gather(*(creator(u, c) for u, c in zip(users, per_user, strict=True)))
    elapsed = now() - started
    return {"rooms": args.rooms, "concurrency": args.concurrency,
            "seconds": round(elapsed, 3), "rooms_per_s": round(args.rooms / elapsed, 2),
            **latency_summary("latency", latencies)}
