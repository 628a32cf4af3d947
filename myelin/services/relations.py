"""Relations and threads (client-server API, "Forming relationships between events",
"Aggregations of child events", "Threading", "Event replacements", "Reference relations").

* ``GET /relations/{eventId}[/{relType}[/{eventType}]]``: the parent's children, paginated in
  topological order with the same "t<depth>_<stream>" tokens as /messages, optionally through
  up to three levels of relations (``recurse``).
* ``GET /threads``: thread roots, most recently active thread first.
* Bundled aggregations (``unsigned["m.relations"]``) of served events: ``m.thread`` (latest
  event, count, participation), ``m.replace`` (the most recent valid edit) and
  ``m.reference`` (the referencing event IDs). ``m.annotation`` is not aggregated.

Every child event is shown only if the viewer may see it (history visibility), and redacted
children do not relate at all. State events, edits and annotations get no aggregations; an
event that relates to another cannot be a thread root; a redacted event keeps its thread and
references but not its edits (Synapse does the same).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from myelin.errors import MatrixError, forbidden, invalid_param, not_found
from myelin.services.rooms.client_format import Bundler, GetPdus, serve_events
from myelin.services.rooms.history import parse_position
from myelin.services.rooms.visibility import Visibility
from myelin.services.sync import topological_token
from myelin.storage.stores.events import EventStore, StoredEvent
from myelin.storage.stores.relations import THREAD, RelationStore, relation_of
from myelin.storage.stores.state import StateStore

DEFAULT_LIMIT = 5  # Synapse's default for /relations and /threads
MAX_LIMIT = 1000
RECURSION_DEPTH = 3  # "Homeservers SHOULD traverse at least 3 levels of relationships"
_FETCH_SLACK = 3  # fetch more than asked, as visibility drops some
_LATEST_CANDIDATES = 20  # thread events tried when the latest one is hidden from the viewer
_NO_AGGREGATIONS = ("m.annotation", "m.replace")  # children of these would be meaningless
_NEWEST = (2**62, 2**62)
Fetch = Callable[[tuple[int, int], int], Awaitable[list[tuple[str, int, int]]]]


class RelationService:
    def __init__(self, store: RelationStore, events: EventStore, state: StateStore,
                 visibility: Visibility, get_pdus: GetPdus) -> None:
        self._store = store
        self._events = events
        self._state = state
        self._visibility = visibility
        self._get_pdus = get_pdus

    # -- the endpoints --

    async def relations(self, user_id: str, device_id: str | None, room_id: str,
                        event_id: str, *, rel_type: str | None = None,
                        event_type: str | None = None, from_token: str | None = None,
                        to_token: str | None = None, direction: str = "b",
                        limit: int = 0, recurse: bool | None = None) -> dict[str, Any]:
        if direction not in ("b", "f"):
            raise invalid_param("dir must be 'b' or 'f'")
        if limit < 0:
            raise invalid_param("limit must not be negative")
        await self._require_standing(room_id, user_id)
        parent = (await self._events.get_events([event_id])).get(event_id)
        if parent is None or parent.pdu.room_id != room_id or \
                not await self._visibility.is_visible(user_id, parent):
            raise not_found("Unknown parent event")
        backwards = direction == "b"
        position = await self._position(room_id, from_token, backwards)
        stop = await self._position(room_id, to_token, not backwards) if to_token else None
        limit = min(limit or DEFAULT_LIMIT, MAX_LIMIT)
        levels = RECURSION_DEPTH if recurse else 1

        async def fetch(cursor: tuple[int, int], wanted: int) -> list[tuple[str, int, int]]:
            rows = await self._store.children(
                event_id, room_id, rel_type=rel_type, event_type=event_type, levels=levels,
                position=cursor, backwards=backwards, limit=wanted)
            return [r for r in rows if stop is None or _within((r[1], r[2]), stop, backwards)]

        chunk, end = await self._page(user_id, position, backwards, limit, fetch)
        out: dict[str, Any] = {"chunk": await self._serve(chunk, user_id, device_id)}
        if end is not None:
            out["next_batch"] = topological_token(*end)
        if from_token is not None:
            out["prev_batch"] = from_token
        if recurse is not None:
            out["recursion_depth"] = levels
        return out

    async def threads(self, user_id: str, device_id: str | None, room_id: str, *,
                      include: str = "all", from_token: str | None = None,
                      limit: int | None = None) -> dict[str, Any]:
        if include not in ("all", "participated"):
            raise invalid_param("include must be 'all' or 'participated'")
        if limit is not None and limit <= 0:
            raise invalid_param("limit must be greater than zero")
        await self._require_standing(room_id, user_id)
        position = await self._position(room_id, from_token, True)
        participant = user_id if include == "participated" else None

        async def fetch(cursor: tuple[int, int], wanted: int) -> list[tuple[str, int, int]]:
            return await self._store.threads(room_id, cursor, wanted, participant=participant)

        roots, end = await self._page(user_id, position, True,
                                      min(limit or DEFAULT_LIMIT, MAX_LIMIT), fetch)
        out: dict[str, Any] = {"chunk": await self._serve(roots, user_id, device_id)}
        if end is not None:
            out["next_batch"] = topological_token(*end)
        return out

    async def check_new_relation(self, sender: str, event_type: str,
                                 content: dict[str, Any]) -> None:
        """Refuse what "Threading" and "Event annotations" tell servers to refuse from
        clients: a thread off an event that relates to another, a repeated annotation."""
        relation = relation_of(content)
        if relation is None:
            return
        if relation.rel_type == THREAD and await self._store.has_relation(relation.parent_id):
            raise MatrixError(400, "M_UNKNOWN",
                              "Cannot start a thread from an event with a relation")
        if relation.rel_type == "m.annotation" and relation.key is not None and \
                await self._store.has_annotation(relation.parent_id, sender, event_type,
                                                 relation.key):
            raise MatrixError(400, "M_DUPLICATE_ANNOTATION",
                              "You already sent this annotation to that event")

    # -- bundled aggregations --

    def bundler_for(self, user_id: str, device_id: str | None) -> Bundler:
        """What ``serve_events(..., bundler=)`` takes to bundle aggregations for this viewer."""
        async def bundler(events: Sequence[StoredEvent]) -> dict[str, dict[str, Any]]:
            return await self.bundle(events, user_id, device_id)

        return bundler

    async def bundle(self, events: Sequence[StoredEvent], user_id: str,
                     device_id: str | None) -> dict[str, dict[str, Any]]:
        """``unsigned["m.relations"]`` of each event that has any, by event ID."""
        targets: dict[str, StoredEvent] = {}
        roots: list[StoredEvent] = []
        for stored in events:
            if stored.pdu.is_state:
                continue  # "State events do not currently receive bundled aggregations"
            relation = None if stored.redacted_by else relation_of(stored.pdu.content)
            if relation is not None and relation.rel_type in _NO_AGGREGATIONS:
                continue
            targets[stored.pdu.event_id] = stored
            if relation is None:
                roots.append(stored)
        if not targets:
            return {}
        kinds = await self._store.relation_types(list(targets))
        if not kinds:
            return {}  # the usual page: nothing relates to any of its events
        threads = await self._threads([r for r in roots if THREAD in kinds.get(
            r.pdu.event_id, ())], user_id)
        # The latest thread event is served with its own aggregations (never a thread: it is
        # a thread event itself, so this does not recurse further).
        latest_by_id = {latest.pdu.event_id: latest for _, latest, _ in threads.values()}
        inner = {**targets, **latest_by_id}
        if latest_by_id:
            kinds.update(await self._store.relation_types(list(latest_by_id)))
        edits = await self._edits([e for event_id, e in inner.items() if e.redacted_by is None
                                   and "m.replace" in kinds.get(event_id, ())], user_id)
        references = await self._references(
            [event_id for event_id in inner if "m.reference" in kinds.get(event_id, ())],
            user_id)
        viewer = (user_id, device_id) if device_id else None
        served_edits = dict(zip(edits, await serve_events(list(edits.values()), viewer,
                                                          self._get_pdus), strict=True))
        out: dict[str, dict[str, Any]] = {}
        for event_id in inner:
            relations: dict[str, Any] = {}
            if event_id in references:
                relations["m.reference"] = {"chunk": [{"event_id": child}
                                                      for child in references[event_id]]}
            if event_id in served_edits:
                relations["m.replace"] = served_edits[event_id]
            if relations:
                out[event_id] = relations
        latest_events = [latest for _, latest, _ in threads.values()]
        served_latest = await serve_events(latest_events, viewer, self._get_pdus)
        for latest, event in zip(latest_events, served_latest, strict=True):
            if latest.pdu.event_id in out:
                event["unsigned"]["m.relations"] = out[latest.pdu.event_id]
        for (root_id, (count, _, participated)), event in zip(threads.items(), served_latest,
                                                               strict=True):
            out.setdefault(root_id, {})[THREAD] = {
                "latest_event": event, "count": count,
                "current_user_participated": participated,
            }
        return {event_id: out[event_id] for event_id in targets if event_id in out}

    async def _threads(self, roots: list[StoredEvent], user_id: str,
                       ) -> dict[str, tuple[int, StoredEvent, bool]]:
        """Root ID -> (count, latest event the viewer may see, participated)."""
        summaries = await self._store.thread_summaries([r.pdu.event_id for r in roots])
        if not summaries:
            return {}
        by_id = {r.pdu.event_id: r for r in roots}
        latest = await self._events.get_events([latest for _, latest in summaries.values()])
        checker = _VisibilityMemo(self._visibility, user_id)
        shown: dict[str, StoredEvent] = {}
        for root_id, (_, latest_id) in summaries.items():
            candidate = latest.get(latest_id)
            if candidate is None or not await checker.visible(candidate):
                candidate = await self._latest_visible(by_id[root_id], checker)
            if candidate is not None:
                shown[root_id] = candidate
        own = {root_id for root_id in shown if by_id[root_id].pdu.sender == user_id}
        participated = own | await self._store.participated(
            [root_id for root_id in shown if root_id not in own], user_id)
        return {root_id: (summaries[root_id][0], shown[root_id], root_id in participated)
                for root_id in shown}

    async def _latest_visible(self, root: StoredEvent,
                              checker: _VisibilityMemo) -> StoredEvent | None:
        ids = await self._store.thread_events(root.pdu.event_id, root.pdu.room_id,
                                              _LATEST_CANDIDATES)
        found = await self._events.get_events(ids)
        for event_id in ids:
            if event_id in found and await checker.visible(found[event_id]):
                return found[event_id]
        return None

    async def _edits(self, originals: list[StoredEvent],
                     user_id: str) -> dict[str, StoredEvent]:
        """Original ID -> its most recent valid edit the viewer may see."""
        if not originals:
            return {}
        pairs = await self._store.edit_candidates([e.pdu.event_id for e in originals])
        found = await self._events.get_events(edit for _, edit in pairs)
        checker = _VisibilityMemo(self._visibility, user_id)
        out: dict[str, StoredEvent] = {}
        for original, edit_id in pairs:  # most recent first
            edit = found.get(edit_id)
            if original not in out and edit is not None and _has_new_content(edit) and \
                    await checker.visible(edit):
                out[original] = edit
        return out

    async def _references(self, parent_ids: list[str], user_id: str) -> dict[str, list[str]]:
        if not parent_ids:
            return {}
        pairs = await self._store.references(parent_ids)
        found = await self._events.get_events(child for _, child in pairs)
        checker = _VisibilityMemo(self._visibility, user_id)
        out: dict[str, list[str]] = {}
        for parent, child_id in pairs:
            child = found.get(child_id)
            if child is not None and await checker.visible(child):
                out.setdefault(parent, []).append(child_id)
        return out

    # -- helpers --

    async def _serve(self, events: list[StoredEvent], user_id: str,
                     device_id: str | None) -> list[dict[str, Any]]:
        return await serve_events(events, (user_id, device_id) if device_id else None,
                                  self._get_pdus, bundler=self.bundler_for(user_id, device_id))

    async def _page(self, user_id: str, position: tuple[int, int], backwards: bool,
                    limit: int, fetch: Fetch) -> tuple[list[StoredEvent], tuple[int, int] | None]:
        """Up to ``limit`` visible events from ``fetch(cursor, n)`` (rows of event ID, depth,
        stream in page order) and the position after the last one looked at, None at the
        end."""
        chunk: list[StoredEvent] = []
        cursor, exhausted = position, False
        checker = _VisibilityMemo(self._visibility, user_id)
        while len(chunk) < limit and not exhausted:
            wanted = limit * _FETCH_SLACK
            rows = await fetch(cursor, wanted)
            exhausted = len(rows) < wanted
            found = await self._events.get_events(r[0] for r in rows)
            for index, (event_id, depth, stream) in enumerate(rows):
                cursor = (depth, stream - 1) if backwards else (depth, stream)
                stored = found.get(event_id)
                if stored is not None and await checker.visible(stored):
                    chunk.append(stored)
                    if len(chunk) == limit:
                        exhausted = exhausted and index == len(rows) - 1
                        break
        return chunk, None if exhausted else cursor

    async def _require_standing(self, room_id: str, user_id: str) -> None:
        """Members and former members may read (former ones up to when they left), as for
        /messages."""
        membership = await self._state.get_membership(room_id, user_id)
        if membership is None or membership[0] not in ("join", "leave", "ban", "invite"):
            raise forbidden("You are not in this room")

    async def _position(self, room_id: str, token: str | None,
                        backwards: bool) -> tuple[int, int]:
        if token is None:
            return _NEWEST if backwards else (-(2**62), 0)
        _, value = parse_position(token)
        if isinstance(value, tuple):
            return value
        return await self._events.get_topological_position(room_id, value)


class _VisibilityMemo:
    """History visibility for one viewer, remembered per state group: events after the same
    state are visible alike (except the viewer's own membership events, always visible)."""

    def __init__(self, visibility: Visibility, user_id: str) -> None:
        self._visibility = visibility
        self._user_id = user_id
        self._by_group: dict[int, bool] = {}

    async def visible(self, stored: StoredEvent) -> bool:
        group = stored.state_group
        own_membership = stored.pdu.type == "m.room.member" and \
            stored.pdu.state_key == self._user_id
        if group is None or own_membership:
            return await self._visibility.is_visible(self._user_id, stored)
        if group not in self._by_group:
            self._by_group[group] = await self._visibility.is_visible(self._user_id, stored)
        return self._by_group[group]


def _has_new_content(edit: StoredEvent) -> bool:
    """"The replacement event (once decrypted, if appropriate) must have an m.new_content
    property": only checkable here when it is not encrypted."""
    return edit.pdu.type == "m.room.encrypted" or \
        isinstance(edit.pdu.content.get("m.new_content"), dict)


def _within(key: tuple[int, int], stop: tuple[int, int], backwards: bool) -> bool:
    return key > stop if backwards else key <= stop
