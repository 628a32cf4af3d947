"""Two matrix-nio clients with real Olm/Megolm (vodozemac) exchange encrypted messages through
Myelin: device keys, one-time key claims, to-device room keys and /sync all take part. The
server never sees the plaintext."""

from __future__ import annotations

from pathlib import Path

import nio

SECRET = "the quokka sleeps at noon"


async def make_client(url: str, path: Path, name: str) -> nio.AsyncClient:
    path.mkdir()  # noqa: ASYNC240 (a test fixture folder, instant)
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
    client = nio.AsyncClient(url, store_path=str(path), config=config)
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


async def test_megolm_messages_round_trip(start_server, tmp_path) -> None:
    server = await start_server(registration={"enabled": True})
    alice = await make_client(server.url, tmp_path / "a", "alice")
    bob = await make_client(server.url, tmp_path / "b", "bob")
    try:
        created = await alice.room_create(
            invite=["@bob:test.local"],
            initial_state=[{"type": "m.room.encryption", "state_key": "",
                            "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        await bob.sync(timeout=0)
        assert isinstance(await bob.join(room_id), nio.JoinResponse)
        await settle(alice, bob, alice)
        assert alice.rooms[room_id].encrypted

        sent = await alice.room_send(room_id, "m.room.message",
                                     {"msgtype": "m.text", "body": SECRET},
                                     ignore_unverified_devices=True)
        assert isinstance(sent, nio.RoomSendResponse), sent

        bodies: list[str] = []
        for _ in range(5):
            response = await bob.sync(timeout=1000)
            assert isinstance(response, nio.SyncResponse), response
            room = response.rooms.join.get(room_id)
            for event in room.timeline.events if room else []:
                if isinstance(event, nio.RoomMessageText):
                    bodies.append(event.body)
            if bodies:
                break
        assert bodies == [SECRET]

        # And the other way round.
        await settle(bob, alice, bob)
        reply = await bob.room_send(room_id, "m.room.message",
                                    {"msgtype": "m.text", "body": "and hello back"},
                                    ignore_unverified_devices=True)
        assert isinstance(reply, nio.RoomSendResponse), reply
        seen = []
        for _ in range(5):
            response = await alice.sync(timeout=1000)
            room = response.rooms.join.get(room_id)
            seen += [e.body for e in (room.timeline.events if room else [])
                     if isinstance(e, nio.RoomMessageText)]
            if seen:
                break
        assert "and hello back" in seen

        # The server stored only ciphertext: not in events, not in pending to-device
        # messages, not in the search index.
        rows = await server.services.db.fetch("SELECT json FROM events")
        assert rows and not any(SECRET in row["json"] for row in rows)
        assert any("m.megolm.v1.aes-sha2" in row["json"] for row in rows)
        pending = await server.services.db.fetch("SELECT content FROM to_device_messages")
        assert not any(SECRET in row["content"] for row in pending)
        hits = await server.client.post("/_matrix/client/v3/search", {"search_categories": {
            "room_events": {"search_term": "quokka"}}}, token=alice.access_token)
        assert hits.json["search_categories"]["room_events"]["results"] == []
    finally:
        await alice.close()
        await bob.close()
