"""End-to-end encryption between a Myelin user and a Synapse user: matrix-nio clients (real
Olm/Megolm) on each server exchange encrypted messages both ways, through remote key queries
and claims, device-list updates and to-device room keys over federation."""

from __future__ import annotations

from pathlib import Path

import nio
import pytest

from federation_fixtures import FederatingFactory
from room_helpers import wait_for
from synapse_harness import SynapseServer

pytestmark = pytest.mark.federation

SECRET = "megolm across implementations"


async def nio_client(url: str, path: Path, name: str, *, ssl: bool = True) -> nio.AsyncClient:
    path.mkdir()  # noqa: ASYNC240 (a test folder, instant)
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
    client = nio.AsyncClient(url, store_path=str(path), config=config, ssl=ssl)
    registered = await client.register(name, "pw")
    assert isinstance(registered, nio.RegisterResponse), registered
    await client.sync(timeout=0)
    return client


async def settle(*clients: nio.AsyncClient) -> None:
    for client in clients:
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        await client.sync(timeout=0)


async def texts_of(client: nio.AsyncClient, room_id: str) -> list[str]:
    async def texts() -> list[str]:
        response = await client.sync(timeout=500)
        assert isinstance(response, nio.SyncResponse), response
        room = response.rooms.join.get(room_id)
        events = room.timeline.events if room else []
        assert not [e for e in events if isinstance(e, nio.MegolmEvent)], "undecryptable"
        return [e.body for e in events if isinstance(e, nio.RoomMessageText)]
    return list(await wait_for(texts, within=30))


async def test_encrypted_messages_between_myelin_and_synapse(
        federating_server: FederatingFactory, synapse: SynapseServer, tmp_path: Path) -> None:
    myelin = await federating_server(registration={"enabled": True})
    alice = await nio_client(myelin.url, tmp_path / "alice", "alice")
    sue = await nio_client(synapse.url, tmp_path / "sue", "sue_e2ee", ssl=False)
    try:
        created = await alice.room_create(initial_state=[{
            "type": "m.room.encryption", "state_key": "",
            "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        assert isinstance(await alice.room_invite(room_id, sue.user_id), nio.RoomInviteResponse)

        async def invited() -> bool:
            await sue.sync(timeout=0)
            return room_id in sue.invited_rooms
        await wait_for(invited, within=30)
        assert isinstance(await sue.join(room_id), nio.JoinResponse)

        async def sue_joined() -> bool:
            await alice.sync(timeout=0)
            room = alice.rooms.get(room_id)
            return room is not None and sue.user_id in room.users
        await wait_for(sue_joined, within=30)
        await settle(alice, sue, alice)

        sent = await alice.room_send(room_id, "m.room.message",
                                     {"msgtype": "m.text", "body": SECRET},
                                     ignore_unverified_devices=True)
        assert isinstance(sent, nio.RoomSendResponse), sent
        assert SECRET in await texts_of(sue, room_id)

        await settle(sue, alice, sue)
        reply = await sue.room_send(room_id, "m.room.message",
                                    {"msgtype": "m.text", "body": "decrypted on Myelin"},
                                    ignore_unverified_devices=True)
        assert isinstance(reply, nio.RoomSendResponse), reply
        assert "decrypted on Myelin" in await texts_of(alice, room_id)
    finally:
        await alice.close()
        await sue.close()
