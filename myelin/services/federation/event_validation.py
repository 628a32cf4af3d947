"""Steps 1-3 of the server-server API's "Checks performed on receipt of a PDU": a valid event
of its room version (else dropped), signed by the servers that must sign it (else dropped),
and with a matching content hash (else kept only in redacted form).

Everything an event from another server says is untrusted until it passes here; only then may
it reach the authorisation steps (``myelin.services.rooms.incoming``) and room state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from myelin.core.canonical_json import CanonicalJSONError
from myelin.core.event_format import EventFormatError, validate_pdu
from myelin.core.events import PDU
from myelin.core.hashing import check_content_hash
from myelin.core.redaction import redact
from myelin.core.room_versions import RoomVersion
from myelin.core.signing import SignatureError
from myelin.services.federation.keyring import KeyNotFound, Keyring

log = logging.getLogger("myelin.federation")


class InvalidEvent(Exception):
    """The event is dropped: malformed, or not signed as its room version requires."""


class EventValidator:
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    async def validate(self, data: Any, room_version: RoomVersion) -> PDU:
        """A PDU that passed steps 1-3; its data is the redacted copy when the hash failed."""
        if not isinstance(data, dict):
            raise InvalidEvent("a PDU must be a JSON object")
        try:
            validate_pdu(data, room_version)  # step 1
        except (EventFormatError, CanonicalJSONError) as e:
            raise InvalidEvent(f"not a valid event of room version "
                               f"{room_version.identifier}: {e}") from None
        try:
            await self._keyring.verify_event_signatures(data, room_version)  # step 2
        except (SignatureError, KeyNotFound, ValueError) as e:
            raise InvalidEvent(f"bad signatures: {e}") from None
        if not check_content_hash(data):  # step 3
            log.warning("content hash mismatch on an event from %s: keeping it redacted",
                        data.get("sender"))
            data = redact(data, room_version)
        return PDU(data, room_version)

    async def validate_many(self, items: Iterable[Any], room_version: RoomVersion,
                            ) -> tuple[dict[str, PDU], list[str]]:
        """Validate each event; returns the good ones by ID and why the others were dropped."""
        good: dict[str, PDU] = {}
        problems: list[str] = []
        for item in items:
            try:
                pdu = await self.validate(item, room_version)
            except InvalidEvent as e:
                problems.append(str(e))
                continue
            good[pdu.event_id] = pdu
        return good, problems
