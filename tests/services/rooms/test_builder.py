"""Our own events: signed, hashed, with the event-ID and reference format of each version."""

from __future__ import annotations

import nacl.signing
import pytest

from myelin.core.hashing import check_content_hash
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS, V1, V3, V4, V12, RoomVersion
from myelin.core.signing import verify_event_signature
from myelin.services.rooms.builder import EventBuilder
from myelin.signing_key import SigningKey, generate_version


@pytest.fixture
def key() -> SigningKey:
    return SigningKey(generate_version(), nacl.signing.SigningKey.generate())


@pytest.mark.parametrize("room_version", list(KNOWN_ROOM_VERSIONS.values()),
                         ids=lambda v: f"v{v.identifier}")
def test_built_events_verify(room_version: RoomVersion, key: SigningKey) -> None:
    builder = EventBuilder("example.org", key)
    room_id = None if room_version.room_id_from_create_event else "!r:example.org"
    create = builder.build(room_version, room_id=room_id, event_type="m.room.create",
                           sender="@a:example.org", content={"room_version":
                                                            room_version.identifier},
                           prev_events=[], auth_events=[], depth=1, origin_server_ts=1,
                           state_key="")
    message = builder.build(room_version, room_id=create.room_id, event_type="m.room.message",
                            sender="@a:example.org", content={"body": "hi"},
                            prev_events=[create], auth_events=[create], depth=2,
                            origin_server_ts=2)
    for pdu in (create, message):
        assert check_content_hash(pdu.data)
        verify_event_signature(pdu.data, room_version, "example.org", key.key_id,
                               key.signing_key.verify_key)
    assert message.prev_event_ids == [create.event_id]
    if room_version is V1:
        assert message.event_id.endswith(":example.org")
        assert message.data["prev_events"][0][1]["sha256"]
    if room_version is V3:
        assert ":" not in message.event_id
    if room_version in (V4, V12):
        assert "/" not in message.event_id and "+" not in message.event_id
    if room_version is V12:
        assert "room_id" not in create.data
        assert create.room_id == "!" + create.event_id[1:]
