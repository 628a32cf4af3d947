"""Server-side search (client-server API, "Server Side Search"): the ``room_events`` category.

What is searched: the rooms the user is joined to now (as Synapse does; events of rooms they
left are not searched), and in them only events the user may see under history visibility
(checked per result with :class:`Visibility`). Redacted events never match. Where the spec is
silent this follows Synapse: the filter's ``rooms`` also covers the rooms they were upgraded
from, ``count`` is an estimate, groups by ``room_id`` and ``sender`` carry their own
``next_batch``.

Differences from Synapse, on purpose: both orderings paginate (``rank`` too), ``recent`` means
the order this server received events in (``origin_server_ts`` is whatever the sender's server
claimed), and a group's ``order`` is an integer as the spec says: 1 for the group of the first
result, 2 for the next new group, and so on.

``next_batch`` is opaque to clients: the ordering, any group it is scoped to, and the (rank,
stream ordering) of the last result served; the next request resumes strictly after it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
import orjson

from myelin.errors import MatrixError, bad_json, invalid_param
from myelin.services.filtering import EventFilter, RoomEventFilter, event_matches
from myelin.services.rooms.client_format import (
    BundlerFactory,
    client_event,
    no_bundler,
    serve_events,
)
from myelin.services.rooms.history import HistoryService
from myelin.services.rooms.timeline import Timeline
from myelin.services.rooms.visibility import Visibility
from myelin.services.sync import topological_token
from myelin.storage.stores.events import EventStore, StoredEvent
from myelin.storage.stores.search import (
    KEY_TYPES,
    Hit,
    SearchQuery,
    SearchScope,
    SearchStore,
    parse_search_term,
    searchable_text,
)
from myelin.storage.stores.state import StateStore

DEFAULT_LIMIT = 10
MAX_LIMIT = 100  # results per response; more come through next_batch
MAX_CONTEXT = 100  # events before / after each result
_MAX_ROUNDS = 5  # store queries per request when visibility keeps dropping candidates
_MAX_PREDECESSORS = 10  # upgrades followed back from one room
_MAX_PREDECESSOR_ROOMS = 50  # rooms of a filter whose upgrade history is followed
_TOKEN_VERSION = 1

NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class EventContext(msgspec.Struct):
    before_limit: NonNegative = 5
    after_limit: NonNegative = 5
    include_profile: bool = False


class GroupBy(msgspec.Struct):
    key: Literal["room_id", "sender"]


class Groupings(msgspec.Struct):
    group_by: list[GroupBy] = msgspec.field(default_factory=list)


class RoomEventsCriteria(msgspec.Struct):
    search_term: str
    keys: list[Literal["content.body", "content.name", "content.topic"]] | None = None
    filter: RoomEventFilter | None = None
    order_by: Literal["rank", "recent"] | None = None
    event_context: EventContext | None = None
    include_state: bool | None = None
    groupings: Groupings | None = None


class SearchCategories(msgspec.Struct):
    room_events: RoomEventsCriteria | None = None  # unknown categories are ignored


class SearchRequest(msgspec.Struct):
    """The body of POST /search."""

    search_categories: SearchCategories


@dataclass(frozen=True)
class _Batch:
    """Where a page ends: decoded ``next_batch``."""

    order: str
    scope: dict[str, str] = field(default_factory=dict)  # "room_id" / "sender" -> value
    after: tuple[float, int] | None = None  # (rank, stream_ordering) of the last one served

    def encode(self, **scope: str) -> str:
        assert self.after is not None
        raw = orjson.dumps([_TOKEN_VERSION, self.order, {**self.scope, **scope}, *self.after])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_batch(token: str, order: str) -> _Batch:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, token_order, scope, rank, stream = orjson.loads(raw)
        valid = (version == _TOKEN_VERSION and isinstance(scope, dict)
                 and set(scope) <= {"room_id", "sender"}
                 and all(isinstance(v, str) for v in scope.values())
                 and isinstance(rank, int | float) and isinstance(stream, int))
    except (binascii.Error, ValueError, TypeError):
        valid = False
    if not valid:
        raise invalid_param("Invalid next_batch token")
    if token_order != order:
        raise invalid_param("next_batch belongs to a search with another order_by")
    return _Batch(order, scope, (float(rank), stream))


class SearchService:
    def __init__(self, store: SearchStore, events: EventStore, state: StateStore,
                 timeline: Timeline, visibility: Visibility, history: HistoryService,
                 bundler_for: BundlerFactory = no_bundler) -> None:
        self._bundler_for = bundler_for
        self._store = store
        self._events = events
        self._state = state
        self._timeline = timeline
        self._visibility = visibility
        self._history = history

    async def search(self, user_id: str, device_id: str | None, request: SearchRequest,
                     next_batch: str | None) -> dict[str, Any]:
        criteria = request.search_categories.room_events
        if criteria is None:  # Synapse's answer too; the spec knows no other category
            raise MatrixError(400, "M_UNKNOWN", "Invalid search query: no room_events category")
        room_filter = criteria.filter or RoomEventFilter()
        if room_filter.limit is not None and room_filter.limit <= 0:
            raise bad_json("filter.limit must be an integer greater than 0")
        order = criteria.order_by or "rank"
        batch = _decode_batch(next_batch, order) if next_batch else _Batch(order)
        limit = min(room_filter.limit or DEFAULT_LIMIT, MAX_LIMIT)
        query = parse_search_term(criteria.search_term)
        scope = await self._scope(user_id, criteria, room_filter, batch.scope)
        hits, resume = await self._collect(user_id, query, scope, room_filter, batch, limit)
        more = resume is not None
        stored = [s for _, s in hits]
        viewer = (user_id, device_id) if device_id else None
        served = await serve_events(stored, viewer, self._timeline.get_pdus,
                                    bundler=self._bundler_for(user_id, device_id))
        results: list[dict[str, Any]] = [{"rank": hit.rank, "result": event}
                                         for (hit, _), event in zip(hits, served, strict=True)]
        if criteria.event_context is not None:
            for result, (_, event) in zip(results, hits, strict=True):
                result["context"] = await self._context(user_id, device_id, event,
                                                        criteria.event_context)
        last = _Batch(order, batch.scope, resume)
        out: dict[str, Any] = {
            "results": results,
            "count": len(results) if not more and not next_batch
            else await self._store.count(query, scope),
            "highlights": await self._highlights(query, stored),
        }
        group_keys = list(dict.fromkeys(g.key for g in (criteria.groupings or Groupings())
                                        .group_by))
        if group_keys:
            out["groups"] = {key: _groups(key, [h for h, _ in hits], last if more else None)
                             for key in group_keys}
        if criteria.include_state:
            out["state"] = await self._current_state({h.room_id for h, _ in hits})
        if more:
            out["next_batch"] = last.encode()
        return {"search_categories": {"room_events": out}}

    async def _scope(self, user_id: str, criteria: RoomEventsCriteria, f: RoomEventFilter,
                     batch_scope: dict[str, str]) -> SearchScope:
        keys = criteria.keys if criteria.keys is not None else list(KEY_TYPES)
        type_filter = EventFilter(types=f.types, not_types=f.not_types)
        types = [KEY_TYPES[k] for k in dict.fromkeys(keys)
                 if event_matches(type_filter, {"type": KEY_TYPES[k]})]
        rooms = None if f.rooms is None else await self._with_predecessors(f.rooms)
        senders = f.senders
        # A group's next_batch narrows the search to that group (never widens the filter).
        if "room_id" in batch_scope:
            room = batch_scope["room_id"]
            rooms = [room] if rooms is None or room in rooms else []
        if "sender" in batch_scope:
            sender = batch_scope["sender"]
            senders = [sender] if senders is None or sender in senders else []
        return SearchScope(user_id, types, rooms, f.not_rooms or (), senders,
                           f.not_senders or ())

    async def _with_predecessors(self, rooms: list[str]) -> list[str]:
        """``rooms`` and the rooms they were upgraded from (m.room.create's predecessor)."""
        found = list(dict.fromkeys(rooms))
        for room_id in found[:_MAX_PREDECESSOR_ROOMS]:
            current: Any = room_id
            for _ in range(_MAX_PREDECESSORS):
                create_id = await self._state.get_current_state_event_id(
                    current, ("m.room.create", ""))
                create = (await self._timeline.get_pdus([create_id])).get(create_id) \
                    if create_id else None
                predecessor = create.content.get("predecessor") if create else None
                current = predecessor.get("room_id") if isinstance(predecessor, dict) else None
                if not isinstance(current, str) or current in found:
                    break
                found.append(current)
        return found

    async def _collect(self, user_id: str, query: SearchQuery, scope: SearchScope,
                       f: RoomEventFilter, batch: _Batch, limit: int,
                       ) -> tuple[list[tuple[Hit, StoredEvent]], tuple[float, int] | None]:
        """Up to ``limit`` visible matches after ``batch``, and where to resume if more may
        follow (after the last match examined, served or not)."""
        by_rank = batch.order == "rank"
        cursor = batch.after
        url_filter = RoomEventFilter(contains_url=f.contains_url)
        wanted = max(limit * 2, 10)
        found: list[tuple[Hit, StoredEvent]] = []
        for _ in range(_MAX_ROUNDS):
            hits = await self._store.search(query, scope, by_rank=by_rank, after=cursor,
                                            limit=wanted)
            events = await self._events.get_events(h.event_id for h in hits)
            for hit in hits:
                cursor = (hit.rank, hit.stream_ordering)
                stored = events.get(hit.event_id)
                if stored is None or stored.redacted_by is not None or \
                        not await self._visibility.is_visible(user_id, stored) or \
                        not event_matches(url_filter, client_event(stored.pdu)):
                    continue
                found.append((hit, stored))
                if len(found) == limit:
                    return found, cursor
            if len(hits) < wanted:
                return found, None
        return found, cursor  # gave up for now: the client may go on from here

    async def _context(self, user_id: str, device_id: str | None, stored: StoredEvent,
                       wanted: EventContext) -> dict[str, Any]:
        pdu, room_filter = stored.pdu, RoomEventFilter()
        before_token = topological_token(pdu.depth, stored.stream_ordering - 1)
        here_token = topological_token(pdu.depth, stored.stream_ordering)
        before = await self._history.messages(
            user_id, device_id, pdu.room_id, from_token=before_token, to_token=None,
            direction="b", limit=min(wanted.before_limit, MAX_CONTEXT),
            room_filter=room_filter) if wanted.before_limit else None
        after = await self._history.messages(
            user_id, device_id, pdu.room_id, from_token=here_token, to_token=None,
            direction="f", limit=min(wanted.after_limit, MAX_CONTEXT),
            room_filter=room_filter) if wanted.after_limit else None
        context: dict[str, Any] = {
            "events_before": before.chunk if before else [],
            "events_after": after.chunk if after else [],
            "start": before.end if before and before.end else before_token,
            "end": after.end if after and after.end else here_token,
        }
        if wanted.include_profile:
            context["profile_info"] = await self._profiles(stored, context)
        return context

    async def _profiles(self, stored: StoredEvent,
                        context: dict[str, Any]) -> dict[str, dict[str, str]]:
        """Display names and avatars of the senders, as of the last event of the context."""
        around = [*context["events_before"], *context["events_after"]]
        senders = {stored.pdu.sender, *(e["sender"] for e in around)}
        last = stored
        if context["events_after"]:
            last_id = context["events_after"][-1]["event_id"]
            last = (await self._events.get_events([last_id])).get(last_id, stored)
        if last.state_group is None:
            return {}
        state = await self._state.get_state(last.state_group)
        member_ids = [state[("m.room.member", s)] for s in senders
                      if ("m.room.member", s) in state]
        profiles: dict[str, dict[str, str]] = {}
        for member in (await self._timeline.get_pdus(member_ids)).values():
            assert member.state_key is not None
            profiles[member.state_key] = {
                k: v for k in ("displayname", "avatar_url")
                if isinstance(v := member.content.get(k), str)}
        return profiles

    async def _highlights(self, query: SearchQuery, stored: list[StoredEvent]) -> list[str]:
        docs = [(s.stream_ordering, text) for s in stored
                if (text := searchable_text(s.pdu)) is not None]
        words = await self._store.matched_words(query, docs)
        return sorted(words | {w.lower() for w in query.words})

    async def _current_state(self, rooms: set[str]) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for room_id in sorted(rooms):
            ids = list((await self._state.get_current_state(room_id)).values())
            out[room_id] = [client_event(p) for p in (await self._timeline.get_pdus(ids))
                            .values()]
        return out


def _groups(key: str, hits: list[Hit], resume: _Batch | None) -> dict[str, dict[str, Any]]:
    """``groups.<key>``: the results partitioned by room or sender, in order of first result.
    With ``resume`` (more results may follow), each group gets a next_batch scoped to it."""
    groups: dict[str, dict[str, Any]] = {}
    for hit in hits:
        value = hit.room_id if key == "room_id" else hit.sender
        group = groups.setdefault(value, {"results": [], "order": len(groups) + 1})
        group["results"].append(hit.event_id)
    if resume is not None:
        for value, group in groups.items():
            group["next_batch"] = resume.encode(**{key: value})
    return groups
