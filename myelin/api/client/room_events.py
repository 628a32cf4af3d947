"""Client-server API, "Sending events to a room", "Getting events for a room" (state, one
event, members). Any event type and any JSON content is stored and served untouched."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.errors import not_found
from myelin.services.rooms.client_format import client_event
from myelin.storage.database import IntegrityError

routes = Routes()


@routes.client("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", body=dict,
               rate_limit="message")
async def send(request: MatrixRequest) -> Any:
    user = request.user
    room_id, event_type = request.params["roomId"], request.params["eventType"]
    endpoint = f"send/{room_id}/{event_type}"
    txn_id = request.params["txnId"]
    events = request.services.event_store
    stored = await events.get_client_transaction(user.user_id, user.device_id, endpoint, txn_id)
    if stored is None:
        try:
            pdu = await request.services.timeline.append(
                room_id, user.user_id, event_type, request.body,
                client_txn=(user.user_id, user.device_id, endpoint, txn_id))
            return {"event_id": pdu.event_id}
        except IntegrityError:
            # The same transaction raced in on another connection and won: answer as it did.
            stored = await events.get_client_transaction(user.user_id, user.device_id,
                                                         endpoint, txn_id)
            if stored is None:
                raise
    return web.Response(body=stored, content_type="application/json")


async def _put_state(request: MatrixRequest, state_key: str) -> dict[str, Any]:
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


async def _get_state(request: MatrixRequest, state_key: str) -> dict[str, Any]:
    room_id = request.params["roomId"]
    await request.services.membership.require_joined(room_id, request.user.user_id)
    event_id = await request.services.state_store.get_current_state_event_id(
        room_id, (request.params["eventType"], state_key))
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
    await request.services.membership.require_joined(room_id, request.user.user_id)
    state = await request.services.state_store.get_current_state(room_id)
    pdus = await request.services.timeline.get_pdus(list(state.values()))
    return web.Response(body=orjson.dumps([client_event(pdus[e]) for e in state.values()]),
                        content_type="application/json")


@routes.client("GET", "/rooms/{roomId}/event/{eventId}")
async def get_event(request: MatrixRequest) -> dict[str, Any]:
    room_id, event_id = request.params["roomId"], request.params["eventId"]
    await request.services.membership.require_joined(room_id, request.user.user_id)
    pdus = await request.services.timeline.get_pdus([event_id])
    pdu = pdus.get(event_id)
    if pdu is None or pdu.room_id != room_id:
        raise not_found("Event not found")
    return client_event(pdu)


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
    state = await request.services.state_store.get_current_state(room_id)
    member_ids = [e for (t, _), e in state.items() if t == "m.room.member"]
    pdus = await request.services.timeline.get_pdus(member_ids)
    chunk = [client_event(p) for p in pdus.values()
             if (membership is None or p.membership == membership)
             and (not_membership is None or p.membership != not_membership)]
    return {"chunk": chunk}
