"""Push delivery to a real push gateway: an aiohttp server on loopback started by the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from myelin.storage.stores.notifications import Notification, NotificationStore

from harness import Client, RunningServer
from harness import logged_in_user as user
from server_fixtures import ServerFactory

V3 = "/_matrix/client/v3"
NOTIFY = "/_matrix/push/v1/notify"
FAST_RETRIES = {"push": {"initial_backoff_s": 0.05, "max_backoff_s": 0.1, "max_attempts": 3}}


class Gateway:
    """Records every notify request; answers from ``answers`` in order, then 200 {}."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await self.received.put(await request.json())
        status, answer = self.answers.pop(0) if self.answers else (200, {"rejected": []})
        return web.json_response(answer, status=status)

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(5):
            return await self.received.get()

    async def nothing_more(self, wait: float = 0.3) -> None:
        await asyncio.sleep(wait)
        assert self.received.empty(), self.received.get_nowait()


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    app = web.Application()
    app.router.add_post(NOTIFY, gw.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    gw.url = f"http://127.0.0.1:{port}{NOTIFY}"
    yield gw
    await runner.cleanup()


async def set_pusher(client: Client, gateway: Gateway, pushkey: str = "key-1",
                     **data: Any) -> None:
    response = await client.post(f"{V3}/pushers/set", {
        "kind": "http", "app_id": "org.example.app", "pushkey": pushkey,
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "data": {"url": gateway.url, **data},
    })
    assert response.status == 200, response


async def room_with(alice: Client, bob: Client, **create: Any) -> str:
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat", **create})).json[
        "room_id"]
    assert (await bob.post(f"{V3}/join/{room_id}", {})).status == 200
    return str(room_id)


async def send(client: Client, room_id: str, txn: str, content: dict[str, Any]) -> str:
    response = await client.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/{txn}",
                                    content)
    assert response.status == 200, response
    return str(response.json["event_id"])


async def pushers_of(client: Client) -> list[dict[str, Any]]:
    return list((await client.get(f"{V3}/pushers")).json["pushers"])


async def test_mention_reaches_the_gateway_with_highlight(
        homeserver: RunningServer, gateway: Gateway) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    carol = await user(homeserver, "carol")
    assert (await alice.request("PUT", f"{V3}/profile/@alice:test.local/displayname",
                                {"displayname": "Alice A."})).status == 200
    room_id = await room_with(alice, bob, name="Launch pad")
    assert (await carol.post(f"{V3}/join/{room_id}", {})).status == 200
    await set_pusher(bob, gateway, custom="kept")
    await set_pusher(alice, gateway, pushkey="alice-key")  # the sender is never notified
    content = {"msgtype": "m.text", "body": "bob: lift-off?",
               "m.mentions": {"user_ids": ["@bob:test.local"]}}
    event_id = await send(alice, room_id, "1", content)

    body = await gateway.next()
    notification = body["notification"]
    device = notification.pop("devices")
    assert notification == {
        "event_id": event_id, "room_id": room_id, "type": "m.room.message",
        "sender": "@alice:test.local", "sender_display_name": "Alice A.",
        "room_name": "Launch pad", "prio": "high", "content": content,
        "counts": {"unread": 1},
    }
    assert len(device) == 1
    assert isinstance(device[0].pop("pushkey_ts"), int)
    assert device[0] == {"app_id": "org.example.app", "pushkey": "key-1",
                         "data": {"custom": "kept"},  # everything but the url
                         "tweaks": {"sound": "default", "highlight": True}}
    # A plain message in a three-member room notifies without tweaks: low priority.
    await send(alice, room_id, "2", {"msgtype": "m.text", "body": "anyone?"})
    plain = (await gateway.next())["notification"]
    assert plain["prio"] == "low" and plain["counts"] == {"unread": 2}
    assert "tweaks" not in plain["devices"][0]
    await gateway.nothing_more()


async def test_event_id_only_format(homeserver: RunningServer, gateway: Gateway) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await room_with(alice, bob)
    await set_pusher(bob, gateway, format="event_id_only")
    event_id = await send(alice, room_id, "1", {"msgtype": "m.text", "body": "secret"})
    body = await gateway.next()
    device = body["notification"]["devices"][0]
    assert isinstance(device.pop("pushkey_ts"), int)
    assert body == {"notification": {
        "event_id": event_id, "room_id": room_id, "counts": {"unread": 1},
        "devices": [{"app_id": "org.example.app", "pushkey": "key-1",
                     "data": {"format": "event_id_only"}}],
    }}


async def test_retries_a_failing_gateway_then_gives_up(
        start_server: ServerFactory, gateway: Gateway) -> None:
    server = await start_server(**FAST_RETRIES)
    alice = await user(server, "alice")
    bob = await user(server, "bob")
    room_id = await room_with(alice, bob)
    await set_pusher(bob, gateway)

    gateway.answers = [(500, {"error": "try later"})]
    first = await send(alice, room_id, "1", {"msgtype": "m.text", "body": "one"})
    assert (await gateway.next())["notification"]["event_id"] == first
    assert (await gateway.next())["notification"]["event_id"] == first  # the retry succeeds
    await gateway.nothing_more()

    gateway.answers = [(503, {})] * 3  # every attempt fails: given up after max_attempts
    second = await send(alice, room_id, "2", {"msgtype": "m.text", "body": "two"})
    for _ in range(3):
        assert (await gateway.next())["notification"]["event_id"] == second
    await gateway.nothing_more()

    third = await send(alice, room_id, "3", {"msgtype": "m.text", "body": "three"})
    assert (await gateway.next())["notification"]["event_id"] == third  # not stuck
    assert await pushers_of(bob) != []


