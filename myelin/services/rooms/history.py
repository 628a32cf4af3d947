"""Room history: /messages pagination and /context (client-server API, "Getting events for
a room").

Pagination tokens are positions in the room's topological order, "t<depth>_<stream>", meaning
"just after that event": paginating backwards from one returns the events at or before it,
forwards the events after it. A sync token ("s<stream>") is accepted as a starting point too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from myelin.core.events import StateKey
from myelin.errors import forbidden, invalid_param, not_found
from myelin.services.filtering import RoomEventFilter, effective_limit, event_matches
from myelin.services.rooms.client_format import (
    BundlerFactory,
    client_event,
    no_bundler,
    serve_events,
)
from myelin.services.rooms.timeline import Timeline
from myelin.services.rooms.visibility import Visibility
from myelin.services.sync import parse_sync_token, topological_token
from myelin.storage.stores.events import EventStore, StoredEvent
from myelin.storage.stores.state import StateStore

DEFAULT_LIMIT = 10
_FETCH_SLACK = 3  # fetch more than asked, as visibility and filters drop some


def parse_position(token: str) -> tuple[str, tuple[int, int] | int]:
    if token.startswith("t"):
        depth, sep, stream = token[1:].partition("_")
        if sep and depth.lstrip("-").isdigit() and stream.lstrip("-").isdigit():
            return "t", (int(depth), int(stream))
    elif token.startswith("s"):
        return "s", parse_sync_token(token)
    raise invalid_param(f"Invalid pagination token {token!r}")


@dataclass(frozen=True)
class Page:
    chunk: list[dict[str, Any]]
    start: str
    end: str | None
    state: list[dict[str, Any]]


class HistoryService:
    def __init__(self, events: EventStore, state: StateStore, timeline: Timeline,
                 visibility: Visibility, bundler_for: BundlerFactory = no_bundler) -> None:
        self._bundler_for = bundler_for
        # Set by the federation layer: fetch older events of a room from other servers;
        # returns how many it added.
        self.backfill: Callable[[str, int], Awaitable[int]] | None = None
        self._events = events
        self._state = state
        self._timeline = timeline
        self._visibility = visibility

    async def _require_standing(self, room_id: str, user_id: str) -> None:
        """Members, and former members (who see up to when they left), may read history."""
        membership = await self._state.get_membership(room_id, user_id)
        if membership is None or membership[0] not in ("join", "leave", "ban", "invite"):
            raise forbidden("You are not in this room")

    async def _position(self, room_id: str, token: str | None, backwards: bool,
                        ) -> tuple[int, int]:
        if token is None:
            if backwards:
                return await self._events.get_topological_position(room_id, 2**62)
            return (-(2**62), 0)
        kind, value = parse_position(token)
        if kind == "t":
            assert isinstance(value, tuple)
            return value
        assert isinstance(value, int)
        return await self._events.get_topological_position(room_id, value)

    async def messages(self, user_id: str, device_id: str | None, room_id: str, *,
                       from_token: str | None,
                       to_token: str | None, direction: str, limit: int,
                       room_filter: RoomEventFilter) -> Page:
        if direction not in ("b", "f"):
            raise invalid_param("dir must be 'b' or 'f'")
        if limit < 0:
            raise invalid_param("limit must not be negative")
        await self._require_standing(room_id, user_id)
        backwards = direction == "b"
        position = await self._position(room_id, from_token, backwards)
        stop = await self._position(room_id, to_token, not backwards) if to_token else None
        limit = min(effective_limit(room_filter, limit or DEFAULT_LIMIT), 1000)
        chunk: list[StoredEvent] = []
        cursor, exhausted = position, False
        backfills = 0
        while len(chunk) < limit and not exhausted:
            # The first batch is just the page and one more (whether the room goes on):
            # usually every event is shown, and decoding rows is most of a page's cost.
            # Later batches, after visibility or the filter dropped some, fetch more.
            missing = limit - len(chunk)
            wanted = missing + 1 if cursor == position else missing * _FETCH_SLACK + 1
            fetched = await self._events.get_room_events_by_topology(
                room_id, cursor, backwards=backwards, limit=wanted)
            batch = [e for e in fetched if stop is None or _within(e, stop, backwards)]
            exhausted = len(batch) < wanted  # the room (or the `to` token) ends in this batch
            for index, stored in enumerate(batch):
                key = (stored.pdu.depth, stored.stream_ordering)
                cursor = (key[0], key[1] - 1) if backwards else key
                if await self._visibility.is_visible(user_id, stored) and \
                        event_matches(room_filter, client_event(stored.pdu)):
                    chunk.append(stored)
                    if len(chunk) == limit:
                        # Another page follows unless this was the last event there is.
                        exhausted = exhausted and index == len(batch) - 1
                        break
            if exhausted and backwards and stop is None and self.backfill is not None \
                    and backfills < 3 and not _starts_room(batch):
                # The start of what this server holds: ask the room's other servers for more.
                backfills += 1
                exhausted = await self.backfill(room_id, max(limit - len(chunk), 20)) == 0
        end = None if exhausted else cursor
        events = await serve_events(chunk, (user_id, device_id) if device_id else None,
                                    self._timeline.get_pdus,
                                    bundler=self._bundler_for(user_id, device_id))
        state = await self._member_state(room_id, chunk) if room_filter.lazy_load_members \
            else []
        start = from_token or topological_token(*position)
        return Page(events, start, topological_token(*end) if end is not None else None, state)

    async def context(self, user_id: str, device_id: str, room_id: str, event_id: str,
                      limit: int, room_filter: RoomEventFilter) -> dict[str, Any]:
        await self._require_standing(room_id, user_id)
        stored = (await self._events.get_events([event_id])).get(event_id)
        if stored is None or stored.pdu.room_id != room_id or \
                not await self._visibility.is_visible(user_id, stored):
            raise not_found("Event not found")
        half = max(limit, 0) // 2
        here = (stored.pdu.depth, stored.stream_ordering)
        before = await self.messages(user_id, device_id, room_id, from_token=topological_token(
            here[0], here[1] - 1), to_token=None, direction="b", limit=max(half, 1),
            room_filter=room_filter) if half else None
        after = await self.messages(
            user_id, device_id, room_id, from_token=topological_token(*here), to_token=None,
            direction="f", limit=max(limit - half, 1), room_filter=room_filter,
        ) if limit - half else None
        state_group = stored.state_group
        state_ids = await self._state.get_state(state_group) if state_group is not None else {}
        if room_filter.lazy_load_members:
            senders = {stored.pdu.sender}
            state_ids = {k: v for k, v in state_ids.items()
                         if k[0] != "m.room.member" or k[1] in senders}
        state_pdus = await self._timeline.get_pdus(list(state_ids.values()))
        return {
            "event": (await serve_events([stored], (user_id, device_id),
                                         self._timeline.get_pdus,
                                         bundler=self._bundler_for(user_id, device_id)))[0],
            "events_before": before.chunk if before else [],
            "events_after": after.chunk if after else [],
            "start": before.end if before and before.end else topological_token(
                here[0], here[1] - 1),
            "end": after.end if after and after.end else topological_token(*here),
            "state": [client_event(p) for p in state_pdus.values()],
        }

    async def event_near(self, user_id: str, room_id: str, ts: int,
                         direction: str) -> StoredEvent:
        """GET /timestamp_to_event: the closest visible event in that direction."""
        if direction not in ("b", "f"):
            raise invalid_param("dir must be 'b' or 'f'")
        await self._require_standing(room_id, user_id)
        candidates = await self._events.get_event_by_timestamp(
            room_id, ts, forwards=direction == "f", limit=50)
        for stored in candidates:
            if await self._visibility.is_visible(user_id, stored):
                return stored
        raise not_found(f"Unable to find an event from {ts} in direction {direction}")

    async def state_at(self, user_id: str, room_id: str, token: str) -> dict[StateKey, str]:
        """The room state at a sync or pagination token (the members ``at`` parameter)."""
        await self._require_standing(room_id, user_id)
        _, value = parse_position(token)
        stream = value if isinstance(value, int) else value[1]
        group = await self._events.get_state_group_before(room_id, stream + 1)
        return await self._state.get_state(group) if group is not None else {}

    async def _member_state(self, room_id: str,
                            chunk: list[StoredEvent]) -> list[dict[str, Any]]:
        senders = {s.pdu.sender for s in chunk}
        state = await self._state.get_current_state(room_id)
        ids = [state[("m.room.member", u)] for u in senders if ("m.room.member", u) in state]
        return [client_event(p) for p in (await self._timeline.get_pdus(ids)).values()]


def _starts_room(batch: list[StoredEvent]) -> bool:
    """Whether the batch reached the room's create event, before which nothing exists on
    any server (so there is nothing to backfill)."""
    return bool(batch) and batch[-1].pdu.type == "m.room.create" and \
        batch[-1].pdu.state_key == ""


def _within(stored: StoredEvent, stop: tuple[int, int], backwards: bool) -> bool:
    key = (stored.pdu.depth, stored.stream_ordering)
    return key > stop if backwards else key <= stop

