"""matrix-nio end to end: typing, receipts, presence and an edit arrive through /sync."""

from __future__ import annotations

import nio


async def test_nio_sees_typing_receipts_presence_and_edits(start_server, tmp_path) -> None:
    server = await start_server(registration={"enabled": True})
    alice = nio.AsyncClient(server.url, store_path=str(tmp_path))
    bob = nio.AsyncClient(server.url, store_path=str(tmp_path))
    try:
        await alice.register("alice", "pw")
        await bob.register("bob", "pw")
        room_id = (await alice.room_create(preset=nio.RoomPreset.public_chat)).room_id
        assert isinstance(await bob.join(room_id), nio.JoinResponse)
        await alice.sync(timeout=0)
        first = await bob.sync(timeout=0)

        sent = await alice.room_send(room_id, "m.room.message",
                                     {"msgtype": "m.text", "body": "helo"})
        edit = await alice.room_send(room_id, "m.room.message", {
            "msgtype": "m.text", "body": "* hello",
            "m.new_content": {"msgtype": "m.text", "body": "hello"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": sent.event_id}})
        assert isinstance(edit, nio.RoomSendResponse)
        await alice.room_typing(room_id, typing_state=True, timeout=10000)
        await alice.update_receipt_marker(room_id, sent.event_id)
        await alice.set_presence("online", "around")

        update = await bob.sync(timeout=2000, since=first.next_batch)
        assert isinstance(update, nio.SyncResponse), update
        room = update.rooms.join[room_id]
        edits = [e for e in room.timeline.events
                 if e.source["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"]
        assert edits and edits[0].source["content"]["m.new_content"]["body"] == "hello"
        typing = [e for e in room.ephemeral if isinstance(e, nio.TypingNoticeEvent)]
        assert typing and "@alice:test.local" in typing[-1].users
        receipts = [e for e in room.ephemeral if isinstance(e, nio.ReceiptEvent)]
        assert any(r.event_id == sent.event_id and r.user_id == "@alice:test.local"
                   for e in receipts for r in e.receipts)
        presence = [e for e in update.presence_events if isinstance(e, nio.PresenceEvent)
                    and e.user_id == "@alice:test.local"]
        assert presence and presence[-1].presence == "online"
        assert presence[-1].status_msg == "around"
    finally:
        await alice.close()
        await bob.close()