async def test_rejected_pushkey_removes_the_pusher(
        homeserver: RunningServer, gateway: Gateway) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await room_with(alice, bob)
    await set_pusher(bob, gateway, pushkey="stale")
    gateway.answers = [(200, {"rejected": ["stale"]})]
    await send(alice, room_id, "1", {"msgtype": "m.text", "body": "hello"})
    assert (await gateway.next())["notification"]["devices"][0]["pushkey"] == "stale"
    for _ in range(50):
        if not await pushers_of(bob):
            break
        await asyncio.sleep(0.05)
    assert await pushers_of(bob) == []
    await send(alice, room_id, "2", {"msgtype": "m.text", "body": "still there?"})
    await gateway.nothing_more()


async def test_unread_count_follows_the_read_receipt(
        homeserver: RunningServer, gateway: Gateway) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await room_with(alice, bob)
    await set_pusher(bob, gateway)
    first = await send(alice, room_id, "1", {"msgtype": "m.text", "body": "one"})
    assert (await gateway.next())["notification"]["counts"] == {"unread": 1}
    await send(alice, room_id, "2", {"msgtype": "m.text", "body": "two"})
    assert (await gateway.next())["notification"]["counts"] == {"unread": 2}
    assert (await bob.post(f"{V3}/rooms/{room_id}/receipt/m.read/{first}", {})).status == 200
    await send(alice, room_id, "3", {"msgtype": "m.text", "body": "three"})
    assert (await gateway.next())["notification"]["counts"] == {"unread": 2}


async def test_invite_notifies_the_invitee(homeserver: RunningServer, gateway: Gateway) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    await set_pusher(bob, gateway)
    room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    assert (await alice.post(f"{V3}/rooms/{room_id}/invite",
                             {"user_id": "@bob:test.local"})).status == 200
    notification = (await gateway.next())["notification"]
    assert notification["type"] == "m.room.member"
    assert notification["user_is_target"] is True
    assert notification["membership"] == "invite"
    assert notification["devices"][0]["tweaks"] == {"sound": "default"}


async def test_push_can_be_switched_off(start_server: ServerFactory, gateway: Gateway) -> None:
    server = await start_server(push={"enabled": False})
    alice = await user(server, "alice")
    bob = await user(server, "bob")
    room_id = await room_with(alice, bob)
    await set_pusher(bob, gateway)
    await send(alice, room_id, "1", {"msgtype": "m.text", "body": "quiet"})
    await server.services.push_delivery.flush()
    await gateway.nothing_more()
    listed = (await bob.get(f"{V3}/notifications")).json["notifications"]
    assert len(listed) == 1  # still recorded for /notifications


async def test_concurrent_events_are_each_pushed_once(
        homeserver: RunningServer, gateway: Gateway) -> None:
    # Events of different rooms persist, and are evaluated, out of stream order; a pusher
    # must still deliver each one (none skipped by a later one moving its position past it).
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    rooms = [await room_with(alice, bob) for _ in range(4)]
    await set_pusher(bob, gateway, format="event_id_only")
    sent = await asyncio.gather(*(
        send(alice, room_id, f"t{i}", {"msgtype": "m.text", "body": f"m{i}"})
        for i in range(10) for room_id in rooms))
    pushed = [(await gateway.next())["notification"]["event_id"] for _ in sent]
    assert sorted(pushed) == sorted(sent)
    await gateway.nothing_more()


async def test_pusher_never_moves_past_an_event_still_being_written(
        homeserver: RunningServer, gateway: Gateway) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await room_with(alice, bob)
    await set_pusher(bob, gateway, format="event_id_only")
    earlier = await send(alice, room_id, "1", {"msgtype": "m.text", "body": "one"})
    assert (await gateway.next())["notification"]["event_id"] == earlier
    stream = homeserver.services.timeline.stream
    held = stream.allocate()  # an event of another room, still being written
    later = await send(alice, room_id, "2", {"msgtype": "m.text", "body": "two"})
    await gateway.nothing_more()  # waits: the held event may notify too, and comes first
    await NotificationStore(homeserver.services.db).add([Notification(
        "@bob:test.local", held, room_id, earlier, ["notify"], False, int(time.time() * 1000))])
    stream.finish(held)
    pushed = [(await gateway.next())["notification"]["event_id"] for _ in range(2)]
    assert pushed == [earlier, later]


async def test_undelivered_pushes_resume_after_a_restart(
        start_server: ServerFactory, gateway: Gateway) -> None:
    server = await start_server(push={"initial_backoff_s": 60.0})
    alice = await user(server, "alice")
    bob = await user(server, "bob")
    room_id = await room_with(alice, bob)
    await set_pusher(bob, gateway)
    gateway.answers = [(502, {})]
    event_id = await send(alice, room_id, "1", {"msgtype": "m.text", "body": "one"})
    assert (await gateway.next())["notification"]["event_id"] == event_id
    delivery = server.services.push_delivery
    await delivery.stop()  # while waiting a minute to retry
    await delivery.start()
    assert (await gateway.next())["notification"]["event_id"] == event_id
    await gateway.nothing_more()
