"""``initial-sync``: a user in X rooms with Y messages each does an initial /sync.

Setup (not timed): the user creates X rooms and sends Y messages into each (S sends in
flight). Timed: one /sync with no ``since`` and an explicit filter (timeline limit L, the
figure Synapse uses by default) so both servers are asked for the same thing. Only the first
initial sync is timed: servers may cache a sync response (Synapse does, for identical
requests), and the cold answer is what a new login waits for. Figures: seconds, and the size
of the JSON body (decoded, before any transport compression).
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

import orjson

from benchmarks.load.client import Http, bounded, now, register_many


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rooms", type=int, default=50, help="X: rooms the user is in")
    parser.add_argument("--messages", type=int, default=20, help="Y: messages per room")
    parser.add_argument("--timeline-limit", type=int, default=10, help="L: timeline limit")
    parser.add_argument("--setup-concurrency", type=int, default=16,
                        help="S: requests in flight while filling the rooms (not timed)")


async def run(http: Http, args: argparse.Namespace) -> dict[str, Any]:
    (user,) = await register_many(http, "initial_sync", 1)
    # One after another: with room version 12 the room ID is the create event's hash, and
    # two identical createRoom requests by one user within a millisecond would collide.
    rooms = [await user.create_room(args.room_version, name=f"sync {n}")
             for n in range(args.rooms)]
    await bounded([partial(user.send_text, r, f"message {n}")
                   for r in rooms for n in range(args.messages)], args.setup_concurrency)
    sync_filter = {"room": {"timeline": {"limit": args.timeline_limit}}}
    started = now()
    body, size = await user.sync({"filter": orjson.dumps(sync_filter).decode()})
    elapsed = now() - started
    joined = len(body.get("rooms", {}).get("join", {}))
    if joined != args.rooms:
        raise RuntimeError(f"initial sync shows {joined} joined rooms, expected {args.rooms}")
    return {"rooms": args.rooms, "messages_per_room": args.messages,
            "timeline_limit": args.timeline_limit, "seconds": round(elapsed, 4),
            "bytes": size}
