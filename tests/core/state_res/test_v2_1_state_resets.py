"""The state resets that state resolution v2.1 (room version 12) fixes, resolved by both
algorithms: v2 (run as room version 11, whose auth rules are v12's but for creators and the
create event) and v2.1 (room version 12).

The events are listed one by one with the auth events a server would give them; for v11 each
also cites the create event, which v12 events must not do.
"""

from __future__ import annotations

from typing import Any

import pytest

from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import V11, V12, RoomVersion
from myelin.core.state_res import resolve_state
from myelin.core.state_res.auth_chain import (
    EventGraph,
    auth_difference,
    conflicted_state_subgraph,
)
from myelin.core.state_res.v2 import partition

from event_builders import make_event
from state_res_scenarios import ALICE, BOB, CHARLIE, EVELYN, ROOM_ID, ZARA

CREATE = "$CREATE:example.com"


class Events:
    """Builds a room's events for one room version, with readable names."""

    def __init__(self, room_version: RoomVersion) -> None:
        self.room_version = room_version
        self.by_id: dict[str, PDU] = {}
        self.ts = 0
        self.add("CREATE", "m.room.create", ALICE, "", {"creator": ALICE}, [])

    def add(
        self,
        name: str,
        type: str,
        sender: str,
        state_key: str,
        content: dict[str, Any],
        auth: list[str],
    ) -> str:
        self.ts += 1
        auth_ids = [f"${a}:example.com" for a in auth]
        if type != "m.room.create" and not self.room_version.room_id_from_create_event:
            auth_ids.insert(0, CREATE)
        event = make_event(
            self.room_version,
            f"${name}:example.com",
            type,
            sender,
            content,
            state_key=state_key,
            auth_events=auth_ids,
            depth=self.ts,
            origin_server_ts=self.ts,
            room_id=ROOM_ID,
        )
        self.by_id[event.event_id] = event
        return event.event_id

    def power_levels(self, name: str, sender: str, users: dict[str, int], auth: list[str]) -> str:
        # v12 creators hold infinite power and may not be listed; v11 lists Alice at 100.
        if not self.room_version.privileged_creators:
            users = {ALICE: 100, **users}
        return self.add(name, "m.room.power_levels", sender, "", {"users": users}, auth)

    def state(self, *names: str) -> dict[StateKey, str]:
        out = {}
        for name in names:
            event = self.by_id[f"${name}:example.com"]
            out[event.state_tuple] = event.event_id
        return out


def eid(name: str) -> str:
    return f"${name}:example.com"


def start_from_empty_room(room_version: RoomVersion) -> tuple[Events, list[dict[StateKey, str]]]:
    """Alice opens the room, Bob joins, Alice closes it (invite) and leaves; another server
    hands us a fork whose state still holds the public join rules."""
    ev = Events(room_version)
    ev.add("MA1", "m.room.member", ALICE, ALICE, {"membership": "join"}, [])
    ev.power_levels("POWER", ALICE, {BOB: 100}, ["MA1"])
    ev.add("JR1", "m.room.join_rules", ALICE, "", {"join_rule": "public"}, ["MA1", "POWER"])
    ev.add("MB", "m.room.member", BOB, BOB, {"membership": "join"}, ["POWER", "JR1"])
    ev.add("JR2", "m.room.join_rules", ALICE, "", {"join_rule": "invite"}, ["MA1", "POWER"])
    ev.add("MA2", "m.room.member", ALICE, ALICE, {"membership": "leave"}, ["POWER", "MA1"])
    correct = ev.state("CREATE", "MA2", "MB", "POWER", "JR2")
    incorrect = ev.state("CREATE", "MA2", "MB", "POWER", "JR1")
    return ev, [correct, incorrect]


@pytest.mark.parametrize("order", [0, 1])
def test_start_from_empty_state_v2_loses_the_join_rules(order: int) -> None:
    """v2 authorises the conflicted join rules against the unconflicted state, where their
    sender Alice has left: both fail and the room is left without join rules."""
    ev, sets = start_from_empty_room(V11)
    sets = sets[order:] + sets[:order]
    resolved = resolve_state(V11, sets, ev.by_id)
    assert ("m.room.join_rules", "") not in resolved
    assert resolved == ev.state("CREATE", "MA2", "MB", "POWER")


@pytest.mark.parametrize("order", [0, 1])
def test_start_from_empty_state_v2_1_keeps_the_newest_join_rules(order: int) -> None:
    """v2.1 starts from the empty state: each join rules event is checked against its own
    auth events (Alice joined), so both apply in order and the newer one, JR2, wins."""
    ev, sets = start_from_empty_room(V12)
    sets = sets[order:] + sets[:order]
    resolved = resolve_state(V12, sets, ev.by_id)
    assert resolved == ev.state("CREATE", "MA2", "MB", "POWER", "JR2")


