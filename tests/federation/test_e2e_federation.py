"""End-to-end encryption between users of two federating Myelins (server-server API, "Device
Management", "End-to-End Encryption", "Send-to-device messaging"): remote key queries and
claims, device list updates reaching the other server's /sync, to-device messages, and two
matrix-nio clients with real Olm/Megolm exchanging an encrypted message across servers.
Inbound checks (the origin must own the user) are driven in-process through the same
``on_transaction`` the ``/send`` endpoint uses, with a crafted origin."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import nacl.signing
import nio

from myelin.core.signing import encode_base64, sign_json
from myelin.storage.stores.e2e_keys import E2eKeyStore

from federation_fixtures import FederatingFactory, FederatingServer
from harness import Client, logged_in_user
from room_helpers import create_room, join, wait_for

V3 = "/_matrix/client/v3"


async def two_servers(factory: FederatingFactory, **overrides: Any
                      ) -> tuple[FederatingServer, FederatingServer]:
    return await factory(**overrides), await factory(**overrides)


class Device:
    """A logged-in client device with real ed25519 keys."""

    def __init__(self, client: Client, user_id: str, device_id: str) -> None:
        self.client, self.user_id, self.device_id = client, user_id, device_id
        self.key = nacl.signing.SigningKey.generate()
        self.curve = encode_base64(nacl.signing.SigningKey.generate().verify_key.encode())

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign_json(obj, self.user_id, self.key, f"ed25519:{self.device_id}")

    def device_keys(self) -> dict[str, Any]:
        return self.sign({
            "user_id": self.user_id, "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"ed25519:{self.device_id}": encode_base64(self.key.verify_key.encode()),
                     f"curve25519:{self.device_id}": self.curve}})

    def otk(self, n: int) -> dict[str, Any]:
        return self.sign({"key": encode_base64(bytes([n]) * 32)})

    async def upload(self, **body: Any) -> None:
        response = await self.client.post(f"{V3}/keys/upload", body)
        assert response.status == 200, response

    async def query(self, users: dict[str, list[str]]) -> dict[str, Any]:
        response = await self.client.post(f"{V3}/keys/query", {"device_keys": users})
        assert response.status == 200, response
        return dict(response.json)


async def device(server: FederatingServer, name: str, *, keys: bool = True) -> Device:
    client = await logged_in_user(server, name)
    me = (await client.get(f"{V3}/account/whoami")).json
    dev = Device(client, me["user_id"], me["device_id"])
    if keys:
        await dev.upload(device_keys=dev.device_keys())
    return dev


def cross_signing_body(user_id: str) -> dict[str, Any]:
    keys = {usage: nacl.signing.SigningKey.generate()
            for usage in ("master", "self_signing", "user_signing")}

    def key_json(usage: str) -> dict[str, Any]:
        public = encode_base64(keys[usage].verify_key.encode())
        out: dict[str, Any] = {"user_id": user_id, "usage": [usage],
                               "keys": {f"ed25519:{public}": public}}
        if usage != "master":
            master = encode_base64(keys["master"].verify_key.encode())
            out = sign_json(out, user_id, keys["master"], f"ed25519:{master}")
        return out

    return {f"{usage}_key": key_json(usage) for usage in keys}


async def shared_room(alice: Device, bob: Device, via: str) -> str:
    room_id = str(await create_room(alice.client, name="E2EE"))
    joined = await join(bob.client, room_id, via=[via])
    assert joined.status == 200, joined
    return room_id


async def sync(client: Client, since: str | None = None) -> dict[str, Any]:
    query = f"?since={since}&timeout=0" if since else "?timeout=0"
    response = await client.get(f"{V3}/sync{query}")
    assert response.status == 200, response
    return dict(response.json)


async def test_remote_query_returns_device_and_cross_signing_keys(
        federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice = await device(one, "alice")
    bob = await device(two, "bob")
    cross = cross_signing_body(alice.user_id)
    assert (await alice.client.post(f"{V3}/keys/device_signing/upload", cross)).status == 200

    # No shared room: asked of server one each time (/user/keys/query), nothing cached.
    seen = await bob.query({alice.user_id: []})
    assert seen["failures"] == {}
    assert seen["device_keys"] == {alice.user_id: {alice.device_id: alice.device_keys()}}
    assert seen["master_keys"] == {alice.user_id: cross["master_key"]}
    assert seen["self_signing_keys"] == {alice.user_id: cross["self_signing_key"]}
    assert seen["user_signing_keys"] == {}
    assert await E2eKeyStore(two.services.db).get_remote_list(alice.user_id) is None

    # Sharing a room: the list is fetched with /user/devices and answered from the cache.
    await shared_room(alice, bob, one.server_name)
    cached = await bob.query({alice.user_id: [alice.device_id]})
    assert cached["device_keys"] == seen["device_keys"]
    assert cached["master_keys"] == seen["master_keys"]
    assert cached["self_signing_keys"] == seen["self_signing_keys"]
    assert await E2eKeyStore(two.services.db).get_remote_list(alice.user_id) == (1, False)

    # An unreachable server is a failure; the reachable one still answers.
    mixed = await bob.query({alice.user_id: [], "@nobody:127.0.0.1:1": []})
    assert list(mixed["failures"]) == ["127.0.0.1:1"]
    assert alice.device_id in mixed["device_keys"][alice.user_id]


async def test_serving_endpoints_answer_only_for_local_users(
        federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice = await device(one, "alice")
    renamed = await alice.client.request("PUT", f"{V3}/devices/{alice.device_id}",
                                         {"display_name": "Alice's phone"})
    assert renamed.status == 200, renamed
    e2e = one.services.e2e_keys
    devices = await e2e.federation_user_devices(alice.user_id)
    assert devices["user_id"] == alice.user_id and devices["stream_id"] == 1
    # Device names are not shared with other servers unless configured (as in Synapse).
    assert devices["devices"] == [{"device_id": alice.device_id, "keys": alice.device_keys()}]
    e2e.publisher.share_device_names = True
    shared = await e2e.federation_user_devices(alice.user_id)
    assert shared["devices"][0]["device_display_name"] == "Alice's phone"
    answer = await e2e.federation_query({"device_keys": {alice.user_id: [],
                                                        two.user_id("bob"): []}})
    assert list(answer["device_keys"]) == [alice.user_id]
    assert "user_signing_keys" not in answer
    claimed = await e2e.federation_claim({"one_time_keys": {
        two.user_id("bob"): {"X": "signed_curve25519"}}})
    assert claimed == {"one_time_keys": {}}


async def test_remote_claim_one_time_key_then_fallback(
        federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice = await device(one, "alice")
    bob = await device(two, "bob")
    await alice.upload(one_time_keys={"signed_curve25519:AAAAAQ": alice.otk(1)},
                       fallback_keys={"signed_curve25519:AAAAFB": alice.otk(9)})

    async def claim() -> dict[str, Any]:
        response = await bob.client.post(f"{V3}/keys/claim", {"one_time_keys": {
            alice.user_id: {alice.device_id: "signed_curve25519"}}})
        assert response.status == 200, response
        assert response.json["failures"] == {}
        return dict(response.json["one_time_keys"])

    assert await claim() == {alice.user_id: {alice.device_id: {
        "signed_curve25519:AAAAAQ": alice.otk(1)}}}
    assert await claim() == {alice.user_id: {alice.device_id: {
        "signed_curve25519:AAAAFB": alice.otk(9)}}}
    assert await claim() == {alice.user_id: {alice.device_id: {
        "signed_curve25519:AAAAFB": alice.otk(9)}}}


async def test_device_changes_reach_the_other_servers_sync(
        federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice = await device(one, "alice")
    bob = await device(two, "bob")
    await shared_room(alice, bob, one.server_name)
    await bob.query({alice.user_id: []})  # server two now caches alice's list
    since = (await sync(bob.client))["next_batch"]

    laptop = await device(one, "alice")  # a new device with keys: m.device_list_update

    async def changed() -> Any:
        body = await sync(bob.client, since)
        return alice.user_id in body.get("device_lists", {}).get("changed", [])
    await wait_for(changed)
    keys = (await bob.query({alice.user_id: []}))["device_keys"][alice.user_id]
    assert sorted(keys) == sorted([alice.device_id, laptop.device_id])
    assert keys[laptop.device_id] == laptop.device_keys()
    assert await E2eKeyStore(two.services.db).get_remote_list(alice.user_id) == (2, False)

    # Logging the laptop out deletes it over there too.
    assert (await laptop.client.post(f"{V3}/logout", {})).status == 200

    async def gone() -> bool:
        now = (await bob.query({alice.user_id: []}))["device_keys"][alice.user_id]
        return laptop.device_id not in now
    await wait_for(gone)

    # New cross-signing keys arrive as m.signing_key_update.
    cross = cross_signing_body(alice.user_id)
    assert (await alice.client.post(f"{V3}/keys/device_signing/upload", cross)).status == 200

    async def master() -> Any:
        return (await bob.query({alice.user_id: []}))["master_keys"].get(alice.user_id)
    assert await wait_for(master) == cross["master_key"]


async def test_gap_in_updates_resyncs(federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice = await device(one, "alice")
    bob = await device(two, "bob")
    await shared_room(alice, bob, one.server_name)
    await bob.query({alice.user_id: []})
    # An update that follows one this server never saw: the list is fetched again.
    await two.services.federation_receiver.on_transaction(one.server_name, "gap", {"edus": [{
        "edu_type": "m.device_list_update",
        "content": {"user_id": alice.user_id, "device_id": "GHOST", "stream_id": 7,
                    "prev_id": [6], "keys": {}}}]})
    store = E2eKeyStore(two.services.db)

    async def resynced() -> bool:
        return await store.get_remote_list(alice.user_id) == (1, False)
    await wait_for(resynced)
    devices = [d for d, _, _ in await store.list_remote_devices(alice.user_id)]
    assert devices == [alice.device_id]


async def test_list_is_forgotten_when_no_room_is_shared(
        federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice = await device(one, "alice")
    bob = await device(two, "bob")
    room_id = await shared_room(alice, bob, one.server_name)
    await bob.query({alice.user_id: []})
    store = E2eKeyStore(two.services.db)
    assert await store.get_remote_list(alice.user_id) is not None
    # With no room shared, no updates would come: the copy is dropped rather than kept stale.
    left = await bob.client.post(f"{V3}/rooms/{room_id}/leave", {})
    assert left.status == 200, left

    async def forgotten() -> bool:
        return await store.get_remote_list(alice.user_id) is None
    await wait_for(forgotten)
    # Still answered, now straight from server one.
    keys = (await bob.query({alice.user_id: []}))["device_keys"][alice.user_id]
    assert list(keys) == [alice.device_id]


async def test_to_device_message_across_servers(federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice = await device(one, "alice")
    bob = await device(two, "bob")
    bob_phone = await device(two, "bob")
    since = (await sync(bob.client))["next_batch"]
    response = await alice.client.request(
        "PUT", f"{V3}/sendToDevice/m.test/{secrets.token_hex(4)}",
        {"messages": {bob.user_id: {bob.device_id: {"n": 1}}}})
    assert response.status == 200, response
    response = await alice.client.request(
        "PUT", f"{V3}/sendToDevice/m.test/{secrets.token_hex(4)}",
        {"messages": {bob.user_id: {"*": {"n": 2}}}})
    assert response.status == 200, response

    async def arrived(dev: Device, count: int) -> Any:
        events = (await sync(dev.client, since))["to_device"]["events"]
        return events if len(events) >= count else None
    events = await wait_for(lambda: arrived(bob, 2))
    assert [(e["sender"], e["type"], e["content"]) for e in events] == [
        (alice.user_id, "m.test", {"n": 1}), (alice.user_id, "m.test", {"n": 2})]
    phone = await wait_for(lambda: arrived(bob_phone, 1))
    assert [e["content"] for e in phone] == [{"n": 2}]


async def test_inbound_edus_must_come_from_the_users_server(
        federating_server: FederatingFactory) -> None:
    one, two = await two_servers(federating_server)
    alice = await device(one, "alice")
    bob = await device(two, "bob")
    await shared_room(alice, bob, one.server_name)
    await bob.query({alice.user_id: []})
    since = (await sync(bob.client))["next_batch"]
    receiver = two.services.federation_receiver
    store = E2eKeyStore(two.services.db)
    before = await store.list_remote_devices(alice.user_id)

    forged_keys = {"user_id": alice.user_id, "device_id": "EVIL", "algorithms": [],
                   "keys": {"ed25519:EVIL": "x"}, "signatures": {}}
    await receiver.on_transaction("evil.example", "t1", {"edus": [
        {"edu_type": "m.device_list_update",
         "content": {"user_id": alice.user_id, "device_id": "EVIL", "stream_id": 1,
                     "prev_id": [0], "keys": forged_keys}},
        {"edu_type": "m.signing_key_update",
         "content": {"user_id": alice.user_id,
                     "master_key": cross_signing_body(alice.user_id)["master_key"]}},
        {"edu_type": "m.direct_to_device",
         "content": {"sender": alice.user_id, "type": "m.test", "message_id": "m1",
                     "messages": {bob.user_id: {"*": {"forged": True}}}}},
    ]})
    assert await store.list_remote_devices(alice.user_id) == before
    assert "master" not in await store.get_cross_signing_keys(alice.user_id)
    body = await sync(bob.client, since)
    assert body["to_device"]["events"] == []
    assert alice.user_id not in body.get("device_lists", {}).get("changed", [])

    # From the right origin, a to-device message is delivered once, however often it comes.
    edu = {"edu_type": "m.direct_to_device",
           "content": {"sender": alice.user_id, "type": "m.test", "message_id": "m2",
                       "messages": {bob.user_id: {bob.device_id: {"n": 1}},
                                    "@someone:elsewhere.example": {"*": {"n": 1}}}}}
    await receiver.on_transaction(one.server_name, "t2", {"edus": [edu]})
    await receiver.on_transaction(one.server_name, "t3", {"edus": [edu]})
    events = (await sync(bob.client, since))["to_device"]["events"]
    assert [e["content"] for e in events] == [{"n": 1}]


# -- two matrix-nio clients with real Olm/Megolm, one per server --

SECRET = "the wombat hums in base64"


async def nio_client(server: FederatingServer, path: Path, name: str) -> nio.AsyncClient:
    path.mkdir()  # noqa: ASYNC240 (a test fixture folder, instant)
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
    client = nio.AsyncClient(server.url, store_path=str(path), config=config)
    assert isinstance(await client.register(name, "pw"), nio.RegisterResponse)
    await client.sync(timeout=0)  # uploads device and one-time keys
    assert client.olm is not None
    return client


async def settle(*clients: nio.AsyncClient) -> None:
    for client in clients:
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        await client.sync(timeout=0)


async def learn_devices(client: nio.AsyncClient, other: nio.AsyncClient) -> None:
    """Sync and query until ``client`` knows ``other``'s device and its keys. A key upload
    reaches the other server as a device-list update and then the client as a
    ``device_lists.changed`` entry: a client sending before that would encrypt for nobody."""
    async def known() -> bool:
        if client.should_query_keys:
            await client.keys_query()
        await client.sync(timeout=0)
        return any(d.id == other.device_id
                   for d in client.device_store.active_user_devices(other.user_id))
    await wait_for(known)


async def receive_text(client: nio.AsyncClient, room_id: str) -> list[str]:
    async def texts() -> list[str]:
        response = await client.sync(timeout=500)
        assert isinstance(response, nio.SyncResponse), response
        room = response.rooms.join.get(room_id)
        events = room.timeline.events if room else []
        undecrypted = [e for e in events if isinstance(e, nio.MegolmEvent)]
        assert not undecrypted, f"could not decrypt {undecrypted}"
        return [e.body for e in events if isinstance(e, nio.RoomMessageText)]
    return list(await wait_for(texts, within=20))


async def test_nio_clients_exchange_encrypted_messages_across_servers(
        federating_server: FederatingFactory, tmp_path: Path) -> None:
    one, two = await two_servers(federating_server, registration={"enabled": True})
    alice = await nio_client(one, tmp_path / "a", "alice")
    bob = await nio_client(two, tmp_path / "b", "bob")
    try:
        created = await alice.room_create(
            initial_state=[{"type": "m.room.encryption", "state_key": "",
                            "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        # Invited after creation: createRoom's "invite" does not reach other servers yet.
        assert isinstance(await alice.room_invite(room_id, bob.user_id),
                          nio.RoomInviteResponse)

        async def invited() -> bool:
            await bob.sync(timeout=0)
            return room_id in bob.invited_rooms
        await wait_for(invited)
        assert isinstance(await bob.join(room_id), nio.JoinResponse)

        async def bob_joined() -> bool:
            await alice.sync(timeout=0)
            room = alice.rooms.get(room_id)
            return room is not None and bob.user_id in room.users
        await wait_for(bob_joined)
        await settle(alice, bob, alice)
        await learn_devices(alice, bob)
        assert alice.rooms[room_id].encrypted

        sent = await alice.room_send(room_id, "m.room.message",
                                     {"msgtype": "m.text", "body": SECRET},
                                     ignore_unverified_devices=True)
        assert isinstance(sent, nio.RoomSendResponse), sent
        assert await receive_text(bob, room_id) == [SECRET]

        # And back: bob's client needs alice's devices from server one.
        await settle(bob, alice, bob)
        await learn_devices(bob, alice)
        reply = await bob.room_send(room_id, "m.room.message",
                                    {"msgtype": "m.text", "body": "and hello back"},
                                    ignore_unverified_devices=True)
        assert isinstance(reply, nio.RoomSendResponse), reply
        assert "and hello back" in await receive_text(alice, room_id)

        # Each server answered its client from its cache of the other user's devices.
        assert await E2eKeyStore(one.services.db).get_remote_list(bob.user_id) is not None
        assert await E2eKeyStore(two.services.db).get_remote_list(alice.user_id) is not None
        # Neither server stored the plaintext.
        for server in (one, two):
            rows = await server.services.db.fetch("SELECT json FROM events")
            assert rows and not any(SECRET in row["json"] for row in rows)
    finally:
        await alice.close()
        await bob.close()
