"""What other servers read of a room's history (``/event``, ``/backfill``,
``/get_missing_events``): events the room's history visibility hides from every user of the
asking server come redacted; malformed requests are a 400."""

from __future__ import annotations

from typing import Any

import orjson

from federation_fixtures import FederatingFactory, FederatingServer
from harness import Client, logged_in_user
from room_helpers import create_room, join, send_text

V1 = "/_matrix/federation/v1"


async def ask(asker: FederatingServer, asked: FederatingServer, method: str, path: str,
              body: Any = None, **query: str | list[str]) -> tuple[int, dict[str, Any]]:
    response = await asker.services.federation_client.request_raw(
        asked.server_name, method, f"{V1}{path}", query=query or None, json=body)
    return response.status, orjson.loads(response.body)


async def room_with_history(federating_server: FederatingFactory, visibility: str,
                            ) -> tuple[FederatingServer, FederatingServer, Client, str, str, str]:
    """Alice (server one) writes "before" in a room, bob (server two) joins, alice writes
    "after"; returns both servers, alice, the room and the two events."""
    one = await federating_server()
    two = await federating_server()
    alice = await logged_in_user(one, "alice")
    bob = await logged_in_user(two, "bob")
    room_id = await create_room(alice, initial_state=[{
        "type": "m.room.history_visibility", "state_key": "",
        "content": {"history_visibility": visibility}}], preset="public_chat")
    before = await send_text(alice, room_id, "before")
    assert (await join(bob, room_id, via=[one.server_name])).status == 200
    after = await send_text(alice, room_id, "after")
    return one, two, alice, room_id, before, after


def bodies(pdus: list[dict[str, Any]]) -> dict[str, Any]:
    return {p["content"].get("body", "<redacted>"): p for p in pdus
            if p["type"] == "m.room.message"}


async def test_joined_history_is_redacted_for_a_server_that_was_not_there(
        federating_server: FederatingFactory) -> None:
    one, two, _, room_id, before, after = await room_with_history(federating_server, "joined")
    status, body = await ask(two, one, "GET", f"/backfill/{room_id}", v=[after], limit="50")
    assert status == 200, body
    seen = bodies(body["pdus"])
    assert set(seen) == {"after", "<redacted>"}
    assert seen["<redacted>"]["content"] == {}
    # The redacted copy keeps its signatures and hashes: the DAG stays verifiable.
    assert seen["<redacted>"]["hashes"] and seen["<redacted>"]["signatures"]
    status, body = await ask(two, one, "GET", f"/event/{before}")
    assert status == 200 and body["pdus"][0]["content"] == {}
    status, body = await ask(two, one, "GET", f"/event/{after}")
    assert body["pdus"][0]["content"]["body"] == "after"
    status, body = await ask(two, one, "POST", f"/get_missing_events/{room_id}",
                             {"earliest_events": [], "latest_events": [after], "limit": 20})
    assert status == 200, body
    assert set(bodies(body["events"])) == {"<redacted>"}


async def test_shared_history_is_whole(federating_server: FederatingFactory) -> None:
    one, two, _, room_id, before, after = await room_with_history(federating_server, "shared")
    status, body = await ask(two, one, "GET", f"/backfill/{room_id}", v=[after], limit="50")
    assert status == 200, body
    assert set(bodies(body["pdus"])) == {"after", "before"}
    status, body = await ask(two, one, "GET", f"/event/{before}")
    assert body["pdus"][0]["content"]["body"] == "before"


async def test_malformed_get_missing_events_is_a_400(
        federating_server: FederatingFactory) -> None:
    one, two, _, room_id, _, after = await room_with_history(federating_server, "shared")
    for body in ({"latest_events": after}, {"latest_events": [after], "limit": "ten"},
                 {"latest_events": [1]}, {"latest_events": [after], "min_depth": None}):
        status, answer = await ask(two, one, "POST", f"/get_missing_events/{room_id}", body)
        assert (status, answer["errcode"]) == (400, "M_BAD_JSON"), body
