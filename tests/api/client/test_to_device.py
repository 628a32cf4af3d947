"""Send-to-Device messaging: PUT /sendToDevice, and what /sync is handed through
ToDeviceService.pending / delivery / acknowledge."""

from __future__ import annotations

from harness import Client, RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"


async def device_of(client: Client) -> str:
    return str((await client.get(f"{V3}/account/whoami")).json["device_id"])


async def send(client: Client, txn: str, messages: object,
               event_type: str = "m.test") -> tuple[int, object]:
    response = await client.request("PUT", f"{V3}/sendToDevice/{event_type}/{txn}",
                                    {"messages": messages})
    return response.status, response.json


async def pending(server: RunningServer, user_id: str, device_id: str,
                  limit: int = 100) -> tuple[list[dict], bool]:
    to_device = server.services.to_device
    return await to_device.pending(user_id, device_id, server.services.timeline.stream.current,
                                   limit)


async def test_one_device_and_wildcard(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob1 = await user(homeserver, "bob")
    bob2 = await user(homeserver, "bob")
    carol = await user(homeserver, "carol")
    d1, d2, dc = await device_of(bob1), await device_of(bob2), await device_of(carol)
    bob = "@bob:test.local"

    assert await send(alice, "t1", {bob: {d1: {"n": 1}}}) == (200, {})
    assert await pending(homeserver, bob, d1) == (
        [{"type": "m.test", "sender": "@alice:test.local", "content": {"n": 1}}], False)
    assert await pending(homeserver, bob, d2) == ([], False)

    assert await send(alice, "t2", {bob: {"*": {"n": 2}}}, "m.other") == (200, {})
    for device in (d1, d2):
        events, more = await pending(homeserver, bob, device)
        assert events[-1] == {"type": "m.other", "sender": "@alice:test.local",
                              "content": {"n": 2}}
        assert not more
    # A named device's own message wins over the "*" one; unknown devices and remote or
    # unknown users are ignored.
    assert await send(alice, "t3", {
        bob: {"*": {"n": "all"}, d2: {"n": "just d2"}, "NOSUCHDEVICE": {"x": 1}},
        "@nobody:test.local": {"*": {}},
        "@remote:elsewhere.example": {"DEV": {}},
    }) == (200, {})
    assert (await pending(homeserver, bob, d1))[0][-1]["content"] == {"n": "all"}
    assert (await pending(homeserver, bob, d2))[0][-1]["content"] == {"n": "just d2"}
    assert len((await pending(homeserver, bob, d2))[0]) == 2
    # Other users' devices never see any of it.
    assert await pending(homeserver, "@carol:test.local", dc) == ([], False)
    assert await pending(homeserver, "@alice:test.local", await device_of(alice)) == ([], False)


async def test_retransmission_is_idempotent(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    device = await device_of(bob)
    messages = {"@bob:test.local": {device: {"once": True}}}
    assert await send(alice, "same", messages) == (200, {})
    position = homeserver.services.timeline.stream.current
    assert await send(alice, "same", messages) == (200, {})
    assert homeserver.services.timeline.stream.current == position
    assert len((await pending(homeserver, "@bob:test.local", device))[0]) == 1
    # The txn ID is per endpoint (event type) and per device.
    assert await send(alice, "same", messages, "m.other") == (200, {})
    alice2 = await user(homeserver, "alice")
    assert await send(alice2, "same", messages) == (200, {})
    assert len((await pending(homeserver, "@bob:test.local", device))[0]) == 3


async def test_send_wakes_sync_and_moves_stream(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    device = await device_of(bob)
    before = homeserver.services.timeline.stream.current
    assert await send(alice, "w", {"@bob:test.local": {device: {}}}) == (200, {})
    after = homeserver.services.timeline.stream.current
    assert after > before
    assert homeserver.services.notifier.position >= after
    assert await homeserver.services.notifier.wait("@bob:test.local", [], before, 0.1)


async def test_acknowledge_and_batches(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    device = await device_of(bob)
    other = await device_of(await user(homeserver, "bob"))
    to_device = homeserver.services.to_device
    stream = homeserver.services.timeline.stream
    bob_id = "@bob:test.local"
    positions = []
    for n in range(5):
        assert await send(alice, f"b{n}", {bob_id: {"*": {"n": n}}}) == (200, {})
        positions.append(stream.current)

    # Only what is at or below upto_stream is pending.
    events, more = await to_device.pending(bob_id, device, positions[1])
    assert [e["content"]["n"] for e in events] == [0, 1] and not more
    # A batch smaller than the queue says more remain, and delivery() caps next_batch at the
    # last delivered message.
    events, more = await to_device.pending(bob_id, device, stream.current, 2)
    assert [e["content"]["n"] for e in events] == [0, 1] and more
    events, upto = await to_device.delivery(bob_id, device, stream.current, 2)
    assert [e["content"]["n"] for e in events] == [0, 1] and upto == positions[1]
    events, upto = await to_device.delivery(bob_id, device, stream.current, 5)
    assert len(events) == 5 and upto == stream.current

    # The next sync's token acknowledges what it covers, for this device only.
    await to_device.acknowledge(bob_id, device, positions[1])
    events, more = await to_device.pending(bob_id, device, stream.current)
    assert [e["content"]["n"] for e in events] == [2, 3, 4] and not more
    assert len((await to_device.pending(bob_id, other, stream.current))[0]) == 5
    await to_device.acknowledge(bob_id, device, stream.current)
    assert await to_device.pending(bob_id, device, stream.current) == ([], False)
    assert len((await to_device.pending(bob_id, other, stream.current))[0]) == 5


async def test_errors_store_nothing(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    device = await device_of(bob)
    bob_id = "@bob:test.local"
    cases: list[tuple[object, int, str]] = [
        ("not an object", 400, "M_BAD_JSON"),
        ({bob_id: {device: {}}, "not-a-user": {"*": {}}}, 400, "M_INVALID_PARAM"),
        ({bob_id: {device: {}}, "@carol:test.local": []}, 400, "M_BAD_JSON"),
        ({bob_id: {device: {}, "X": "text"}}, 400, "M_BAD_JSON"),
        ({bob_id: {device: {"big": "x" * 70000}}}, 413, "M_TOO_LARGE"),
    ]
    for n, (messages, status, errcode) in enumerate(cases):
        code, body = await send(alice, f"e{n}", messages)
        assert (code, body["errcode"]) == (status, errcode), (messages, body)  # type: ignore[index]
    missing = await alice.request("PUT", f"{V3}/sendToDevice/m.test/e9", {})
    assert (missing.status, missing.json["errcode"]) == (400, "M_MISSING_PARAM")
    assert await pending(homeserver, bob_id, device) == ([], False)
    # A failed request recorded no transaction: the same txn ID can be used for a good one.
    assert await send(alice, "e0", {bob_id: {device: {"ok": 1}}}) == (200, {})
    assert len((await pending(homeserver, bob_id, device))[0]) == 1
    unauthenticated = await alice.request("PUT", f"{V3}/sendToDevice/m.test/u",
                                          {"messages": {}}, token="nope")
    assert unauthenticated.status == 401


async def test_positions_survive_restart(start_server) -> None:  # type: ignore[no-untyped-def]
    """A delivered (deleted) message's position is never handed out again after a restart."""
    server = await start_server()
    alice = await user(server, "alice")
    bob = await user(server, "bob")
    device = await device_of(bob)
    assert await send(alice, "r", {"@bob:test.local": {device: {}}}) == (200, {})
    position = server.services.timeline.stream.current
    await server.services.to_device.acknowledge("@bob:test.local", device, position)
    await server.server.stop()
    await server.server.start()
    assert server.services.timeline.stream.current >= position


async def test_to_device_through_sync_with_acknowledgement(homeserver) -> None:
    from harness import logged_in_user

    alice = await logged_in_user(homeserver, "tdalice")
    bob = await logged_in_user(homeserver, "tdbob")
    bob_device = (await bob.get("/_matrix/client/v3/account/whoami")).json["device_id"]
    first = (await bob.get("/_matrix/client/v3/sync")).json
    assert first["to_device"]["events"] == []
    sent = await alice.request(
        "PUT", "/_matrix/client/v3/sendToDevice/m.room_key_request/t1",
        {"messages": {"@tdbob:test.local": {bob_device: {"action": "request", "n": 1}}}})
    assert sent.status == 200
    update = (await bob.get(f"/_matrix/client/v3/sync?since={first['next_batch']}")).json
    assert update["to_device"]["events"] == [{"type": "m.room_key_request",
                                              "sender": "@tdalice:test.local",
                                              "content": {"action": "request", "n": 1}}]
    # Syncing again from the same token delivers it again (not yet acknowledged) ...
    again = (await bob.get(f"/_matrix/client/v3/sync?since={first['next_batch']}")).json
    assert len(again["to_device"]["events"]) == 1
    # ... and from the newer token it is gone.
    later = (await bob.get(f"/_matrix/client/v3/sync?since={update['next_batch']}")).json
    assert later["to_device"]["events"] == []
