"""Building this server's own events: fill in the DAG fields, hash and sign.

Server-server API, "PDUs" and room versions' "Event format": prev/auth references are bare IDs
from v3, and [event_id, {"sha256": reference hash}] pairs in v1-v2, whose events also carry a
server-generated event_id. v12 create events carry no room_id (the room ID is derived from them).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from myelin.core.events import PDU
from myelin.core.hashing import reference_hash
from myelin.core.room_versions import EventIdFormat, RoomVersion
from myelin.core.signing import encode_base64, sign_event
from myelin.signing_key import SigningKey


class EventBuilder:
    def __init__(self, server_name: str, signing_key: SigningKey) -> None:
        self._server_name = server_name
        self._key = signing_key

    def build(
        self,
        room_version: RoomVersion,
        *,
        room_id: str | None,
        event_type: str,
        sender: str,
        content: Mapping[str, Any],
        prev_events: Sequence[PDU],
        auth_events: Sequence[PDU],
        depth: int,
        origin_server_ts: int,
        state_key: str | None = None,
        redacts: str | None = None,
    ) -> PDU:
        """A signed PDU. ``room_id`` is None only for a v12 create event."""
        data: dict[str, Any] = {
            "type": event_type,
            "sender": sender,
            "content": dict(content),
            "depth": depth,
            "origin_server_ts": origin_server_ts,
            "prev_events": self.references(room_version, prev_events),
            "auth_events": self.references(room_version, auth_events),
        }
        if room_id is not None:
            data["room_id"] = room_id
        if state_key is not None:
            data["state_key"] = state_key
        if redacts is not None and not room_version.redacts_in_content:
            data["redacts"] = redacts
        if room_version.event_id_format is EventIdFormat.SERVER_GENERATED:
            data["event_id"] = f"${secrets.token_urlsafe(18)}:{self._server_name}"
        signed = sign_event(data, room_version, self._server_name, self._key.signing_key,
                            self._key.key_id)
        return PDU(signed, room_version)

    @staticmethod
    def references(room_version: RoomVersion, events: Sequence[PDU]) -> list[Any]:
        """prev_events/auth_events as the room version writes them."""
        if room_version.event_id_format is EventIdFormat.SERVER_GENERATED:
            return [[e.event_id, {"sha256": encode_base64(reference_hash(e.data, room_version))}]
                    for e in events]
        return [e.event_id for e in events]
