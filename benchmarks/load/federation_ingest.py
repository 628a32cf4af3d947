"""``federation-ingest``: PDUs per second accepted from a remote server through /send.

Setup (not timed): a local user creates a public room; our minimal remote server
(fed_remote.py, HTTPS on ``127.0.0.1:PORT``) joins a user to it through the standard
make_join/send_join, then builds N ``m.room.message`` PDUs in one linear chain (each the
child of the previous, hashed and signed; building is not timed). Timed: the PDUs go to the
target's ``PUT /_matrix/federation/v1/send/{txnId}`` in transactions of B (the spec's most is
50), one transaction at a time as a sending server does, and the clock stops once the local
user can read the last PDU through the client API (so a server that answers /send before it
has persisted is not flattered). Figures: accepted PDUs/s, PDUs the target reported as
failed, and per-transaction latency.

Back-pressure: Synapse answers /send once the PDUs are staged, handles them in the
background, and when more than 100 of a room's PDUs are waiting it prunes the queue and
fetches the gap again (get_missing_events, then /state_ids), which a real sender would see
as lost events. So before sending transaction k the tool waits until the last PDU of
transaction k-W is readable (W=2, B=50: never more than 100 unprocessed). Myelin handles
PDUs before it answers, so the wait costs it one client request per transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from benchmarks.load.client import Http, HttpError, latency_summary, now, register_many
from benchmarks.load.fed_remote import Remote, q
from benchmarks.servers import free_port

V1 = "/_matrix/federation/v1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pdus", type=int, default=2000, help="N: PDUs sent")
    parser.add_argument("--batch", type=int, default=50, help="B: PDUs per transaction")
    parser.add_argument("--window", type=int, default=2,
                        help="W: transactions sent but not yet readable, at most")
    parser.add_argument("--visible-timeout", type=float, default=120,
                        help="seconds to wait for the last PDU to show")


async def join(remote: Remote, session: aiohttp.ClientSession, base: str, target: str,
               room_id: str, user_id: str) -> tuple[str, dict[str, Any], str]:
    """make_join + send_join; returns the join's event ID, its event and the room version."""
    versions = "&".join(f"ver={v}" for v in ("10", "11", "12"))
    made = await remote.call(session, base, target, "GET",
                             f"{V1}/make_join/{q(room_id)}/{q(user_id)}?{versions}")
    room_version = str(made.get("room_version", "1"))
    event = dict(made["event"])
    event["origin_server_ts"] = int(time.time() * 1000)
    event_id = remote.finish_event(event, room_version)
    answer = await remote.call(session, base, target, "PUT",
                               f"/_matrix/federation/v2/send_join/{q(room_id)}/{q(event_id)}",
                               event)
    state = {(e["type"], e.get("state_key")): e for e in answer["state"]}
    return event_id, {"state": state, "event": event}, room_version


def build_chain(remote: Remote, room_id: str, user_id: str, room_version: str,
                join_id: str, join_event: dict[str, Any], state: dict[Any, Any],
                count: int) -> list[dict[str, Any]]:
    """N messages, each the child of the one before (the first, of our join)."""
    power_levels = remote_id(state[("m.room.power_levels", "")], room_version)
    auth = [power_levels, join_id]
    if room_version != "12":  # from room version 12 on, the create event is implied
        auth.insert(0, remote_id(state[("m.room.create", "")], room_version))
    chain, prev, depth = [], join_id, int(join_event["depth"])
    for n in range(count):
        depth += 1
        event = {"type": "m.room.message", "room_id": room_id, "sender": user_id,
                 "content": {"msgtype": "m.text", "body": f"federated {n}"},
                 "origin_server_ts": int(time.time() * 1000), "depth": depth,
                 "prev_events": [prev], "auth_events": auth}
        prev = remote.finish_event(event, room_version)
        chain.append(event)
    return chain


def remote_id(event: dict[str, Any], room_version: str) -> str:
    """The ID of an event the target sent us (v3+ events carry none: hash it)."""
    import hashlib

    from canonicaljson import encode_canonical_json

    from benchmarks.load.fed_remote import unpadded_b64

    if "event_id" in event:
        return str(event["event_id"])
    kept = {k: v for k, v in event.items() if k in (
        "type", "room_id", "sender", "state_key", "content", "hashes", "depth", "prev_events",
        "auth_events", "origin_server_ts") or (room_version == "10" and k in (
            "origin", "membership", "prev_state"))}
    kept["content"] = _redacted_content(event["type"], event.get("content", {}), room_version)
    digest = hashlib.sha256(encode_canonical_json(kept)).digest()
    return "$" + unpadded_b64(digest, urlsafe=True)


def _redacted_content(kind: str, content: dict[str, Any], room_version: str) -> dict[str, Any]:
    if kind == "m.room.create":
        return content if room_version != "10" else {"creator": content.get("creator")}
    if kind == "m.room.power_levels":
        keep = {"ban", "events", "events_default", "kick", "redact", "state_default", "users",
                "users_default"} | ({"invite"} if room_version != "10" else set())
        return {k: v for k, v in content.items() if k in keep}
    raise ValueError(kind)


async def run(http: Http, args: argparse.Namespace) -> dict[str, Any]:
    (user,) = await register_many(http, "federation_ingest", 1)
    room_id = await user.create_room(args.room_version)
    target = str((await http.request("GET", "/_matrix/key/v2/server"))[0]["server_name"])
    remote = Remote(free_port())
    await remote.start()
    try:
        sender = f"@ingest:{remote.server_name}"
        join_id, joined, room_version = await join(remote, http.session, http.base_url,
                                                   target, room_id, sender)
        chain = build_chain(remote, room_id, sender, room_version, join_id, joined["event"],
                            joined["state"], args.pdus)
        last_id = remote.order[-1]
        ends: list[str] = []  # the last event ID of each transaction sent
        latencies, failed = [], 0
        started = now()
        for n in range(0, len(chain), args.batch):
            batch = chain[n:n + args.batch]
            if len(ends) >= args.window:
                await visible(user.call, room_id, ends[-args.window], args.visible_timeout)
            ends.append(remote.order[-len(chain) + n + len(batch) - 1])
            txn_started = now()
            answer = await remote.call(http.session, http.base_url, target, "PUT",
                                       f"{V1}/send/bench{n}.{int(time.time() * 1000)}", {
                                           "origin": remote.server_name, "pdus": batch,
                                           "origin_server_ts": int(time.time() * 1000)})
            latencies.append(now() - txn_started)
            failed += sum(1 for r in answer.get("pdus", {}).values() if "error" in r)
        await visible(user.call, room_id, last_id, args.visible_timeout)
        elapsed = now() - started
    finally:
        await remote.stop()
    accepted = args.pdus - failed
    return {"pdus": args.pdus, "batch": args.batch, "failed": failed,
            "room_version": room_version, "seconds": round(elapsed, 3),
            "pdus_per_s": round(accepted / elapsed, 1), **latency_summary("txn", latencies)}


async def visible(call: Any, room_id: str, event_id: str, wait_s: float = 120) -> None:
    """Wait until the local user can read ``event_id`` through the client API."""
    deadline = now() + wait_s
    path = f"/_matrix/client/v3/rooms/{quote(room_id)}/event/{quote(event_id)}"
    while True:
        try:
            await call("GET", path)
            return
        except HttpError as e:
            if e.status != 404 or now() > deadline:
                raise
        await asyncio.sleep(0.01)
