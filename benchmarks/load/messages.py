"""``messages``: paginating /messages backwards through a room of N events.

Setup (not timed): one user creates a room and sends N messages, S at a time (a single user
may have several sends in flight; each has its own transaction ID). Timed: starting from the
room's live end (/messages with no ``from``), page backwards with ``limit`` L until the
server returns no further token. Figure: events returned per second, and the latency of each
page. Every event of the room is returned exactly once (messages plus the room's state events).
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any
from urllib.parse import quote

from benchmarks.load.client import Http, bounded, latency_summary, now, register_many


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=5000, help="N: messages in the room")
    parser.add_argument("--page-size", type=int, default=100, help="L: events per page")
    parser.add_argument("--setup-concurrency", type=int, default=16,
                        help="S: sends in flight while filling the room (not timed)")


async def run(http: Http, args: argparse.Namespace) -> dict[str, Any]:
    (user,) = await register_many(http, "messages", 1)
    room_id = await user.create_room(args.room_version)
    fill_started = now()
    await bounded([partial(user.send_text, room_id, f"history {n}")
                   for n in range(args.events)], args.setup_concurrency)
    fill_seconds = now() - fill_started

    path = f"/_matrix/client/v3/rooms/{quote(room_id)}/messages"
    params = {"dir": "b", "limit": str(args.page_size)}
    returned, pages, latencies = 0, 0, []
    started = now()
    while True:
        page_started = now()
        page = await user.call("GET", path, params=params)
        latencies.append(now() - page_started)
        pages += 1
        chunk = page.get("chunk") or []
        returned += len(chunk)
        if not chunk or not page.get("end"):
            break
        params["from"] = str(page["end"])
    elapsed = now() - started
    if returned < args.events:
        raise RuntimeError(f"paginated {returned} events, fewer than the {args.events} sent")
    return {"events_sent": args.events, "events_returned": returned, "pages": pages,
            "page_size": args.page_size, "seconds": round(elapsed, 3),
            "events_per_s": round(returned / elapsed, 1),
            "fill_events_per_s": round(args.events / fill_seconds, 1),
            **latency_summary("page", latencies)}
