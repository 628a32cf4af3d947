"""Room state resolution: the state of a room given the states of the forks that meet.

Spec: server-server-api.md, "Room State Resolution", and per room version: rooms/v1.md
"State resolution" (v1), rooms/fragments/v2-state-res.md (v2, room versions 2-11) and
rooms/v12.md "State resolution" (v2.1, room version 12).

Pure and deterministic: the result does not depend on the order of the state sets, on dict
iteration order, or on the hash seed. Every event is taken as not rejected: the caller passes
only events that passed the checks on receipt against their auth events (see the spec's
"Rejected events"), so the rule that rejected auth events are not used never applies here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import RoomVersion, StateResolution
from myelin.core.state_res import v1, v2
from myelin.core.state_res.auth_chain import MissingEventError, StateResolutionError

__all__ = ["MissingEventError", "StateResolutionError", "resolve_state"]


def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    events: Mapping[str, PDU],
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` (each mapping (type, state_key) to an event ID) into one state.

    ``events`` must hold every event the state sets name and their whole auth chains; a
    missing one the algorithm needs raises ``MissingEventError`` (a ``KeyError``) naming it.
    Malformed input (auth events forming a cycle, state sets disagreeing on a v12 room's create
    event) raises ``StateResolutionError``. ``AuthError`` never escapes: an event the rules
    reject is left out, as the algorithms say.
    """
    algorithm = room_version.state_resolution
    if algorithm is StateResolution.V1:
        return v1.resolve(room_version, state_sets, events)
    if algorithm is StateResolution.V2:
        return v2.resolve(room_version, state_sets, events, v2.V2)
    if algorithm is StateResolution.V2_1:
        return v2.resolve(room_version, state_sets, events, v2.V2_1)
    raise ValueError(f"unknown state resolution algorithm {algorithm!r}")
