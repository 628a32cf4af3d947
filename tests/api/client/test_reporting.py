"""Reporting events, rooms and users over real HTTP, and what reaches the admins' table."""

from __future__ import annotations

from typing import Any

from myelin.storage.stores.reports import Report, ReportStore

from harness import Client, RunningServer
from harness import logged_in_user as user
from server_fixtures import ServerFactory

V3 = "/_matrix/client/v3"


async def reports(server: RunningServer) -> list[Report]:
    return list(reversed(await ReportStore(server.services.db).recent()))


async def create_room(client: Client, **body: Any) -> str:
    resp = await client.post(f"{V3}/createRoom", body)
    assert resp.status == 200, resp
    return str(resp.json["room_id"])


async def send(client: Client, room_id: str, text: str) -> str:
    resp = await client.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/{text}",
                                {"msgtype": "m.text", "body": text})
    assert resp.status == 200, resp
    return str(resp.json["event_id"])


async def test_report_event(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room = await create_room(alice, preset="public_chat")
    assert (await bob.post(f"{V3}/join/{room}", {})).status == 200
    event = await send(alice, room, "spam")
    resp = await bob.post(f"{V3}/rooms/{room}/report/{event}", {"reason": "spam", "score": -100})
    assert resp.status == 200 and resp.json == {}
    # reason is optional; r0 still serves this endpoint.
    assert (await bob.post(f"/_matrix/client/r0/rooms/{room}/report/{event}", {})).status == 200
    stored = await reports(homeserver)
    assert [(r.kind, r.reporter, r.room_id, r.event_id, r.reason, r.score) for r in stored] == [
        ("event", "@bob:test.local", room, event, "spam", -100),
        ("event", "@bob:test.local", room, event, None, None)]
    assert stored[0].content == {"reason": "spam", "score": -100}
    assert stored[0].received_ts > 0 and stored[0].report_id < stored[1].report_id


async def test_report_event_not_found_cases(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    carol = await user(homeserver, "carol")
    room = await create_room(alice, preset="public_chat")
    other_room = await create_room(alice, preset="public_chat")
    assert (await bob.post(f"{V3}/join/{room}", {})).status == 200
    event = await send(alice, room, "one")
    elsewhere = await send(alice, other_room, "two")
    redacted = await send(alice, room, "three")
    assert (await alice.request("PUT", f"{V3}/rooms/{room}/redact/{redacted}/r1",
                                {})).status == 200
    # A joined-only room whose history bob cannot see from before he joined.
    secret = await create_room(alice, preset="public_chat", initial_state=[{
        "type": "m.room.history_visibility", "state_key": "",
        "content": {"history_visibility": "joined"}}])
    hidden = await send(alice, secret, "before")
    assert (await bob.post(f"{V3}/join/{secret}", {})).status == 200

    cases = [
        (bob, room, "$unknown"),  # no such event
        (bob, room, elsewhere),  # an event of another room
        (bob, room, redacted),  # redacted
        (bob, secret, hidden),  # not visible to the reporter
        (carol, room, event),  # the reporter is not joined
        (bob, "!nowhere:test.local", event),  # no such room
    ]
    for client, room_id, event_id in cases:
        resp = await client.post(f"{V3}/rooms/{room_id}/report/{event_id}", {"reason": "x"})
        assert resp.status == 404 and resp.json["errcode"] == "M_NOT_FOUND", (room_id, event_id)
    # After leaving, the event can no longer be reported.
    assert (await bob.post(f"{V3}/rooms/{room}/leave", {})).status == 200
    resp = await bob.post(f"{V3}/rooms/{room}/report/{event}", {"reason": "x"})
    assert resp.status == 404
    assert await reports(homeserver) == []


async def test_report_event_bad_bodies(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room = await create_room(alice)
    event = await send(alice, room, "hi")
    path = f"{V3}/rooms/{room}/report/{event}"
    for body in ({"reason": 5}, {"score": "bad"}, {"score": 1.5}, {"score": True},
                 {"score": 2**60}):
        resp = await alice.post(path, body)
        assert resp.status == 400 and resp.json["errcode"] == "M_BAD_JSON", body
    assert (await alice.post(path, None)).json["errcode"] == "M_NOT_JSON"
    assert (await alice.post(path, {"reason": "ok"}, token="nope")).status == 401
    assert await reports(homeserver) == []


async def test_report_room(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room = await create_room(alice, preset="private_chat")
    # Not joined, not even invited: room reports are not restricted by membership.
    resp = await bob.post(f"{V3}/rooms/{room}/report", {"reason": "bad room"})
    assert resp.status == 200 and resp.json == {}
    assert (await bob.post(f"{V3}/rooms/{room}/report", {"reason": ""})).status == 200
    unknown = await bob.post(f"{V3}/rooms/!nowhere:test.local/report", {"reason": "x"})
    assert unknown.status == 404 and unknown.json["errcode"] == "M_NOT_FOUND"
    missing = await bob.post(f"{V3}/rooms/{room}/report", {})
    assert missing.status == 400 and missing.json["errcode"] == "M_BAD_JSON"
    assert (await bob.post(f"{V3}/rooms/{room}/report", {"reason": 1})).status == 400
    assert (await bob.post(f"/_matrix/client/r0/rooms/{room}/report",
                           {"reason": "x"})).status == 404  # added in v1.13: v3 only
    stored = await reports(homeserver)
    assert [(r.kind, r.reporter, r.room_id, r.reason) for r in stored] == [
        ("room", "@bob:test.local", room, "bad room"), ("room", "@bob:test.local", room, "")]


async def test_report_user(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    await user(homeserver, "bob")
    resp = await alice.post(f"{V3}/users/@bob:test.local/report", {"reason": "rude"})
    assert resp.status == 200 and resp.json == {}
    # Unknown and remote users: 200 as well, so existence is not disclosed, but nothing kept.
    for target in ("@nobody:test.local", "@bob:elsewhere.example"):
        resp = await alice.post(f"{V3}/users/{target}/report", {"reason": "x"})
        assert resp.status == 200 and resp.json == {}, target
    bad = await alice.post(f"{V3}/users/bob/report", {"reason": "x"})
    assert bad.status == 400 and bad.json["errcode"] == "M_INVALID_PARAM"
    long = await alice.post(f"{V3}/users/@bob:test.local/report", {"reason": "x" * 1001})
    assert long.status == 400 and long.json["errcode"] == "M_BAD_JSON"
    missing = await alice.post(f"{V3}/users/@bob:test.local/report", {})
    assert missing.status == 400 and missing.json["errcode"] == "M_BAD_JSON"
    stored = await reports(homeserver)
    assert [(r.kind, r.reporter, r.target_user, r.reason) for r in stored] == [
        ("user", "@alice:test.local", "@bob:test.local", "rude")]


async def test_reports_are_rate_limited(start_server: ServerFactory) -> None:
    server = await start_server(rate_limits={"enabled": True,
                                             "reports": {"per_second": 0.01, "burst": 2}})
    alice = await user(server, "alice")
    path = f"{V3}/users/@alice:test.local/report"
    assert [(await alice.post(path, {"reason": "x"})).status for _ in range(3)] == \
        [200, 200, 429]
