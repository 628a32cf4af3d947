"""Benchmark of state resolution v2 (room version 11) and v2.1 (room version 12).

Builds a realistic room: create, the creator's join, power levels, public join rules, then
thousands of members joining, with topic and name changes and a new power levels event (one more
moderator) every few hundred joins, so the power levels mainline is a few dozen long. The room
then forks: each side has its own joins, display name changes, leaves, kicks and bans by the
moderators, topic/name changes and one power levels change. Both state sets hold ``--state``
state events and together ``--conflicted`` conflicted events. Every event is built with the auth
events a server would give it, and is checked against them with the real auth rules (not timed).

Prints one JSON line: the sizes and, per algorithm, the best and median seconds of
``--repeat`` runs of ``resolve_state`` (the event map is built once, outside the timing).

    /work/venv/bin/python benchmarks/state_res.py [--state 10000] [--conflicted 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from myelin.core.auth import AuthError, auth_types_for_event, check_auth
from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import V11, V12, RoomVersion
from myelin.core.state_res import resolve_state

CREATE_KEY: StateKey = ("m.room.create", "")
CREATOR = "@creator:bench.example"


class RoomBuilder:
    def __init__(self, room_version: RoomVersion, seed: int) -> None:
        self.room_version = room_version
        self.rng = random.Random(seed)
        self.events: dict[str, PDU] = {}
        self.counter = 0
        create_id = "$create:bench.example"
        self.room_id = "!create:bench.example"
        self.events[create_id] = PDU(
            {"type": "m.room.create", "state_key": "", "sender": CREATOR,
             "content": {"creator": CREATOR, "room_version": room_version.identifier},
             "origin_server_ts": 0, "depth": 0, "prev_events": [], "auth_events": [],
             "room_id": self.room_id},
            room_version, event_id=create_id,
        )
        self.create_id = create_id

    def emit(self, state: dict[StateKey, str], heads: list[str], type: str, sender: str,
             state_key: str, content: dict[str, Any]) -> str | None:
        """Create an event on a branch whose state is ``state`` (updated if it is allowed)."""
        self.counter += 1
        event_id = f"${self.counter:06d}:bench.example"
        data: dict[str, Any] = {
            "type": type, "state_key": state_key, "sender": sender, "content": content,
            "origin_server_ts": 1_700_000_000_000 + self.counter * 1000
            + self.rng.randint(0, 999), "depth": self.counter,
            "prev_events": list(heads), "auth_events": [], "room_id": self.room_id,
        }
        draft = PDU(data, self.room_version, event_id=event_id)
        auth_ids = [state[k] for k in auth_types_for_event(draft) if k in state]
        data["auth_events"] = auth_ids
        event = PDU(data, self.room_version, event_id=event_id)
        auth_state = {self.events[a].state_tuple: self.events[a] for a in auth_ids}
        auth_state.setdefault(CREATE_KEY, self.events[self.create_id])
        try:
            check_auth(event, auth_state)
        except AuthError:
            return None
        self.events[event_id] = event
        state[(type, state_key)] = event_id
        heads[:] = [event_id]
        return event_id

    def power_levels(self, mods: list[str]) -> dict[str, Any]:
        users = {m: 50 for m in mods}
        if not self.room_version.privileged_creators:
            users[CREATOR] = 100
        return {"users": users, "events": {"m.room.power_levels": 100}, "kick": 50, "ban": 50}


def build(room_version: RoomVersion, state_size: int, conflicted: int, seed: int = 1) -> tuple[
        dict[str, PDU], list[dict[StateKey, str]]]:
    b = RoomBuilder(room_version, seed)
    state: dict[StateKey, str] = {CREATE_KEY: b.create_id}
    heads = [b.create_id]
    must = b.emit
    must(state, heads, "m.room.member", CREATOR, CREATOR, {"membership": "join"})
    mods: list[str] = []
    must(state, heads, "m.room.power_levels", CREATOR, "", b.power_levels(mods))
    must(state, heads, "m.room.join_rules", CREATOR, "", {"join_rule": "public"})

    # Per side: K changes of shared keys (topic, name, power levels), T existing members
    # touched (display name, leave, kick or ban; the two sides touch different members) and J
    # new members. Conflicted events: per side J + T + K, plus the T shared values replaced.
    shared_changes = 3
    touched_per_side = conflicted // 7
    joins_per_side = conflicted // 2 - 2 * touched_per_side - shared_changes
    members = 0
    # The shared history: joins, with the occasional topic, name and new moderator.
    while len(state) < state_size - joins_per_side:
        members += 1
        user = f"@user{members}:bench.example"
        must(state, heads, "m.room.member", user, user, {"membership": "join"})
        if members % 500 == 0:
            mods.append(user)
            must(state, heads, "m.room.power_levels", CREATOR, "", b.power_levels(mods))
        if members % 97 == 0:
            must(state, heads, "m.room.topic", CREATOR, "", {"topic": f"topic {members}"})
        if members % 211 == 0:
            must(state, heads, "m.room.name", CREATOR, "", {"name": f"name {members}"})
    fork_state, fork_heads = dict(state), list(heads)
    plain = [f"@user{i}:bench.example" for i in range(1, members + 1)]
    plain = [u for u in plain if u not in mods]
    touched = b.rng.sample(plain, 2 * touched_per_side)

    sides: list[dict[StateKey, str]] = []
    for n, side in enumerate(("a", "b")):
        st, hd = dict(fork_state), list(fork_heads)
        rng = random.Random(f"{seed}-{side}")
        actions: list[tuple[str, str]] = [("touch", u) for u in
                                          touched[n::2][:touched_per_side]]
        for _ in range(joins_per_side):
            members += 1
            actions.append(("join", f"@user{members}:bench.example"))
        actions += [("topic", ""), ("name", ""), ("power_levels", "")]
        rng.shuffle(actions)
        for action, user in actions:
            if action == "join":
                ok = b.emit(st, hd, "m.room.member", user, user, {"membership": "join"})
            elif action == "touch":
                roll = rng.random()
                if roll < 0.6:
                    content = {"membership": "join", "displayname": f"{side} {user}"}
                    ok = b.emit(st, hd, "m.room.member", user, user, content)
                elif roll < 0.8:
                    ok = b.emit(st, hd, "m.room.member", user, user, {"membership": "leave"})
                else:
                    membership = "ban" if roll < 0.9 else "leave"
                    ok = b.emit(st, hd, "m.room.member", rng.choice(mods), user,
                                {"membership": membership})
            elif action == "topic":
                ok = b.emit(st, hd, "m.room.topic", rng.choice(mods), "", {"topic": side})
            elif action == "name":
                ok = b.emit(st, hd, "m.room.name", CREATOR, "", {"name": side})
            else:
                ok = b.emit(st, hd, "m.room.power_levels", CREATOR, "",
                            b.power_levels([*mods, f"@mod-{side}:bench.example"]))
            if ok is None:
                raise AssertionError(f"side {side}: {action} {user} fails the auth rules")
        sides.append(st)
    return b.events, sides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", type=int, default=10_000, help="state events per set")
    parser.add_argument("--conflicted", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    report: dict[str, Any] = {"state_events_per_set": [], "conflicted_events": None}
    for name, room_version in (("v2", V11), ("v2.1", V12)):
        events, sets = build(room_version, args.state, args.conflicted, args.seed)
        keys = set(sets[0]) | set(sets[1])
        conflicted = {v for k in keys for v in (sets[0].get(k), sets[1].get(k))
                      if v is not None and sets[0].get(k) != sets[1].get(k)}
        report["state_events_per_set"] = [len(s) for s in sets]
        report["conflicted_events"] = len(conflicted)
        report["events"] = len(events)
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            resolved = resolve_state(room_version, sets, events)
            times.append(time.perf_counter() - started)
        report[f"{name}_resolved_state_events"] = len(resolved)
        report[f"{name}_best_s"] = round(min(times), 4)
        report[f"{name}_median_s"] = round(statistics.median(times), 4)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
