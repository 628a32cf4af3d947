"""Joining rooms across servers (server-server API, "Joining Rooms"): both halves of the
make_join / send_join handshake.

As the joining server we ask a resident for a join template, sign it, and receive the room's
state and auth chain with the join; every one of those events passes the receipt checks
before it is stored, and the join itself goes through the same ``IncomingEvents`` path as any
received event. As the resident server we hand out templates and accept joins, answering with
the state before the join and its auth chain.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote

from myelin.core.auth import AuthError, auth_types_for_event, check_auth
from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS, EventIdFormat, RoomVersion
from myelin.core.signing import add_event_signature, sign_event
from myelin.errors import MatrixError, bad_json, forbidden, not_found
from myelin.ids import UserID
from myelin.services.federation.client import FederationClient, FederationError
from myelin.services.federation.event_validation import EventValidator, InvalidEvent
from myelin.services.federation.invites import Invites, stripped
from myelin.services.rooms.builder import EventBuilder
from myelin.services.rooms.incoming import IncomingEvents
from myelin.services.rooms.timeline import CREATE, RoomState, Timeline
from myelin.services.sync import STRIPPED_STATE_TYPES
from myelin.signing_key import SigningKey
from myelin.storage.persistence import NewRoom
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.state import StateStore

log = logging.getLogger("myelin.federation")

Distribute = Callable[[PDU, Iterable[str]], Awaitable[None]]
SUPPORTED_VERSIONS = tuple(v for v, rv in KNOWN_ROOM_VERSIONS.items() if rv.stable)


def _incompatible(version: str) -> MatrixError:
    return MatrixError(400, "M_INCOMPATIBLE_ROOM_VERSION",
                       f"Your server does not support room version {version}",
                       room_version=version)


class Joins:
    def __init__(self, server_name: str, signing_key: SigningKey, client: FederationClient,
                 validator: EventValidator, timeline: Timeline, incoming: IncomingEvents,
                 events: EventStore, state: StateStore, distribute: Distribute,
                 invites: Invites) -> None:
        self._invites = invites
        self._server_name = server_name
        self._key = signing_key
        self._client = client
        self._validator = validator
        self._timeline = timeline
        self._incoming = incoming
        self._events = events
        self._state = state
        self._distribute = distribute
        # Set once the membership service exists: a local user who may vouch for a join to
        # a restricted room (None when the room is not restricted or the user not allowed).
        self.authoriser: Callable[[str, str], Awaitable[str | None]] | None = None

    # -- as the joining server --------------------------------------------------------------

    async def join_remote(self, user_id: str, room_id: str, servers: Iterable[str],
                          content: dict[str, Any]) -> None:
        """Join ``room_id`` through the first of ``servers`` that helps; 404 if none does."""
        candidates = [s for s in dict.fromkeys(servers) if s != self._server_name]
        if not candidates:
            raise not_found("No known server to join this room through")
        problems: list[str] = []
        refused = False
        for server in candidates:
            try:
                await self._join_via(server, user_id, room_id, content)
                return
            except (FederationError, InvalidEvent) as e:
                log.info("join of %s to %s via %s failed: %s", user_id, room_id, server, e)
                problems.append(f"{server}: {e}")
                refused = refused or (isinstance(e, FederationError) and e.status == 403)
        if refused:  # a resident server said no (banned, not invited, ...): pass that on
            raise forbidden("The room refused the join: " + "; ".join(problems[:3]))
        raise MatrixError(404, "M_NOT_FOUND", "Could not join through any server: "
                          + "; ".join(problems[:3]))

    async def _join_via(self, server: str, user_id: str, room_id: str,
                        content: dict[str, Any]) -> None:
        made = await self._client.request(
            server, "GET", f"/_matrix/federation/v1/make_join/{quote(room_id, safe='')}/"
            f"{quote(user_id, safe='')}", query={"ver": list(SUPPORTED_VERSIONS)})
        version_id = str(made.get("room_version", "1")) if isinstance(made, dict) else "1"
        version = KNOWN_ROOM_VERSIONS.get(version_id)
        if version is None:
            raise _incompatible(version_id)
        template = made.get("event") if isinstance(made, dict) else None
        pdu = self._sign_template(template, version, room_id, user_id, content)
        response = await self._client.request(
            server, "PUT", f"/_matrix/federation/v2/send_join/{quote(room_id, safe='')}/"
            f"{quote(pdu.event_id, safe='')}", json=pdu.data, timeout_s=300)
        if not isinstance(response, dict):
            raise InvalidEvent("send_join answered with something that is not an object")
        returned = response.get("event")
        if isinstance(returned, dict):  # the resident's countersigned copy (restricted joins)
            pdu = await self._validator.validate(returned, version)
        await self._absorb_room(version, room_id, pdu, response)

    async def leave_remote(self, user_id: str, room_id: str, servers: Iterable[str],
                           content: dict[str, Any]) -> None:
        """Reject an invite (or retract a knock) of a room this server is not in:
        server-server API, "Leaving Rooms (Rejecting Invites)"."""
        await self._remote_membership("leave", user_id, room_id, servers, content)

    async def knock_remote(self, user_id: str, room_id: str, servers: Iterable[str],
                           content: dict[str, Any]) -> None:
        """Server-server API, "Knocking upon a room"."""
        await self._remote_membership("knock", user_id, room_id, servers, content)

    async def _remote_membership(self, membership: str, user_id: str, room_id: str,
                                 servers: Iterable[str], content: dict[str, Any]) -> None:
        problems: list[str] = []
        for server in [s for s in dict.fromkeys(servers) if s != self._server_name]:
            try:
                made = await self._client.request(
                    server, "GET", f"/_matrix/federation/v1/make_{membership}/"
                    f"{quote(room_id, safe='')}/{quote(user_id, safe='')}",
                    query={"ver": list(SUPPORTED_VERSIONS)} if membership == "knock" else None)
                version_id = str(made.get("room_version", "1"))
                version = KNOWN_ROOM_VERSIONS.get(version_id)
                if version is None:
                    raise _incompatible(version_id)
                pdu = self._sign_template(made.get("event"), version, room_id, user_id,
                                          content, membership)
                path = ("/_matrix/federation/v1/send_knock/" if membership == "knock"
                        else "/_matrix/federation/v2/send_leave/")
                answer = await self._client.request(
                    server, "PUT", f"{path}{quote(room_id, safe='')}/"
                    f"{quote(pdu.event_id, safe='')}", json=pdu.data)
            except (FederationError, InvalidEvent) as e:
                problems.append(f"{server}: {e}")
                continue
            data = dict(pdu.data)
            if membership == "knock" and isinstance(answer, dict):
                carried = answer.get("knock_room_state")
                if isinstance(carried, list):
                    data["unsigned"] = {"invite_room_state": [
                        s for e in carried if (s := stripped(e)) is not None]}
            known = await self._events.get_room_version(room_id)
            new_room = None if known is not None else NewRoom(
                room_id, version.identifier, user_id, pdu.origin_server_ts)
            await self._timeline.store_remote_membership(
                PDU(data, version, event_id=pdu.event_id), new_room=new_room)
            return
        raise MatrixError(404, "M_NOT_FOUND", f"Could not {membership} through any server: "
                          + "; ".join(problems[:3]) if problems else "no server to ask")

    def _sign_template(self, template: Any, version: RoomVersion, room_id: str, user_id: str,
                       content: dict[str, Any], membership: str = "join") -> PDU:
        """"The joining server MUST also verify that the type, room_id, sender, state_key and
        content.membership fields have the expected values", then fills in and signs."""
        if not isinstance(template, dict) or not isinstance(template.get("content"), dict):
            raise InvalidEvent("make_join gave no event template")
        expected = {"type": "m.room.member", "room_id": room_id, "sender": user_id,
                    "state_key": user_id}
        for key, value in expected.items():
            if template.get(key) != value:
                raise InvalidEvent(f"make_join template has the wrong {key}")
        if template["content"].get("membership") != membership:
            raise InvalidEvent(f"make_{membership} template is not a {membership}")
        event = {k: v for k, v in template.items()
                 if k not in ("event_id", "signatures", "hashes", "unsigned")}
        event["content"] = {**template["content"], **content, "membership": membership}
        event["origin"] = self._server_name
        event["origin_server_ts"] = int(time.time() * 1000)
        if version.event_id_format is EventIdFormat.SERVER_GENERATED:
            event["event_id"] = f"${secrets.token_urlsafe(18)}:{self._server_name}"
        signed = sign_event(event, version, self._server_name, self._key.signing_key,
                            self._key.key_id)
        return PDU(signed, version)

    async def _absorb_room(self, version: RoomVersion, room_id: str, join: PDU,
                           response: dict[str, Any]) -> None:
        """Check and store the state and auth chain send_join returned, then the join."""
        raw_state = response.get("state")
        raw_chain = response.get("auth_chain")
        if not isinstance(raw_state, list) or not isinstance(raw_chain, list):
            raise InvalidEvent("send_join response lacks state or auth_chain")
        state, dropped = await self._validator.validate_many(raw_state, version)
        chain, dropped_chain = await self._validator.validate_many(raw_chain, version)
        for problem in dropped + dropped_chain:
            log.warning("dropped an event of the send_join response for %s: %s", room_id,
                        problem)
        pool = {**chain, **state}
        for pdu in pool.values():
            if pdu.room_id != room_id:
                raise InvalidEvent(f"send_join returned event {pdu.event_id} of another room")
        accepted = _authorised_events(pool)
        state_before: dict[StateKey, str] = {}
        for pdu in state.values():
            if pdu.is_state and pdu.event_id in accepted:
                state_before[pdu.state_tuple] = pdu.event_id
        create_id = state_before.get(CREATE)
        if create_id is None:
            raise InvalidEvent("the room state has no valid create event")
        create = pool[create_id]
        known = await self._events.get_room_version(room_id)
        new_room = None
        if known is None:
            new_room = NewRoom(room_id, version.identifier, create.sender,
                               create.origin_server_ts)
        ordered = sorted((pool[e] for e in accepted), key=lambda p: (p.depth, p.event_id))
        await self._timeline.store_outliers(ordered, new_room=new_room)
        outcome = await self._incoming.receive(join, state_before=state_before, joining=True)
        if not outcome.accepted:
            raise MatrixError(403, "M_FORBIDDEN",
                              f"The room's state does not allow this join: "
                              f"{outcome.rejected_reason}")

    async def countersign_invite(self, pdu: PDU, room: RoomState) -> PDU:
        return await self._invites.countersign(pdu, room)

    async def resolve_remote_alias(self, alias: str) -> tuple[str, list[str]]:
        """Server-server API, "Querying for information": ask the alias's server."""
        domain = alias.split(":", 1)[1]
        try:
            answer = await self._client.request(domain, "GET",
                                                "/_matrix/federation/v1/query/directory",
                                                query={"room_alias": alias})
        except FederationError as e:
            if e.status == 404:
                raise not_found(f"Room alias {alias} not found") from None
            raise MatrixError(502, "M_UNKNOWN", f"Could not ask {domain} about {alias}: {e}",
                              ) from None
        room_id = answer.get("room_id") if isinstance(answer, dict) else None
        servers = answer.get("servers") if isinstance(answer, dict) else None
        if not isinstance(room_id, str) or not room_id.startswith("!"):
            raise MatrixError(502, "M_UNKNOWN", f"{domain} gave no room ID for {alias}")
        servers = [s for s in servers if isinstance(s, str)] if isinstance(servers, list) else []
        return room_id, [domain, *servers]

    # -- as the resident server -------------------------------------------------------------

    async def make_membership(self, membership: str, origin: str, room_id: str, user_id: str,
                              versions: list[str] | None) -> dict[str, Any]:
        """make_join, make_leave and make_knock: a template the user's server signs."""
        room = await self._resident_room(room_id)
        if UserID.parse(user_id).domain != origin:
            raise forbidden("The user does not belong to the requesting server")
        version = room.room_version.identifier
        if versions is not None and version not in (versions or ["1"]):
            raise _incompatible(version)
        template = await self._template(room, user_id, membership)
        return {"event": template, "room_version": version}

    async def _template(self, room: RoomState, user_id: str,
                        membership: str) -> dict[str, Any]:
        content = {"membership": membership}
        current = await self._state.get_membership(room.room_id, user_id)
        if membership == "join" and self.authoriser is not None \
                and (current is None or current[0] not in ("join", "invite")):
            # Server-server API, "Restricted rooms": vouch for a user of an allowed room.
            try:
                authoriser = await self.authoriser(room.room_id, user_id)
            except MatrixError:
                raise MatrixError(400, "M_UNABLE_TO_GRANT_JOIN",
                                  "No user of this server may authorise the join") from None
            if authoriser is not None:
                content["join_authorised_via_users_server"] = authoriser
        # The probe stands for the event as it will be: countersigned by this server.
        probe = PDU({"type": "m.room.member", "sender": user_id, "state_key": user_id,
                     "content": content, "room_id": room.room_id,
                     "signatures": {self._server_name: {self._key.key_id: ""}}},
                    room.room_version, event_id="$probe")
        keys = auth_types_for_event(probe)
        auth_state = await self._timeline.state_events(room, [CREATE, *keys])
        try:
            check_auth(probe, auth_state)
        except AuthError as e:
            raise forbidden(f"You may not {membership} this room: {e.message}") from None
        prevs = await self._timeline.get_pdus(room.extremities[-10:])
        builder_refs = EventBuilder.references(room.room_version, list(prevs.values()))
        auth_refs = EventBuilder.references(
            room.room_version, [auth_state[k] for k in keys if k in auth_state])
        return {
            "type": "m.room.member", "room_id": room.room_id, "sender": user_id,
            "state_key": user_id, "content": content, "origin": self._server_name,
            "origin_server_ts": int(time.time() * 1000),
            "depth": max((p.depth for p in prevs.values()), default=0) + 1,
            "prev_events": builder_refs, "auth_events": auth_refs,
        }

    async def send_membership(self, membership: str, origin: str, room_id: str, event_id: str,
                              body: Any) -> tuple[RoomState, PDU, dict[StateKey, str]]:
        """send_join, send_leave and send_knock: check, countersign, accept and forward the
        membership event; returns it with the state before it."""
        room = await self._resident_room(room_id)
        content = body.get("content") if isinstance(body, dict) else None
        authoriser = content.get("join_authorised_via_users_server") \
            if isinstance(content, dict) else None
        if isinstance(authoriser, str) and authoriser.endswith(":" + self._server_name):
            # A restricted join we vouched for in make_join: our signature is the one the
            # auth rules need, so it is added before the signatures are checked.
            try:
                body = add_event_signature(body, room.room_version, self._server_name,
                                           self._key.signing_key, self._key.key_id)
            except (TypeError, ValueError, KeyError) as e:
                raise bad_json(f"Cannot sign the event: {e}") from None
        try:
            pdu = await self._validator.validate(body, room.room_version)
        except InvalidEvent as e:
            raise bad_json(str(e)) from None
        if pdu.event_id != event_id or pdu.room_id != room_id:
            raise bad_json("The event ID or room ID does not match the URL")
        if pdu.type != "m.room.member" or pdu.membership != membership \
                or pdu.state_key != pdu.sender:
            raise bad_json(f"The event is not a {membership} of its sender")
        if UserID.parse(pdu.sender).domain != origin:
            raise forbidden("The user does not belong to the requesting server")
        # "The resident homeserver then adds its signature to this event".
        signed = add_event_signature(pdu.data, room.room_version, self._server_name,
                                     self._key.signing_key, self._key.key_id)
        pdu = PDU(signed, room.room_version, event_id=pdu.event_id)
        state_before = await self._incoming.state_before(room, pdu)
        outcome = await self._incoming.receive(pdu, state_before=state_before)
        if not outcome.accepted or outcome.soft_failed:
            raise forbidden(f"The {membership} is not allowed: "
                            f"{outcome.rejected_reason or 'soft-failed'}")
        await self._distribute(pdu, [origin])
        return room, pdu, state_before

    async def send_join(self, origin: str, room_id: str, event_id: str,
                        body: Any) -> dict[str, Any]:
        _, pdu, state_before = await self.send_membership("join", origin, room_id, event_id,
                                                          body)
        state_pdus = await self._timeline.get_pdus(list(state_before.values()))
        chain = await self._incoming.with_auth_chains(
            [*state_before.values(), *pdu.auth_event_ids])
        servers = await self.servers_in_room(room_id)
        return {
            "origin": self._server_name,
            "event": pdu.data,
            "state": [p.data for p in state_pdus.values()],
            "auth_chain": [p.data for p in chain.values()],
            "members_omitted": False,
            "servers_in_room": servers,
        }

    async def send_knock(self, origin: str, room_id: str, event_id: str,
                         body: Any) -> dict[str, Any]:
        room, _, _ = await self.send_membership("knock", origin, room_id, event_id, body)
        keys = [CREATE, *((t, "") for t in STRIPPED_STATE_TYPES)]
        state = await self._timeline.state_events(room, keys)
        return {"knock_room_state": [s for p in state.values()
                                     if (s := stripped(p.data)) is not None]}

    async def servers_in_room(self, room_id: str) -> list[str]:
        members = await self._state.joined_members(room_id)
        return sorted({m.split(":", 1)[1] for m in members if ":" in m})

    async def _resident_room(self, room_id: str) -> RoomState:
        room = await self._timeline.room(room_id)
        if room is None or self._server_name not in await self.servers_in_room(room_id):
            raise not_found("This server is not in that room")
        return room


def _authorised_events(pool: dict[str, PDU]) -> set[str]:
    """The events of a send_join response that pass the auth rules against their own auth
    events (receipt step 4), checked in depth order so each one's auth events come first;
    an event citing a rejected or absent event is rejected too."""
    accepted: set[str] = set()
    for pdu in sorted(pool.values(), key=lambda p: (p.depth, p.event_id)):
        auth_state: dict[StateKey, PDU] = {}
        complete = True
        for auth_id in pdu.auth_event_ids:
            if auth_id not in accepted:
                complete = False
                break
            auth_state[pool[auth_id].state_tuple] = pool[auth_id]
        if not complete:
            continue
        if pdu.room_version.room_id_from_create_event and pdu.type != "m.room.create":
            creates = [p for p in pool.values() if p.type == "m.room.create"
                       and p.event_id in accepted]
            if creates:
                auth_state[CREATE] = creates[0]
        try:
            check_auth(pdu, auth_state)
        except AuthError as e:
            log.warning("event %s of the joined room fails its auth events: %s",
                        pdu.event_id, e.message)
            continue
        accepted.add(pdu.event_id)
    return accepted
