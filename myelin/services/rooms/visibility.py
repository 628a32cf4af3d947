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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from myelin.core.events import PDU
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
                value = event.content.get("history_visibility")
                if value in ("world_readable", "shared", "invited", "joined"):
                    history = value
        if history == "world_readable" or membership == "join":
            return True
        if membership in ("leave", "ban") or history == "joined":
            return False
        if history == "invited":
            return membership == "invite"
        return True  # shared
