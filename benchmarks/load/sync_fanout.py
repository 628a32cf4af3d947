"""``sync-fanout``: how fast a sent event reaches R receivers long-polling /sync.

Setup: R receivers join the sender's room and each holds one /sync long-poll open (timeout
30 s, filtered to that room, no presence or ephemeral events so only the messages wake them).
Timed: the sender sends K messages one by one; after each it waits until every receiver has
seen it, then pauses G ms so that every receiver has its next long-poll parked on the server
before the next message (otherwise a message could be picked up by an immediate sync and the
figure would measure request round trips, not wake-ups). Figures: the delay from the send's
response to each receiver's sync response carrying the event, p50/p99 (it can be slightly
negative: a server may wake the syncs before it answers the send), and the same from the
send's request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from functools import partial
from typing import Any

import orjson

from benchmarks.load.client import (
    Http,
    User,
    bounded,
    latency_summary,
    now,
    register_many,
)

MARKER = "fanout "


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--receivers", type=int, default=20, help="R: long-polling receivers")
    parser.add_argument("--messages", type=int, default=20, help="K: messages sent")
    parser.add_argument("--gap-ms", type=int, default=100,
                        help="G: pause after all receivers saw a message")


class Tracker:
    """When each receiver saw each message; wakes the sender once all have seen one."""

    def __init__(self, receivers: int) -> None:
        self.receivers = receivers
        self.seen: dict[int, list[float]] = {}
        self.complete: dict[int, asyncio.Event] = {}

    def expect(self, n: int) -> asyncio.Event:
        return self.complete.setdefault(n, asyncio.Event())

    def saw(self, n: int, at: float) -> None:
        times = self.seen.setdefault(n, [])
        times.append(at)
        if len(times) == self.receivers:
            self.expect(n).set()


async def receive(user: User, room_id: str, tracker: Tracker, ready: asyncio.Event,
                  parked: list[int]) -> None:
    """Long-poll /sync forever, recording the arrival of every marked message."""
    sync_filter = orjson.dumps({
        "presence": {"types": []}, "account_data": {"types": []},
        "room": {"rooms": [room_id], "timeline": {"limit": 100},
                 "ephemeral": {"types": []}, "account_data": {"types": []}},
    }).decode()
    body, _ = await user.sync({"filter": sync_filter, "timeout": "0"})
    since = str(body["next_batch"])
    parked[0] += 1
    if parked[0] == tracker.receivers:
        ready.set()
    while True:
        body, _ = await user.sync({"filter": sync_filter, "timeout": "30000", "since": since})
        arrived = now()
        since = str(body["next_batch"])
        room = body.get("rooms", {}).get("join", {}).get(room_id, {})
        for event in room.get("timeline", {}).get("events", []):
            text = event.get("content", {}).get("body", "")
            if event.get("type") == "m.room.message" and text.startswith(MARKER):
                tracker.saw(int(text[len(MARKER):]), arrived)


async def run(http: Http, args: argparse.Namespace) -> dict[str, Any]:
    users = await register_many(http, "sync_fanout", args.receivers + 1)
    sender, receivers = users[0], users[1:]
    room_id = await sender.create_room(args.room_version)
    await bounded([partial(u.join, room_id) for u in receivers], 8)
    tracker, ready, parked = Tracker(args.receivers), asyncio.Event(), [0]
    tasks = [asyncio.create_task(receive(u, room_id, tracker, ready, parked))
             for u in receivers]
    try:
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.sleep(args.gap_ms / 1000)
        from_response: list[float] = []
        from_request: list[float] = []
        for n in range(args.messages):
            done = tracker.expect(n)
            requested = now()
            await sender.send_text(room_id, f"{MARKER}{n}")
            answered = now()
            await asyncio.wait_for(done.wait(), 30)
            from_response += [t - answered for t in tracker.seen[n]]
            from_request += [t - requested for t in tracker.seen[n]]
            await asyncio.sleep(args.gap_ms / 1000)
            for task in tasks:
                if task.done():
                    task.result()  # a receiver failed: raise its error
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return {"receivers": args.receivers, "messages": args.messages, "gap_ms": args.gap_ms,
            **latency_summary("delay", from_response),
            **latency_summary("delay_from_request", from_request)}
