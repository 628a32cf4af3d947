"""Typing, receipts and presence between two federating Myelins (server-server API, "Typing
Notifications", "Receipts", "Presence"), and the inbound checks: the origin must own the user
and the room's server ACL must allow it (negative cases sent in-process with a crafted
origin, through the same ``on_transaction`` the ``/send`` endpoint uses)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import quote

import pytest

from federation_fixtures import FederatingFactory, FederatingServer, synapse_user
from harness import Client, logged_in_user
from room_helpers import create_room, join, send_text, wait_for, wait_for_text
from synapse_harness import SynapseServer

V3 = "/_matrix/client/v3"


async def two_servers(factory: FederatingFactory) -> tuple[FederatingServer, FederatingServer]:
    return await factory(), await factory()


async def shared_room(one: FederatingServer, alice: Client, bob: Client) -> str:
    """A room on server one that bob, of server two, joins over federation."""
    room_id = await create_room(alice, name="EDUs")
    joined = await join(bob, room_id, via=[one.server_name])
    assert joined.status == 200, joined
    return room_id


def ephemeral(sync: dict[str, Any], room_id: str, event_type: str) -> list[dict[str, Any]]:
    room = sync["rooms"]["join"].get(room_id)
    events = room["ephemeral"]["events"] if room else []
    return [e for e in events if e["type"] == event_type]


async def typers(client: Client, room_id: str) -> list[str]:
    sync = (await client.get(f"{V3}/sync")).json
    return [u for e in ephemeral(sync, room_id, "m.typing") for u in e["content"]["user_ids"]]


async def receipts(client: Client, room_id: str) -> dict[str, Any]:
    """The merged m.receipt content of an initial sync: event ID -> type -> user -> data."""
    sync = (await client.get(f"{V3}/sync")).json
    merged: dict[str, Any] = {}
    for event in ephemeral(sync, room_id, "m.receipt"):
        for event_id, by_type in event["content"].items():
            for receipt_type, users in by_type.items():
                merged.setdefault(event_id, {}).setdefault(receipt_type, {}).update(users)
    return merged


async def edu(server: FederatingServer, origin: str, edu_type: str, content: Any) -> None:
    """An in-process transaction from ``origin`` (the /send endpoint's authentication is
    not what these tests are about)."""
    answer = await server.services.federation_receiver.on_transaction(
        origin, secrets.token_hex(8),
        {"origin": origin, "pdus": [], "edus": [{"edu_type": edu_type, "content": content}]})
    assert answer == {"pdus": {}}


async def test_typing_reaches_the_other_server_and_stops(
        federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice, bob = await logged_in_user(one, "alice"), await logged_in_user(two, "bob")
    room_id = await shared_room(one, alice, bob)
    alice_id = one.user_id("alice")
    token = (await bob.get(f"{V3}/sync")).json["next_batch"]

    # A long-poll on the other server, already waiting, wakes with the remote typer in it.
    poll = asyncio.create_task(bob.get(f"{V3}/sync?since={token}&timeout=10000"))
    await asyncio.sleep(0.2)
    typing = await alice.request("PUT", f"{V3}/rooms/{quote(room_id)}/typing/{alice_id}",
                                 {"typing": True, "timeout": 30000})
    assert typing.status == 200, typing
    woken = (await poll).json
    while not ephemeral(woken, room_id, "m.typing"):  # woken by something else first
        woken = (await bob.get(f"{V3}/sync?since={woken['next_batch']}&timeout=10000")).json
    assert ephemeral(woken, room_id, "m.typing") == [
        {"type": "m.typing", "content": {"user_ids": [alice_id]}}]

    stop = await alice.request("PUT", f"{V3}/rooms/{quote(room_id)}/typing/{alice_id}",
                               {"typing": False})
    assert stop.status == 200, stop

    async def stopped() -> bool:
        return alice_id not in await typers(bob, room_id)
    await wait_for(stopped)

    # And the other way round: bob typing shows on alice's server.
    bob_id = two.user_id("bob")
    assert (await bob.request("PUT", f"{V3}/rooms/{quote(room_id)}/typing/{bob_id}",
                              {"typing": True})).status == 200

    async def bob_typing() -> bool:
        return bob_id in await typers(alice, room_id)
    await wait_for(bob_typing)


async def test_read_receipts_cross_but_private_ones_do_not(
        federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice, bob = await logged_in_user(one, "alice"), await logged_in_user(two, "bob")
    room_id = await shared_room(one, alice, bob)
    bob_id = two.user_id("bob")
    first = await send_text(alice, room_id, "first")
    second = await send_text(alice, room_id, "second")
    third = await send_text(alice, room_id, "third")
    await wait_for_text(bob, room_id, "third")

    def receipt(event_id: str, receipt_type: str, body: dict[str, Any] | None = None) -> Any:
        return bob.post(f"{V3}/rooms/{quote(room_id)}/receipt/{receipt_type}/"
                        f"{quote(event_id)}", body or {})

    assert (await receipt(first, "m.read")).status == 200

    async def alice_sees_first() -> Any:
        return (await receipts(alice, room_id)).get(first, {}).get("m.read", {}).get(bob_id)
    data = await wait_for(alice_sees_first)
    assert isinstance(data["ts"], int) and "thread_id" not in data

    # A private receipt, then a threaded public one: EDUs to one server go out in order, so
    # once the threaded receipt is there, the private one would be too had it been sent.
    assert (await receipt(second, "m.read.private")).status == 200
    assert (await receipt(third, "m.read", {"thread_id": "main"})).status == 200

    async def alice_sees_threaded() -> Any:
        return (await receipts(alice, room_id)).get(third, {}).get("m.read", {}).get(bob_id)
    assert (await wait_for(alice_sees_threaded))["thread_id"] == "main"
    seen = await receipts(alice, room_id)
    assert second not in seen
    assert all("m.read.private" not in by_type for by_type in seen.values())
    # Server one knows no private receipt of bob's (it would be the latest read, unthreaded).
    assert await one.services.receipts.latest_read(room_id, bob_id) == first
    assert await two.services.receipts.latest_read(room_id, bob_id) == second


async def test_presence_is_shared_with_servers_in_a_room(
        federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice, bob = await logged_in_user(one, "alice"), await logged_in_user(two, "bob")
    alice_id = one.user_id("alice")
    status_url = f"{V3}/presence/{quote(alice_id)}/status"
    # Set before bob's server shares a room with alice: it learns it when bob joins.
    assert (await alice.request("PUT", status_url,
                                {"presence": "online", "status_msg": "baking"})).status == 200
    assert (await bob.get(status_url)).status == 404  # nothing known of alice yet
    room_id = await shared_room(one, alice, bob)

    async def status() -> Any:
        response = await bob.get(status_url)
        return response.json if response.status == 200 else None
    seen = await wait_for(status)
    assert seen["presence"] == "online" and seen["status_msg"] == "baking"
    assert seen["currently_active"] is True and seen["last_active_ago"] >= 0

    assert (await alice.request("PUT", status_url,
                                {"presence": "unavailable", "status_msg": "away"})).status == 200

    async def in_sync() -> Any:
        sync = (await bob.get(f"{V3}/sync")).json
        return [e for e in sync["presence"]["events"] if e["sender"] == alice_id
                and e["content"]["presence"] == "unavailable"]
    [event] = await wait_for(in_sync)
    assert event["content"]["status_msg"] == "away"
    assert (await bob.get(status_url)).json["presence"] == "unavailable"
    # bob's presence (he syncs, so he is online) reached alice's server the same way.
    bob_status = f"{V3}/presence/{quote(two.user_id('bob'))}/status"

    async def bob_online() -> bool:
        response = await alice.get(bob_status)
        return response.status == 200 and response.json["presence"] == "online"
    await wait_for(bob_online)
    assert room_id


async def test_edus_for_users_of_another_server_are_ignored(
        federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice, bob = await logged_in_user(one, "alice"), await logged_in_user(two, "bob")
    room_id = await shared_room(one, alice, bob)
    event_id = await send_text(alice, room_id, "hello")
    await wait_for_text(bob, room_id, "hello")
    alice_id = one.user_id("alice")
    liar = "evil.example"

    await edu(two, liar, "m.typing", {"room_id": room_id, "user_id": alice_id, "typing": True})
    await edu(two, liar, "m.receipt", {room_id: {"m.read": {alice_id: {
        "event_ids": [event_id], "data": {"ts": 1}}}}})
    await edu(two, liar, "m.presence", {"push": [{
        "user_id": alice_id, "presence": "online", "last_active_ago": 0}]})
    assert alice_id not in await typers(bob, room_id)
    assert await two.services.receipts.latest_read(room_id, alice_id) is None
    assert (await bob.get(f"{V3}/presence/{quote(alice_id)}/status")).status == 404

    # Junk of every shape is dropped without failing the transaction.
    for edu_type, junk in [
        ("m.typing", None), ("m.typing", {"room_id": room_id, "user_id": alice_id}),
        ("m.typing", {"room_id": room_id, "user_id": alice_id, "typing": "yes"}),
        ("m.receipt", []), ("m.receipt", {room_id: {"m.read": {alice_id: {
            "event_ids": [], "data": {"ts": 1}}}}}),
        ("m.receipt", {room_id: {"m.read": {alice_id: {"event_ids": [event_id],
                                                       "data": {"ts": True}}}}}),
        ("m.receipt", {room_id: {"m.read.private": {alice_id: {
            "event_ids": [event_id], "data": {"ts": 1}}}}}),
        ("m.presence", {"push": "x"}),
        ("m.presence", {"push": [{"user_id": alice_id, "presence": "dancing",
                                  "last_active_ago": 0}]}),
        ("m.presence", {"push": [{"user_id": alice_id, "presence": "online"}]}),
    ]:
        await edu(two, one.server_name, edu_type, junk)
    assert alice_id not in await typers(bob, room_id)
    assert await two.services.receipts.latest_read(room_id, alice_id) is None
    assert (await bob.get(f"{V3}/presence/{quote(alice_id)}/status")).status == 404

    # A user who is not in the room: their typing is not shown even from their own server.
    carol_id = one.user_id("carol")
    await edu(two, one.server_name, "m.typing",
              {"room_id": room_id, "user_id": carol_id, "typing": True})
    assert carol_id not in await typers(bob, room_id)


async def test_typing_and_receipts_from_an_acl_denied_server_are_ignored(
        federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice, bob = await logged_in_user(one, "alice"), await logged_in_user(two, "bob")
    room_id = await shared_room(one, alice, bob)
    event_id = await send_text(alice, room_id, "hello")
    await wait_for_text(bob, room_id, "hello")
    alice_id = one.user_id("alice")

    # Allowed: the same in-process EDU is applied.
    await edu(two, one.server_name, "m.typing",
              {"room_id": room_id, "user_id": alice_id, "typing": True})
    assert alice_id in await typers(bob, room_id)

    # Both servers are 127.0.0.1 (ACLs ignore ports): deny it, after which server two ignores
    # server one's typing and receipts for this room.
    acl = await alice.request(
        "PUT", f"{V3}/rooms/{quote(room_id)}/state/m.room.server_acl/",
        {"allow": ["*"], "deny": ["127.0.0.1"], "allow_ip_literals": True})
    assert acl.status == 200, acl

    async def denied() -> bool:
        return not await two.services.room_acls.allows(room_id, one.server_name)
    await wait_for(denied)

    await edu(two, one.server_name, "m.typing",
              {"room_id": room_id, "user_id": alice_id, "typing": False})
    assert alice_id in await typers(bob, room_id)  # the "stopped" was ignored
    await edu(two, one.server_name, "m.receipt", {room_id: {"m.read": {alice_id: {
        "event_ids": [event_id], "data": {"ts": 1}}}}})
    assert await two.services.receipts.latest_read(room_id, alice_id) is None


class Ephemeral:
    """A client's ephemeral events as a chain of incremental syncs (Synapse caches repeated
    identical syncs, so polling must move its token along)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.token: str | None = None
        self.seen: list[dict[str, Any]] = []

    async def start(self) -> None:
        self.token = (await self.client.get(f"{V3}/sync?timeout=0")).json["next_batch"]

    async def events(self, room_id: str, event_type: str) -> list[dict[str, Any]]:
        sync = (await self.client.get(f"{V3}/sync?since={self.token}&timeout=500")).json
        self.token = sync["next_batch"]
        self.seen += ephemeral(sync, room_id, event_type)
        return [e for e in self.seen if e["type"] == event_type]


