"""Invites across servers (server-server API, "Inviting to a room", ``PUT /v2/invite``).

Inviting: our invite event goes to the invitee's server, which adds its signature; only the
countersigned event is stored and sent to the room. Being invited: the event is checked
("servers MUST apply certain validation to ensure they don't accidentally sign non-invite
events"), signed, and, for a room this server is not in, kept with the room's stripped state
so the invitee's /sync shows the invite.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from myelin.core.events import PDU
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS
from myelin.core.signing import SignatureError, add_event_signature, verify_event_signature
from myelin.errors import MatrixError, invalid_param
from myelin.ids import UserID
from myelin.services.federation.client import FederationClient, FederationError
from myelin.services.federation.event_validation import EventValidator, InvalidEvent
from myelin.services.federation.keyring import KeyNotFound, Keyring
from myelin.services.rooms.timeline import CREATE, RoomState, Timeline
from myelin.services.sync import STRIPPED_STATE_TYPES
from myelin.signing_key import SigningKey
from myelin.storage.persistence import NewRoom
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.state import StateStore

log = logging.getLogger("myelin.federation")


def stripped(event: dict[str, Any]) -> dict[str, Any] | None:
    """A state event as "Stripped state" shows it to clients."""
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    return {"type": event["type"], "state_key": event.get("state_key", ""),
            "content": event.get("content", {}), "sender": event.get("sender")}


class Invites:
    def __init__(self, server_name: str, signing_key: SigningKey, client: FederationClient,
                 keyring: Keyring, validator: EventValidator, timeline: Timeline,
                 events: EventStore, state: StateStore) -> None:
        self._server_name = server_name
        self._key = signing_key
        self._client = client
        self._keyring = keyring
        self._validator = validator
        self._timeline = timeline
        self._events = events
        self._state = state

    # -- inviting a user of another server --------------------------------------------------

    async def countersign(self, pdu: PDU, room: RoomState) -> PDU:
        target_server = UserID.parse(pdu.state_key or "").domain
        keys = [CREATE, *((t, "") for t in STRIPPED_STATE_TYPES)]
        room_state = await self._timeline.state_events(room, keys)
        try:
            answer = await self._client.request(
                target_server, "PUT", f"/_matrix/federation/v2/invite/"
                f"{quote(room.room_id, safe='')}/{quote(pdu.event_id, safe='')}",
                json={"room_version": room.room_version.identifier, "event": pdu.data,
                      "invite_room_state": [p.data for p in room_state.values()]})
        except FederationError as e:
            raise MatrixError(e.status if 400 <= e.status < 500 else 502,
                              e.errcode or "M_UNKNOWN",
                              f"{target_server} refused the invite: {e}") from None
        event = answer.get("event") if isinstance(answer, dict) else None
        if not isinstance(event, dict):
            raise MatrixError(502, "M_UNKNOWN", f"{target_server} returned no signed invite")
        theirs = event.get("signatures", {}).get(target_server) \
            if isinstance(event.get("signatures"), dict) else None
        if not isinstance(theirs, dict) or not theirs:
            raise MatrixError(502, "M_UNKNOWN", f"{target_server} did not sign the invite")
        # Keep our event exactly; take only the invitee server's signatures from theirs.
        signed = {**pdu.data, "signatures": {**pdu.data["signatures"],
                                             target_server: dict(theirs)}}
        await self._check_signature(signed, target_server, room)
        return PDU(signed, room.room_version, event_id=pdu.event_id)

    async def _check_signature(self, event: dict[str, Any], server: str,
                               room: RoomState) -> None:
        for key_id in event["signatures"][server]:
            try:
                key = await self._keyring.get_verify_key(server, key_id, valid_at_ms=0)
                verify_event_signature(event, room.room_version, server, key_id, key)
                return
            except (KeyNotFound, SignatureError, ValueError) as e:
                log.info("invite signature %s of %s does not verify: %s", key_id, server, e)
        raise MatrixError(502, "M_UNKNOWN", f"{server}'s signature on the invite is invalid")

    # -- being invited ----------------------------------------------------------------------

    async def on_invite(self, origin: str, room_id: str, event_id: str,
                        body: dict[str, Any]) -> dict[str, Any]:
        version_id = body.get("room_version", "1")
        version = KNOWN_ROOM_VERSIONS.get(version_id) if isinstance(version_id, str) else None
        if version is None:
            raise MatrixError(400, "M_INCOMPATIBLE_ROOM_VERSION",
                              f"Room version {version_id!r} is not supported here",
                              room_version=str(version_id))
        try:
            pdu = await self._validator.validate(body.get("event"), version)
        except InvalidEvent as e:
            raise invalid_param(f"Invalid invite event: {e}") from None
        if pdu.event_id != event_id or pdu.room_id != room_id:
            raise invalid_param("The event ID or room ID does not match the URL")
        if pdu.type != "m.room.member" or pdu.membership != "invite":
            raise invalid_param("Not an invite")
        if UserID.parse(pdu.sender).domain != origin:
            raise invalid_param("The inviter is not a user of the requesting server")
        target = UserID.parse(pdu.state_key or "")
        if target.domain != self._server_name:
            raise invalid_param("The invitee is not a user of this server")
        signed = add_event_signature(pdu.data, version, self._server_name,
                                     self._key.signing_key, self._key.key_id)
        members = await self._state.joined_members(room_id)
        if not any(m.endswith(":" + self._server_name) for m in members):
            await self._keep_invite(PDU(dict(signed), version, event_id=pdu.event_id), body)
        return {"event": signed}

    async def _keep_invite(self, pdu: PDU, body: dict[str, Any]) -> None:
        raw_state = body.get("invite_room_state")
        carried = [s for e in raw_state if (s := stripped(e)) is not None] \
            if isinstance(raw_state, list) else []
        data = dict(pdu.data)
        data["unsigned"] = {**data.get("unsigned", {}), "invite_room_state": carried}
        kept = PDU(data, pdu.room_version, event_id=pdu.event_id)
        new_room = None
        if await self._events.get_room_version(pdu.room_id) is None:
            creator = next((e.get("sender") for e in carried if e.get("type") == "m.room.create"),
                           pdu.sender)
            new_room = NewRoom(pdu.room_id, pdu.room_version.identifier, str(creator),
                               pdu.origin_server_ts)
        if await self._events.get_event(pdu.event_id) is None:
            await self._timeline.store_remote_membership(kept, new_room=new_room)
