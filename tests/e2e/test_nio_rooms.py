"""matrix-nio end to end: two clients register, create a room, invite, join, send text and
custom events, see them through sync, and paginate history in order."""

from __future__ import annotations

import nio


async def test_nio_room_conversation(start_server, tmp_path) -> None:
    server = await start_server(registration={"enabled": True})
    alice = nio.AsyncClient(server.url, store_path=str(tmp_path))
    bob = nio.AsyncClient(server.url, store_path=str(tmp_path))
    try:
        assert isinstance(await alice.register("alice", "pw"), nio.RegisterResponse)
        assert isinstance(await bob.register("bob", "pw"), nio.RegisterResponse)
        created = await alice.room_create(name="nio room", invite=["@bob:test.local"])
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        assert isinstance(await alice.sync(timeout=0), nio.SyncResponse)  # nio learns the room

        first = await bob.sync(timeout=1000)
        assert isinstance(first, nio.SyncResponse), first
        assert room_id in first.rooms.invite
        joined = await bob.join(room_id)
        assert isinstance(joined, nio.JoinResponse), joined

        texts = [f"hello {i}" for i in range(15)]
        for text in texts:
            sent = await alice.room_send(room_id, "m.room.message",
                                         {"msgtype": "m.text", "body": text})
            assert isinstance(sent, nio.RoomSendResponse), sent
        midi = {"note": "71", "velocity": 68, "state": "on", "channel": 1}
        custom = await alice.room_send(room_id, "org.matrix.midi", midi)
        assert isinstance(custom, nio.RoomSendResponse)

        update = await bob.sync(timeout=1000, since=first.next_batch)
        assert isinstance(update, nio.SyncResponse), update
        timeline = update.rooms.join[room_id].timeline
        assert timeline.limited  # 16 new events, 10 shown
        last = timeline.events[-1]
        assert last.source["type"] == "org.matrix.midi" and last.source["content"] == midi
        assert bob.rooms[room_id].display_name == "nio room"

        # Paginate back from the timeline's start: every earlier message, newest first.
        seen = [e.body for e in timeline.events if isinstance(e, nio.RoomMessageText)]
        token = timeline.prev_batch
        while token:
            page = await bob.room_messages(room_id, token, limit=4)
            assert isinstance(page, nio.RoomMessagesResponse), page
            seen = [e.body for e in page.chunk if isinstance(e, nio.RoomMessageText)][::-1] \
                + seen
            token = page.end if page.chunk else None
        assert seen == texts
    finally:
        await alice.close()
        await bob.close()
