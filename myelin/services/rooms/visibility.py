"""Which events a user may see (client-server API, "History visibility").

Applied everywhere events are served (sync, /messages, /context, /event): an event is visible
by the room's m.room.history_visibility and the user's membership *at that event* (the state
after it):

* a user always sees their own membership events;
* ``world_readable``: anyone; otherwise a member (join) at the event sees it;
* someone who had left or was banned at the event does not;
* ``joined``: nobody else; ``invited``: also someone invited at the event;
* ``shared`` (the default): also someone not yet in the room then, so newly joined members
  read earlier history. Endpoints separately refuse users with no standing in the room.

Other servers (``/event``, ``/backfill``, ``/get_missing_events``) get the same judgement
for the server as a whole, as Synapse gives it: ``shared`` and ``world_readable`` history
to any server in the room; ``invited`` history if one of its users was invited or joined at
the event; ``joined`` history if one was joined. The spec's "Server behaviour" applies per
user; a server stands for all its users, so the most privileged of them decides.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from myelin.core.events import PDU, StateKey
from myelin.storage.stores.events import StoredEvent
from myelin.storage.stores.state import StateStore

HISTORY_VISIBILITY = ("m.room.history_visibility", "")
GetPdus = Callable[[list[str]], Awaitable[dict[str, PDU]]]


class Visibility:
    def __init__(self, state: StateStore, get_pdus: GetPdus) -> None:
        self._state = state
        self._get_pdus = get_pdus

    async def filter(self, user_id: str, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        return [e for e in events if await self.is_visible(user_id, e)]

    async def is_visible(self, user_id: str, stored: StoredEvent) -> bool:
        pdu = stored.pdu
        if pdu.type == "m.room.member" and pdu.state_key == user_id:
            return True
        if stored.state_group is None:
            return False
        state = await self._state.get_state(stored.state_group)
        wanted = [state[k] for k in (HISTORY_VISIBILITY, ("m.room.member", user_id))
                  if k in state]
        history, membership = "shared", None
        for event in (await self._get_pdus(wanted)).values():
            if event.type == "m.room.member":
                membership = event.membership
            else:
                history = _history_of(event)
        if history == "world_readable" or membership == "join":
            return True
        if membership in ("leave", "ban") or history == "joined":
            return False
        if history == "invited":
            return membership == "invite"
        return True  # shared

    async def is_visible_to_server(self, server_name: str, stored: StoredEvent) -> bool:
        """Whether ``server_name`` may have ``stored`` as it is; if not, it gets the event
        redacted (the room's DAG stays whole, the content does not leak). A state event with
        no known state (an outlier) is visible: the state of the room is what every server
        in it is given through ``/state`` anyway."""
        pdu = stored.pdu
        suffix = ":" + server_name
        if pdu.type == "m.room.member" and (pdu.state_key or "").endswith(suffix):
            return True  # its own users' membership events
        if stored.state_group is None:
            return pdu.is_state
        state = await self._state.get_state(stored.state_group)
        history = await self._history_visibility(state)
        if history in ("world_readable", "shared"):
            return True
        members = [event_id for (kind, key), event_id in state.items()
                   if kind == "m.room.member" and key.endswith(suffix)]
        allowed = {"join", "invite"} if history == "invited" else {"join"}
        return any(m.membership in allowed
                   for m in (await self._get_pdus(members)).values())

    async def _history_visibility(self, state: dict[StateKey, str]) -> str:
        event_id = state.get(HISTORY_VISIBILITY)
        if event_id is None:
            return "shared"
        return _history_of((await self._get_pdus([event_id])).get(event_id))


def _history_of(event: PDU | None) -> str:
    """An m.room.history_visibility event's setting: ``shared`` if absent or not understood
    ("Server behaviour")."""
    value = event.content.get("history_visibility") if event is not None else None
    return value if value in ("world_readable", "shared", "invited", "joined") else "shared"
