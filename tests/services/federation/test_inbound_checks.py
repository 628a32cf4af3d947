"""The receipt checks on PDUs from another server ("Checks performed on receipt of a PDU"),
with forged and broken events: server two crafts events with its real signing key (server one
fetches that key over TLS as usual) and hands them to server one's /send processing."""

from __future__ import annotations

import secrets
import time
from typing import Any

from myelin.core.events import PDU, StateKey
from myelin.services.rooms.builder import EventBuilder

from federation_fixtures import FederatingFactory, FederatingServer
from harness import logged_in_user
from room_helpers import create_room, join, send_text, timeline_texts


class Forger:
    """Builds events as server two would, on server one's view of the room."""

    def __init__(self, one: FederatingServer, two: FederatingServer, room_id: str) -> None:
        self.one, self.two, self.room_id = one, two, room_id

    async def build(self, sender: str, event_type: str, content: dict[str, Any],
                    state_key: str | None = None, prev: list[str] | None = None,
                    state: dict[StateKey, str] | None = None) -> PDU:
        """An event on ``prev`` (default: the current extremities) citing auth events from
        ``state`` (default: the current state)."""
        timeline = self.one.services.timeline
        room = await timeline.room(self.room_id)
        keys: list[StateKey] = [("m.room.create", ""), ("m.room.power_levels", ""),
                                ("m.room.member", sender)]
        if room.room_version.room_id_from_create_event:
            keys = keys[1:]  # v12: the create event is implied by the room ID
        chosen = state if state is not None else room.state
        ids = {key: chosen[key] for key in keys if key in chosen}
        auth = await timeline.get_pdus(list(ids.values()))
        prev_ids = prev if prev is not None else room.extremities
        prevs = await timeline.get_pdus(prev_ids)
        builder = EventBuilder(self.two.server_name, self.two.services.signing_key)
        return builder.build(
            room.room_version, room_id=self.room_id, event_type=event_type, sender=sender,
            content=content, prev_events=list(prevs.values()), auth_events=list(auth.values()),
            depth=max(p.depth for p in prevs.values()) + 1,
            origin_server_ts=int(time.time() * 1000), state_key=state_key)

    async def send(self, *pdus: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.one.services.federation_receiver.on_transaction(
            self.two.server_name, secrets.token_hex(8), {"pdus": list(pdus), "edus": []})
        return result["pdus"]


async def setup(federating_server: FederatingFactory) -> tuple[Forger, Any, str]:
    one = await federating_server()
    two = await federating_server()
    alice = await logged_in_user(one, "alice")
    bob = await logged_in_user(two, "bob")
    room_id = await create_room(alice)
    assert (await join(bob, room_id, via=[one.server_name])).status == 200
    return Forger(one, two, room_id), alice, two.user_id("bob")


async def test_valid_event_is_accepted(federating_server: FederatingFactory) -> None:
    forger, alice, bob = await setup(federating_server)
    pdu = await forger.build(bob, "m.room.message", {"msgtype": "m.text", "body": "genuine"})
    assert await forger.send(pdu.data) == {pdu.event_id: {}}
    assert "genuine" in await timeline_texts(alice, forger.room_id)


async def test_bad_signature_is_dropped(federating_server: FederatingFactory) -> None:
    forger, alice, bob = await setup(federating_server)
    pdu = await forger.build(bob, "m.room.message", {"msgtype": "m.text", "body": "forged"})
    data = dict(pdu.data)
    data["signatures"] = {server: {k: "A" * 86 for k in sigs}
                          for server, sigs in data["signatures"].items()}
    result = await forger.send(data)
    assert "signature" in result[pdu.event_id]["error"]
    assert await forger.one.services.event_store.get_event(pdu.event_id) is None
    assert "forged" not in await timeline_texts(alice, forger.room_id)


async def test_forged_sender_of_another_server_is_dropped(
        federating_server: FederatingFactory) -> None:
    forger, alice, _ = await setup(federating_server)
    alice_id = forger.one.user_id("alice")
    # Server two signs an event claiming to come from alice on server one.
    pdu = await forger.build(alice_id, "m.room.message", {"msgtype": "m.text", "body": "fake"})
    result = await forger.send(pdu.data)
    assert "signature" in result[pdu.event_id]["error"]
    assert "fake" not in await timeline_texts(alice, forger.room_id)


async def test_content_hash_mismatch_keeps_only_the_redacted_event(
        federating_server: FederatingFactory) -> None:
    forger, alice, bob = await setup(federating_server)
    pdu = await forger.build(bob, "m.room.message", {"msgtype": "m.text", "body": "original"})
    tampered = {**pdu.data, "content": {"msgtype": "m.text", "body": "tampered"}}
    # Signatures cover the redacted event, so they still verify; the hash does not.
    result = await forger.send(tampered)
    assert result == {pdu.event_id: {}}
    stored = await forger.one.services.event_store.get_event(pdu.event_id)
    assert stored is not None and stored.pdu.content == {}
    assert "tampered" not in await timeline_texts(alice, forger.room_id)


async def test_event_failing_auth_is_rejected(federating_server: FederatingFactory) -> None:
    forger, alice, bob = await setup(federating_server)
    # Bob (power 0) may not change the power levels.
    pdu = await forger.build(bob, "m.room.power_levels",
                             {"users": {bob: 100}, "users_default": 0}, state_key="")
    result = await forger.send(pdu.data)
    assert result == {pdu.event_id: {"error": result[pdu.event_id]["error"]}} \
        or result == {pdu.event_id: {}}
    stored = await forger.one.services.event_store.get_event(pdu.event_id)
    assert stored is not None and stored.rejected_reason is not None
    state = await alice.get(f"/_matrix/client/v3/rooms/{forger.room_id}/state/"
                            "m.room.power_levels")
    assert bob not in state.json.get("users", {})


async def test_malformed_events_are_dropped(federating_server: FederatingFactory) -> None:
    forger, _, bob = await setup(federating_server)
    pdu = await forger.build(bob, "m.room.message", {"msgtype": "m.text", "body": "x"})
    for broken in ({**pdu.data, "depth": "deep"}, {**pdu.data, "type": 5},
                   {k: v for k, v in pdu.data.items() if k != "sender"},
                   {**pdu.data, "content": {"body": "x" * 70_000}}):
        result = await forger.send(broken)
        for outcome in result.values():
            assert "error" in outcome
    assert await forger.send("not an event", 42) == {}  # type: ignore[arg-type]


async def test_ban_evasion_is_soft_failed(federating_server: FederatingFactory) -> None:
    forger, alice, bob = await setup(federating_server)
    room = await forger.one.services.timeline.room(forger.room_id)
    before_ban, state_before_ban = list(room.extremities), dict(room.state)
    banned = await alice.post(f"/_matrix/client/v3/rooms/{forger.room_id}/ban",
                              {"user_id": bob})
    assert banned.status == 200
    # Bob's server sends a message built on the DAG before the ban.
    pdu = await forger.build(bob, "m.room.message", {"msgtype": "m.text", "body": "evading"},
                             prev=before_ban, state=state_before_ban)
    assert await forger.send(pdu.data) == {pdu.event_id: {}}
    stored = await forger.one.services.event_store.get_event(pdu.event_id)
    assert stored is not None and stored.rejected_reason is None
    await send_text(alice, forger.room_id, "after")
    texts = await timeline_texts(alice, forger.room_id)
    assert "evading" not in texts and "after" in texts


async def test_a_failure_inside_one_pdu_does_not_fail_the_transaction(
        federating_server: FederatingFactory) -> None:
    forger, alice, bob = await setup(federating_server)
    broken = await forger.build(bob, "m.room.message", {"msgtype": "m.text", "body": "boom"})
    fine = await forger.build(bob, "m.room.message", {"msgtype": "m.text", "body": "fine"})
    incoming = forger.one.services.incoming
    receive = incoming.receive

    async def failing_receive(pdu: PDU, **kwargs: Any) -> Any:
        if pdu.event_id == broken.event_id:  # fault injection: a bug in processing
            raise RuntimeError("injected")
        return await receive(pdu, **kwargs)

    incoming.receive = failing_receive  # type: ignore[method-assign]
    try:
        result = await forger.send(broken.data, fine.data)
    finally:
        incoming.receive = receive  # type: ignore[method-assign]
    assert result[fine.event_id] == {}
    assert "Internal error" in result[broken.event_id]["error"]
    assert "fine" in await timeline_texts(alice, forger.room_id)