@pytest.mark.federation
async def test_typing_receipts_and_presence_with_synapse(
        federating_server: FederatingFactory, synapse: SynapseServer) -> None:
    myelin = await federating_server()
    alice = await logged_in_user(myelin, "alice")
    sue = await synapse_user(synapse, "edu_sue")
    alice_id, sue_id = myelin.user_id("alice"), f"@edu_sue:{synapse.server_name}"
    room_id = await create_room(alice, name="EDUs with Synapse")
    assert (await join(sue, room_id, via=[myelin.server_name])).status == 200
    event_id = await send_text(alice, room_id, "read me")
    await wait_for_text(sue, room_id, "read me")
    on_synapse = Ephemeral(sue)
    await on_synapse.start()

    # Typing, both ways.
    assert (await alice.request("PUT", f"{V3}/rooms/{quote(room_id)}/typing/{alice_id}",
                                {"typing": True, "timeout": 30000})).status == 200

    async def sue_sees_alice_typing() -> bool:
        return any(alice_id in e["content"]["user_ids"]
                   for e in await on_synapse.events(room_id, "m.typing"))
    await wait_for(sue_sees_alice_typing)
    assert (await sue.request("PUT", f"{V3}/rooms/{quote(room_id)}/typing/{quote(sue_id)}",
                              {"typing": True, "timeout": 30000})).status == 200

    async def alice_sees_sue_typing() -> bool:
        return sue_id in await typers(alice, room_id)
    await wait_for(alice_sees_sue_typing)

    # Read receipts, both ways.
    assert (await sue.post(f"{V3}/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}",
                           {})).status == 200

    async def alice_sees_receipt() -> Any:
        return (await receipts(alice, room_id)).get(event_id, {}).get("m.read", {}).get(sue_id)
    await wait_for(alice_sees_receipt)
    reply = await send_text(sue, room_id, "read mine")
    await wait_for_text(alice, room_id, "read mine")
    assert (await alice.post(f"{V3}/rooms/{quote(room_id)}/receipt/m.read/{quote(reply)}",
                             {"thread_id": "main"})).status == 200

    async def sue_sees_receipt() -> Any:
        return [data for e in await on_synapse.events(room_id, "m.receipt")
                if (data := e["content"].get(reply, {}).get("m.read", {}).get(alice_id))]
    [data] = await wait_for(sue_sees_receipt)
    assert data.get("thread_id") == "main"

    # Presence, both ways.
    assert (await sue.request("PUT", f"{V3}/presence/{quote(sue_id)}/status",
                              {"presence": "online", "status_msg": "from synapse"})).status == 200

    async def alice_sees_sue() -> Any:
        response = await alice.get(f"{V3}/presence/{quote(sue_id)}/status")
        return response.status == 200 and response.json.get("status_msg") == "from synapse"
    await wait_for(alice_sees_sue)
    assert (await alice.request("PUT", f"{V3}/presence/{quote(alice_id)}/status",
                                {"presence": "online", "status_msg": "from myelin"})
            ).status == 200

    async def sue_sees_alice() -> Any:
        response = await sue.get(f"{V3}/presence/{quote(alice_id)}/status")
        return response.status == 200 and response.json.get("status_msg") == "from myelin"
    await wait_for(sue_sees_alice)