def replay_conflicted_subgraph_room(
    room_version: RoomVersion,
) -> tuple[Events, list[dict[StateKey, str]]]:
    """Alice promotes Bob, Bob promotes Charlie (POWER3); Evelyn joins under POWER3, then
    renames herself citing the old POWER1 (ME2 directly cites old auth events, but indirectly
    new ones). A fork whose state holds POWER1 and ME2 meets one that holds POWER3 and Zara."""
    ev = Events(room_version)
    ev.add("MA", "m.room.member", ALICE, ALICE, {"membership": "join"}, [])
    ev.power_levels("POWER1", ALICE, {}, ["MA"])
    ev.add("JR", "m.room.join_rules", ALICE, "", {"join_rule": "public"}, ["MA", "POWER1"])
    ev.add("MB", "m.room.member", BOB, BOB, {"membership": "join"}, ["POWER1", "JR"])
    ev.add("MC", "m.room.member", CHARLIE, CHARLIE, {"membership": "join"}, ["POWER1", "JR"])
    ev.power_levels("POWER2", ALICE, {BOB: 50}, ["MA", "POWER1"])
    ev.power_levels("POWER3", BOB, {BOB: 50, CHARLIE: 50}, ["MB", "POWER2"])
    ev.add("ME1", "m.room.member", EVELYN, EVELYN, {"membership": "join"}, ["POWER3", "JR"])
    ev.add(
        "ME2", "m.room.member", EVELYN, EVELYN, {"membership": "join", "displayname": "Eve"},
        ["POWER1", "JR", "ME1"],
    )
    ev.add("MZ", "m.room.member", ZARA, ZARA, {"membership": "join"}, ["POWER3", "JR"])
    dodgy = ev.state("CREATE", "MA", "MB", "MC", "ME2", "POWER1", "JR")
    sensible = ev.state("CREATE", "MA", "MB", "MC", "MZ", "POWER3", "JR")
    return ev, [dodgy, sensible]


def test_replay_conflicted_subgraph_sets() -> None:
    """The sets the two algorithms work on: v2.1's conflicted state subgraph adds POWER2, Bob's
    join and the join rules, on the paths POWER3 -> POWER2 -> POWER1, POWER3 -> MB -> POWER1
    and ME2 -> JR -> POWER1."""
    ev, sets = replay_conflicted_subgraph_room(V12)
    graph = EventGraph(ev.by_id)
    _, conflicted = partition(sets)
    assert conflicted == {eid("POWER1"), eid("POWER3"), eid("ME2"), eid("MZ")}
    assert auth_difference(graph, [s.values() for s in sets]) == {eid("ME1")}
    assert conflicted_state_subgraph(graph, conflicted) == {
        eid(n) for n in ("POWER1", "POWER2", "POWER3", "MB", "JR", "ME1", "ME2", "MZ")
    }


@pytest.mark.parametrize("order", [0, 1])
def test_replay_conflicted_subgraph_v2_resets_power_levels(order: int) -> None:
    """v2: POWER3 (sent by Bob) fails against the unconflicted state, where POWER1 gives him
    no power; the power levels reset to POWER1 and Evelyn's rename wins."""
    ev, sets = replay_conflicted_subgraph_room(V11)
    sets = sets[order:] + sets[:order]
    resolved = resolve_state(V11, sets, ev.by_id)
    assert resolved == ev.state("CREATE", "MA", "MB", "MC", "ME2", "MZ", "POWER1", "JR")


@pytest.mark.parametrize("order", [0, 1])
def test_replay_conflicted_subgraph_v2_1_keeps_power_levels(order: int) -> None:
    """v2.1 replays POWER1, POWER2, MB, POWER3 from the empty state, so POWER3 holds; ME2 is in
    the POWER1 epoch (mainline position 2) and is replayed before ME1 (position 0)."""
    ev, sets = replay_conflicted_subgraph_room(V12)
    sets = sets[order:] + sets[:order]
    resolved = resolve_state(V12, sets, ev.by_id)
    assert resolved == ev.state("CREATE", "MA", "MB", "MC", "ME1", "MZ", "POWER3", "JR")
    assert CREATE not in (
        auth_difference(EventGraph(ev.by_id), [s.values() for s in sets])
        | conflicted_state_subgraph(EventGraph(ev.by_id), partition(sets)[1])
    )
