"""``register``: accounts registered per second.

N registrations through the standard /register (m.login.dummy, a device and an access token
each), C at a time. The password hash dominates, so the runner sets the bcrypt cost equal on
both servers (Synapse ``bcrypt_rounds``, Myelin ``passwords.bcrypt_rounds``).
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from benchmarks.load.client import Http, bounded, latency_summary, localpart, now, register


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=100, help="N: accounts to register")
    parser.add_argument("--concurrency", type=int, default=8, help="C: registrations at once")


async def run(http: Http, args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []

    async def one(index: int) -> None:
        started = now()
        await register(http, localpart("register", index))
        latencies.append(now() - started)

    started = now()
    await bounded([partial(one, i) for i in range(args.users)], args.concurrency)
    elapsed = now() - started
    return {"users": args.users, "concurrency": args.concurrency,
            "seconds": round(elapsed, 3), "users_per_s": round(args.users / elapsed, 2),
            **latency_summary("latency", latencies)}
