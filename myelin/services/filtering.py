"""Client filters (client-server API, "Filtering"): their shape, their storage, and matching.

A filter arrives either as an uploaded filter's ID or as inline JSON in a query parameter
(``/sync?filter=...``, ``/messages?filter=...``); both resolve here to the same typed
``Filter``, so endpoints never look at filter JSON themselves.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from myelin.errors import MatrixError, bad_json, forbidden, not_found
from myelin.storage.database import IntegrityError
from myelin.storage.stores.filters import FilterStore

MAX_LIMIT = 1000  # "Servers should ... impose a maximum value to avoid resource exhaustion."


class EventFilter(msgspec.Struct, omit_defaults=True):
    limit: int | None = None
    types: list[str] | None = None
    not_types: list[str] | None = None
    senders: list[str] | None = None
    not_senders: list[str] | None = None


class RoomEventFilter(EventFilter, omit_defaults=True):
    rooms: list[str] | None = None
    not_rooms: list[str] | None = None
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    unread_thread_notifications: bool = False


class RoomFilter(msgspec.Struct, omit_defaults=True):
    rooms: list[str] | None = None
    not_rooms: list[str] | None = None
    include_leave: bool = False
    timeline: RoomEventFilter = msgspec.field(default_factory=RoomEventFilter)
    state: RoomEventFilter = msgspec.field(default_factory=RoomEventFilter)
    ephemeral: RoomEventFilter = msgspec.field(default_factory=RoomEventFilter)
    account_data: RoomEventFilter = msgspec.field(default_factory=RoomEventFilter)


class Filter(msgspec.Struct, omit_defaults=True):
    event_fields: list[str] | None = None
    event_format: Literal["client", "federation"] = "client"
    presence: EventFilter = msgspec.field(default_factory=EventFilter)
    account_data: EventFilter = msgspec.field(default_factory=EventFilter)
    room: RoomFilter = msgspec.field(default_factory=RoomFilter)


def _check_limits(f: Filter) -> None:
    for name, sub in (("presence", f.presence), ("account_data", f.account_data),
                      ("room.timeline", f.room.timeline), ("room.state", f.room.state),
                      ("room.ephemeral", f.room.ephemeral),
                      ("room.account_data", f.room.account_data)):
        if sub.limit is not None and sub.limit <= 0:
            raise bad_json(f"{name}.limit must be an integer greater than 0")


def parse_filter(raw: bytes | str) -> Filter:
    """Decode and validate a filter definition (M_NOT_JSON / M_BAD_JSON on failure)."""
    try:
        parsed = msgspec.json.decode(raw, type=Filter)
    except msgspec.ValidationError as e:
        raise bad_json(f"Invalid filter: {e}") from None
    except msgspec.DecodeError:
        raise MatrixError(400, "M_NOT_JSON", "Filter is not valid JSON") from None
    _check_limits(parsed)
    return parsed


def parse_room_event_filter(raw: str | None) -> RoomEventFilter:
    """The ``filter`` parameter of /messages and /context: a RoomEventFilter as JSON."""
    if not raw:
        return RoomEventFilter()
    try:
        parsed = msgspec.json.decode(raw, type=RoomEventFilter)
    except msgspec.ValidationError as e:
        raise bad_json(f"Invalid filter: {e}") from None
    except msgspec.DecodeError:
        raise MatrixError(400, "M_NOT_JSON", "Filter is not valid JSON") from None
    if parsed.limit is not None and parsed.limit <= 0:
        raise bad_json("limit must be an integer greater than 0")
    return parsed


def canonical_filter_json(f: Filter) -> str:
    """A stable text form (defaults omitted, keys sorted) so equal filters compare equal."""
    return msgspec.json.encode(msgspec.to_builtins(f), order="sorted").decode()


@functools.lru_cache(maxsize=1024)
def _pattern(patterns: tuple[str, ...]) -> re.Pattern[str]:
    # Only "*" is a wildcard in filters; fnmatch would also treat "?" and "[...]" specially.
    parts = ["".join(".*" if c == "*" else re.escape(c) for c in p) for p in patterns]
    return re.compile("|".join(f"(?:{p})" for p in parts), re.DOTALL)


def _matches_any(value: str, patterns: list[str]) -> bool:
    return _pattern(tuple(patterns)).fullmatch(value) is not None


def event_matches(f: EventFilter, event: Mapping[str, Any]) -> bool:
    """Does ``event`` (client-format dict) pass ``f``? The ``not_*`` lists win over the
    inclusion lists, as the spec says."""
    event_type = event.get("type", "")
    sender = event.get("sender", "")
    if f.not_types and _matches_any(event_type, f.not_types):
        return False
    if f.types is not None and not _matches_any(event_type, f.types):
        return False
    if f.not_senders and sender in f.not_senders:
        return False
    if f.senders is not None and sender not in f.senders:
        return False
    if isinstance(f, RoomEventFilter):
        room_id = event.get("room_id", "")
        if f.not_rooms and room_id in f.not_rooms:
            return False
        if f.rooms is not None and room_id not in f.rooms:
            return False
        if f.contains_url is not None:
            content = event.get("content")
            has_url = isinstance(content, dict) and isinstance(content.get("url"), str)
            if has_url != f.contains_url:
                return False
    return True


def excludes_every_type(f: EventFilter) -> bool:
    """Whether ``f`` lets no event through, whatever its type (``types: []``, or ``*`` in
    ``not_types``): a sync need not gather what it would only drop."""
    return f.types == [] or bool(f.not_types and "*" in f.not_types)


def room_allowed(f: RoomFilter, room_id: str) -> bool:
    if f.not_rooms and room_id in f.not_rooms:
        return False
    return f.rooms is None or room_id in f.rooms


def effective_limit(f: EventFilter, default: int) -> int:
    return min(f.limit if f.limit is not None else default, MAX_LIMIT)


class FilterService:
    def __init__(self, store: FilterStore) -> None:
        self._store = store

    async def upload(self, requester_id: str, owner_id: str, raw: bytes) -> str:
        if requester_id != owner_id:
            raise forbidden("Cannot create filters for other users")
        text = canonical_filter_json(parse_filter(raw))
        for _ in range(3):  # two concurrent uploads may race for the same new ID
            try:
                return str(await self._store.insert_or_get(owner_id, text))
            except IntegrityError:
                continue
        raise MatrixError(500, "M_UNKNOWN", "Could not store the filter")

    async def get(self, requester_id: str, owner_id: str, filter_id: str) -> Filter:
        if requester_id != owner_id:
            raise forbidden("Cannot read filters of other users")
        if not filter_id.isdigit() or len(filter_id) > 18:
            raise not_found("No such filter")
        text = await self._store.get(owner_id, int(filter_id))
        if text is None:
            raise not_found("No such filter")
        return parse_filter(text)

    async def resolve(self, user_id: str, param: str | None) -> Filter:
        """The ``filter`` query parameter of /sync or /messages: inline JSON or a filter ID."""
        if param is None or param == "":
            return Filter()
        if param.lstrip().startswith("{"):
            return parse_filter(param)
        return await self.get(user_id, user_id, param)

