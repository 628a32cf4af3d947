"""``send``: U users in one room each send M messages concurrently.

Measures the server's write path under contention on one room (every event extends the same
DAG, so the server must serialise them): events per second over the whole burst, and the
latency of each PUT /send from request to response. Setup (registration, joins) is not timed.
"""

from __future__ import annotations

import argparse
import asyncio
from functools import partial
from typing import Any

from benchmarks.load.client import Http, User, bounded, latency_summary, now, register_many


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=20, help="U: concurrent senders")
    parser.add_argument("--messages", type=int, default=50, help="M: messages per sender")


async def run(http: Http, args: argparse.Namespace) -> dict[str, Any]:
    users = await register_many(http, "send", args.users)
    room_id = await users[0].create_room(args.room_version)
    await bounded([partial(u.join, room_id) for u in users[1:]], 8)
    latencies: list[float] = []

    async def sender(user: User, index: int) -> None:
        for n in range(args.messages):
            started = now()
            await user.send_text(room_id, f"message {n} from sender {index}")
            latencies.append(now() - started)

    started = now()
    await asyncio.gather(*(sender(u, i) for i, u in enumerate(users)))
    elapsed = now() - started
    total = args.users * args.messages
    return {"users": args.users, "messages_per_user": args.messages, "events": total,
            "seconds": round(elapsed, 3), "events_per_s": round(total / elapsed, 1),
            **latency_summary("latency", latencies)}
