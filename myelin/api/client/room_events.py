"""Client-server API, "Sending events to a room", "Getting events for a room" (state, one
event, members). Any event type and any JSON content is stored and served untouched."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import orjson
from aiohttp import web

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.core.events import PDU
from myelin.errors import not_found
from myelin.services.rooms.client_format import client_event, serve_events
from myelin.storage.database import IntegrityError

routes = Routes()


async def _once_per_transaction(request: MatrixRequest, endpoint: str,
                                 create: Callable[[tuple[str, str, str, str]],
                                                  Awaitable[PDU]]) -> Any:
    """Client-server API, "Transaction identifiers": a retransmission (same device, endpoint
    and txn ID) gets the original response, even after a restart."""
    user = request.user
    txn_id = request.params["txnId"]
    events = request.services.event_store
    stored = await events.get_client_transaction(user.user_id, user.device_id, endpoint, txn_id)
    if stored is None:
        try:
            pdu = await create((user.user_id, user.device_id, endpoint, txn_id))
            return {"event_id": pdu.event_id}
        except IntegrityError:
            # The same transaction raced in on another connection and won: answer as it did.
            stored = await events.get_client_transaction(user.user_id, user.device_id,
                                                         endpoint, txn_id)
            if stored is None:
                raise
    return web.Response(body=stored, content_type="application/json")


@routes.client("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", body=dict,
               rate_limit="message")
async def send(request: MatrixRequest) -> Any:
    room_id, event_type = request.params["roomId"], request.params["eventType"]

    async def create(txn: tuple[str, str, str, str]) -> PDU:
        # Inside the transaction step: a retransmitted annotation gets its first answer back.
        await request.services.relations.check_new_relation(request.user.user_id, event_type,
                                                            request.body)
        return await request.services.timeline.append(room_id, request.user.user_id,
                                                      event_type, request.body, client_txn=txn)

    return await _once_per_transaction(request, f"send/{room_id}/{event_type}", create)


class RedactBody(msgspec.Struct):
    reason: str | None = None


@routes.client("PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}", body=RedactBody,
               body_optional=True, rate_limit="message")
async def redact(request: MatrixRequest) -> Any:
    room_id, event_id = request.params["roomId"], request.params["eventId"]
    body: RedactBody = request.body
    return await _once_per_transaction(
        request, f"redact/{room_id}/{event_id}",
        lambda txn: request.services.redactions.redact(request.user.user_id, room_id, event_id,
                                                       body.reason, txn))


async def _put_state(request: MatrixRequest, state_key: str) -> dict[str, Any]:
    if request.params["eventType"] == "m.room.canonical_alias":
        await request.services.directory.check_canonical_alias(request.params["roomId"],
                                                               request.body)
    pdu = await request.services.timeline.append(
        request.params["roomId"], request.user.user_id, request.params["eventType"],
        request.body, state_key=state_key)
    return {"event_id": pdu.event_id}


@routes.client("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}", body=dict,
               rate_limit="message")
async def put_state(request: MatrixRequest) -> dict[str, Any]:
    return await _put_state(request, request.params["stateKey"])


@routes.client("PUT", "/rooms/{roomId}/state/{eventType}", body=dict, rate_limit="message")
async def put_state_empty_key(request: MatrixRequest) -> dict[str, Any]:
    return await _put_state(request, "")


async def _visible_state(request: MatrixRequest, room_id: str) -> dict[tuple[str, str], str]:
    """The state a member sees: current while joined; for a former member, the state when they
    left ("Getting state of a room": "If the user has left the room then the state is taken
    from the state of the room when they left")."""
    services = request.services
    membership = await services.state_store.get_membership(room_id, request.user.user_id)
    if membership is not None and membership[0] in ("leave", "ban"):
        stored = await services.event_store.get_event(membership[1])
        if stored is not None and stored.state_group is not None:
            return await services.state_store.get_state(stored.state_group)
    await services.membership.require_joined(room_id, request.user.user_id)
    return await services.state_store.get_current_state(room_id)


async def _get_state(request: MatrixRequest, state_key: str) -> dict[str, Any]:
    room_id = request.params["roomId"]
    state = await _visible_state(request, room_id)
    event_id = state.get((request.params["eventType"], state_key))
    if event_id is None:
        raise not_found("Event not found")
    pdu = (await request.services.timeline.get_pdus([event_id]))[event_id]
    if request.query("format") == "event":
        return client_event(pdu)
    content: dict[str, Any] = dict(pdu.content)
    return content


@routes.client("GET", "/rooms/{roomId}/state/{eventType}/{stateKey}")
async def get_state_event(request: MatrixRequest) -> dict[str, Any]:
    return await _get_state(request, request.params["stateKey"])


@routes.client("GET", "/rooms/{roomId}/state/{eventType}")
async def get_state_event_empty_key(request: MatrixRequest) -> dict[str, Any]:
    return await _get_state(request, "")


@routes.client("GET", "/rooms/{roomId}/state")
async def get_state(request: MatrixRequest) -> Any:
    room_id = request.params["roomId"]
    state = await _visible_state(request, room_id)
    pdus = await request.services.timeline.get_pdus(list(state.values()))
    return web.Response(body=orjson.dumps([client_event(pdus[e]) for e in state.values()]),
                        content_type="application/json")


@routes.client("GET", "/rooms/{roomId}/event/{eventId}")
async def get_event(request: MatrixRequest) -> dict[str, Any]:
    room_id, event_id = request.params["roomId"], request.params["eventId"]
    user = request.user
    await request.services.membership.require_joined(room_id, user.user_id)
    stored = (await request.services.event_store.get_events([event_id])).get(event_id)
    if stored is None or stored.pdu.room_id != room_id or \
            not await request.services.visibility.is_visible(user.user_id, stored):
        raise not_found("Event not found")
    served = await serve_events([stored], (user.user_id, user.device_id),
                                request.services.timeline.get_pdus,
                                bundler=request.services.relations.bundler_for(
                                    user.user_id, user.device_id))
    return served[0]


@routes.client("GET", "/rooms/{roomId}/joined_members")
async def joined_members(request: MatrixRequest) -> dict[str, Any]:
    room_id = request.params["roomId"]
    await request.services.membership.require_joined(room_id, request.user.user_id)
    state = await request.services.state_store.get_current_state(room_id)
    member_ids = [e for (t, _), e in state.items() if t == "m.room.member"]
    pdus = await request.services.timeline.get_pdus(member_ids)
    joined: dict[str, Any] = {}
    for pdu in pdus.values():
        if pdu.membership == "join" and pdu.state_key:
            profile = {k: pdu.content[k] for k in ("displayname", "avatar_url")
                       if isinstance(pdu.content.get(k), str)}
            joined[pdu.state_key] = {"display_name": profile.get("displayname"),
                                     "avatar_url": profile.get("avatar_url")}
    return {"joined": joined}


@routes.client("GET", "/rooms/{roomId}/members")
async def members(request: MatrixRequest) -> dict[str, Any]:
    room_id = request.params["roomId"]
    await request.services.membership.require_joined(room_id, request.user.user_id)
    membership = request.query("membership")
    not_membership = request.query("not_membership")
    at = request.query("at")
    if at is not None:
        state = await request.services.history.state_at(request.user.user_id, room_id, at)
    else:
        state = await request.services.state_store.get_current_state(room_id)
    member_ids = [e for (t, _), e in state.items() if t == "m.room.member"]
    pdus = await request.services.timeline.get_pdus(member_ids)
    chunk = [client_event(p) for p in pdus.values()
             if (membership is None or p.membership == membership)
             and (not_membership is None or p.membership != not_membership)]
    return {"chunk": chunk}
