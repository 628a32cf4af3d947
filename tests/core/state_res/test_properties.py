"""Properties of ``resolve_state`` on random forked rooms (hypothesis), for v1, v2 and v2.1.

- the result does not depend on the order of the state sets, nor on the iteration order of
  the state maps and of the event map;
- resolving one state set, or N copies of one, returns it unchanged;
- unconflicted state always survives: v2 and v2.1 put the unconflicted state map over the
  result (step 5); v1 starts from the non-conflicting entries and only ever adds to them;
- the result is the same under different hash seeds (checked in subprocesses).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from myelin.core.events import PDU
from myelin.core.room_versions import V1, V2, V6, V10, V11, V12, RoomVersion, StateResolution
from myelin.core.state_res import resolve_state

from state_res_scenarios import ForkedRoom, random_forked_room

VERSIONS = [V1, V2, V6, V10, V11, V12]
ids = [f"v{v.identifier}" for v in VERSIONS]

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def forked_rooms(draw: st.DrawFn, room_version: RoomVersion) -> ForkedRoom:
    return random_forked_room(room_version, lambda lo, hi: draw(st.integers(lo, hi)))


def resolve(room: ForkedRoom, state_sets: list[dict[tuple[str, str], str]] | None = None,
            events: dict[str, PDU] | None = None) -> dict[tuple[str, str], str]:
    return resolve_state(
        room.room_version,
        room.state_sets if state_sets is None else state_sets,
        room.events if events is None else events,
    )


@pytest.mark.parametrize("room_version", VERSIONS, ids=ids)
@SETTINGS
@given(data=st.data())
def test_independent_of_state_set_order(room_version: RoomVersion, data: st.DataObject) -> None:
    room = data.draw(forked_rooms(room_version))
    permuted = data.draw(st.permutations(room.state_sets))
    assert resolve(room, list(permuted)) == resolve(room)


@pytest.mark.parametrize("room_version", VERSIONS, ids=ids)
@SETTINGS
@given(data=st.data())
def test_independent_of_dict_order(room_version: RoomVersion, data: st.DataObject) -> None:
    room = data.draw(forked_rooms(room_version))
    shuffled_sets = [
        dict(data.draw(st.permutations(list(s.items())))) for s in room.state_sets
    ]
    shuffled_events = dict(data.draw(st.permutations(list(room.events.items()))))
    assert resolve(room, shuffled_sets, shuffled_events) == resolve(room)


@pytest.mark.parametrize("room_version", VERSIONS, ids=ids)
@SETTINGS
@given(data=st.data())
def test_one_state_set_or_copies_of_it_resolve_to_itself(
    room_version: RoomVersion, data: st.DataObject
) -> None:
    room = data.draw(forked_rooms(room_version))
    chosen = room.state_sets[data.draw(st.integers(0, len(room.state_sets) - 1))]
    copies = data.draw(st.integers(1, 4))
    assert resolve(room, [chosen]) == chosen
    assert resolve(room, [dict(chosen) for _ in range(copies)]) == chosen


@pytest.mark.parametrize("room_version", VERSIONS, ids=ids)
@SETTINGS
@given(data=st.data())
def test_unconflicted_state_survives(room_version: RoomVersion, data: st.DataObject) -> None:
    room = data.draw(forked_rooms(room_version))
    sets = room.state_sets
    resolved = resolve(room)
    if room_version.state_resolution is StateResolution.V1:
        # v1: a key is conflicted only where two states hold different events for it.
        unconflicted = {
            k: v for s in sets for k, v in s.items()
            if all(other.get(k, v) == v for other in sets)
        }
    else:
        unconflicted = {
            k: v for k, v in sets[0].items() if all(other.get(k) == v for other in sets)
        }
    assert {k: resolved.get(k) for k in unconflicted} == unconflicted
    # Nothing comes from outside the state sets and their auth chains.
    assert set(resolved.values()) <= set(room.events)


def test_scenarios_exercise_conflicts() -> None:
    """The generator is worth something: its rooms do have conflicts and auth differences."""
    import random

    conflicted = 0
    for seed in range(40):
        rng = random.Random(seed)
        room = random_forked_room(V11, rng.randint)
        keys = set().union(*room.state_sets)
        if any(len({s.get(k) for s in room.state_sets}) > 1 for k in keys):
            conflicted += 1
    assert conflicted >= 20


HASH_SEED_SCRIPT = """
import json, random, sys
sys.path.insert(0, {tests!r})
from myelin.core.events import PDU
from myelin.core.room_versions import V1, V11, V12
from myelin.core.state_res import resolve_state
from state_res_scenarios import random_forked_room
out = []
for version in (V1, V11, V12):
    for seed in range(15):
        room = random_forked_room(version, random.Random(seed).randint)
        resolved = resolve_state(version, room.state_sets, room.events)
        out.append(sorted((list(k), v) for k, v in resolved.items()))
print(json.dumps(out))
"""


def test_independent_of_hash_seed() -> None:
    tests_dir = str(Path(__file__).resolve().parents[2])
    script = HASH_SEED_SCRIPT.format(tests=tests_dir)
    outputs = []
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1] == outputs[2]
