"""Filter shapes and matching (client-server API, "Filtering")."""

from __future__ import annotations

import pytest

from myelin.errors import MatrixError
from myelin.services.filtering import (
    EventFilter,
    RoomEventFilter,
    RoomFilter,
    canonical_filter_json,
    effective_limit,
    event_matches,
    excludes_every_type,
    parse_filter,
    room_allowed,
)

MSG = {"type": "m.room.message", "sender": "@a:x", "room_id": "!r:x", "content": {"body": "hi"}}


def test_types_with_wildcards_and_not_types_winning() -> None:
    assert event_matches(EventFilter(types=["m.room.*"]), MSG)
    assert not event_matches(EventFilter(types=["m.call.*"]), MSG)
    assert not event_matches(EventFilter(types=["m.room.*"], not_types=["m.room.message"]), MSG)
    assert event_matches(EventFilter(types=["*"]), MSG)
    assert not event_matches(EventFilter(types=[]), MSG)  # an empty list matches nothing
    # Only "*" is special: "?" and "[" are literal characters in filters.
    assert not event_matches(EventFilter(types=["m.room.messag?"]), MSG)
    assert event_matches(EventFilter(types=["[x]"]), {**MSG, "type": "[x]"})


def test_senders_and_rooms() -> None:
    assert not event_matches(EventFilter(not_senders=["@a:x"]), MSG)
    assert not event_matches(EventFilter(senders=["@b:x"]), MSG)
    assert event_matches(EventFilter(senders=["@a:x"]), MSG)
    assert not event_matches(RoomEventFilter(not_rooms=["!r:x"]), MSG)
    assert not event_matches(RoomEventFilter(rooms=["!other:x"]), MSG)
    assert room_allowed(RoomFilter(rooms=["!r:x"], not_rooms=[]), "!r:x")
    assert not room_allowed(RoomFilter(rooms=["!r:x"], not_rooms=["!r:x"]), "!r:x")


def test_contains_url() -> None:
    with_url = {**MSG, "content": {"url": "mxc://x/y"}}
    assert event_matches(RoomEventFilter(contains_url=True), with_url)
    assert not event_matches(RoomEventFilter(contains_url=True), MSG)
    assert event_matches(RoomEventFilter(contains_url=False), MSG)
    assert not event_matches(RoomEventFilter(contains_url=False), with_url)


@pytest.mark.parametrize("raw", ['{"room": {"timeline": {"limit": 0}}}',
                                 '{"presence": {"limit": -1}}',
                                 '{"room": {"rooms": "!r:x"}}',
                                 '{"event_format": "xml"}',
                                 '{"event_fields": [1]}',
                                 '[]'])
def test_bad_filters(raw: str) -> None:
    with pytest.raises(MatrixError) as info:
        parse_filter(raw)
    assert info.value.errcode == "M_BAD_JSON"


def test_not_json() -> None:
    with pytest.raises(MatrixError) as info:
        parse_filter("{nope")
    assert info.value.errcode == "M_NOT_JSON"


def test_canonical_form_ignores_key_order_and_defaults() -> None:
    a = parse_filter('{"room": {"timeline": {"limit": 5, "types": ["a"]}}, "presence": {}}')
    b = parse_filter('{"room": {"timeline": {"types": ["a"], "limit": 5}}}')
    assert canonical_filter_json(a) == canonical_filter_json(b)


def test_limits_are_capped() -> None:
    assert effective_limit(EventFilter(limit=10**9), 10) == 1000
    assert effective_limit(EventFilter(), 10) == 10


@pytest.mark.parametrize(("raw", "drops_all"), [
    ({"types": []}, True),
    ({"not_types": ["*"]}, True),
    ({"types": ["*"], "not_types": ["m.*", "*"]}, True),
    ({}, False),
    ({"types": ["m.presence"]}, False),
    ({"not_types": ["m.*"]}, False),
])
def test_excludes_every_type(raw: dict[str, list[str]], drops_all: bool) -> None:
    event_filter = EventFilter(**raw)
    assert excludes_every_type(event_filter) is drops_all
    # It never claims more than event_matches does: a filter it calls empty drops this event.
    if drops_all:
        assert not event_matches(event_filter, {"type": "m.presence", "sender": "@a:b"})
