"""Pushers (/pushers, /pushers/set) and the notification list (/notifications)."""

from __future__ import annotations

from typing import Any

from harness import Client, RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"
URL = "https://push.example.org/_matrix/push/v1/notify"


def pusher(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "http", "app_id": "org.example.app", "pushkey": "key-1",
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "data": {"url": URL, "format": "event_id_only"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


async def listed(client: Client) -> list[dict[str, Any]]:
    response = await client.get(f"{V3}/pushers")
    assert response.status == 200, response
    return list(response.json["pushers"])


async def test_set_list_update_and_delete(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    assert await listed(alice) == []
    assert (await alice.post(f"{V3}/pushers/set", pusher(profile_tag="tag"))).json == {}
    assert await listed(alice) == [{
        "pushkey": "key-1", "kind": "http", "app_id": "org.example.app",
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "profile_tag": "tag", "data": {"url": URL, "format": "event_id_only"},
    }]
    # Same app ID and pushkey: replaced, not added.
    assert (await alice.post(f"{V3}/pushers/set",
                             pusher(device_display_name="Tablet"))).status == 200
    [only] = await listed(alice)
    assert only["device_display_name"] == "Tablet" and "profile_tag" not in only
    assert (await alice.post(f"{V3}/pushers/set", pusher(pushkey="key-2"))).status == 200
    assert {p["pushkey"] for p in await listed(alice)} == {"key-1", "key-2"}
    # kind null deletes; the other fields are then not needed.
    delete = {"kind": None, "app_id": "org.example.app", "pushkey": "key-1"}
    assert (await alice.post(f"{V3}/pushers/set", delete)).status == 200
    assert [p["pushkey"] for p in await listed(alice)] == ["key-2"]
    assert (await alice.post(f"{V3}/pushers/set", delete)).status == 200  # already gone
    # Also under r0, which older clients use.
    assert (await alice.get("/_matrix/client/r0/pushers")).status == 200


async def test_append_keeps_other_users_pushers(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    assert (await alice.post(f"{V3}/pushers/set", pusher())).status == 200
    assert (await bob.post(f"{V3}/pushers/set", pusher(append=True))).status == 200
    assert len(await listed(alice)) == 1 and len(await listed(bob)) == 1
    # Without append, the same app ID and pushkey of any other user is removed.
    assert (await bob.post(f"{V3}/pushers/set", pusher())).status == 200
    assert await listed(alice) == [] and len(await listed(bob)) == 1


async def test_set_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")

    async def error(body: Any, **kw: Any) -> tuple[int, str]:
        response = await alice.post(f"{V3}/pushers/set", body, **kw)
        return response.status, response.json.get("errcode")

    missing = await alice.post(f"{V3}/pushers/set", pusher(lang=..., data=...))
    assert missing.status == 400 and missing.json["errcode"] == "M_MISSING_PARAM"
    assert "lang" in missing.json["error"] and "data" in missing.json["error"]
    assert await error(pusher(kind=...)) == (400, "M_MISSING_PARAM")
    assert await error({"kind": None, "app_id": "org.example.app"}) == (400, "M_MISSING_PARAM")
    assert await error(pusher(data={"format": "event_id_only"})) == (400, "M_MISSING_PARAM")
    for url in ("https://push.example.org/notify", "https://push.example.org/_matrix/push/v1",
                "ftp://push.example.org/_matrix/push/v1/notify", "not a url"):
        assert await error(pusher(data={"url": url})) == (400, "M_INVALID_PARAM"), url
    assert await error(pusher(kind="carrier-pigeon")) == (400, "M_INVALID_PARAM")
    assert await error(pusher(pushkey="k" * 513)) == (400, "M_INVALID_PARAM")
    assert await error(pusher(app_id="a" * 65)) == (400, "M_INVALID_PARAM")
    assert await error(pusher(kind="email", app_id="m.email",
                              pushkey="alice@example.org")) == (400, "M_THREEPID_NOT_FOUND")
    assert await error(pusher(pushkey=5)) == (400, "M_BAD_JSON")
    assert await error(pusher(data="url")) == (400, "M_BAD_JSON")
    assert await error(pusher(data={"url": 1})) == (400, "M_BAD_JSON")
    assert await error(pusher(append="yes")) == (400, "M_BAD_JSON")
    assert await error(pusher(kind=1)) == (400, "M_BAD_JSON")
    assert await error(None, data=b"{not json") == (400, "M_NOT_JSON")
    assert await error(pusher(), token="nonsense") == (401, "M_UNKNOWN_TOKEN")
    assert await listed(alice) == []


async def test_notifications_list(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    assert (await bob.post(f"{V3}/join/{room_id}", {})).status == 200
    sent = []
    for txn, content in enumerate([
        {"msgtype": "m.text", "body": "hello"},
        {"msgtype": "m.text", "body": "bob?", "m.mentions": {"user_ids": ["@bob:test.local"]}},
        {"msgtype": "m.notice", "body": "a notice never notifies"},
        {"msgtype": "m.text", "body": "anyone"},
    ]):
        response = await alice.request(
            "PUT", f"{V3}/rooms/{room_id}/send/m.room.message/{txn}", content)
        sent.append(response.json["event_id"])
    await homeserver.services.push_delivery.flush()

    page = (await bob.get(f"{V3}/notifications")).json
    assert "next_token" not in page
    notes = page["notifications"]
    assert [n["event"]["event_id"] for n in notes] == [sent[3], sent[1], sent[0]]
    assert all(n["room_id"] == room_id and not n["read"] for n in notes)
    assert all(isinstance(n["ts"], int) and "room_id" not in n["event"] for n in notes)
    assert notes[1]["actions"] == ["notify", {"set_tweak": "sound", "value": "default"},
                                   {"set_tweak": "highlight"}]
    assert notes[1]["event"]["content"]["body"] == "bob?"
    assert (await alice.get(f"{V3}/notifications")).json == {"notifications": []}

    highlights = (await bob.get(f"{V3}/notifications?only=highlight")).json["notifications"]
    assert [n["event"]["event_id"] for n in highlights] == [sent[1]]

    # The read receipt marks everything up to and including its event as read.
    assert (await bob.post(f"{V3}/rooms/{room_id}/receipt/m.read/{sent[1]}", {})).status == 200
    notes = (await bob.get(f"{V3}/notifications")).json["notifications"]
    assert [n["read"] for n in notes] == [False, True, True]

    first = (await bob.get(f"{V3}/notifications?limit=2")).json
    assert len(first["notifications"]) == 2
    rest = (await bob.get(f"{V3}/notifications?limit=2&from={first['next_token']}")).json
    assert [n["event"]["event_id"] for n in rest["notifications"]] == [sent[0]]
    assert "next_token" not in rest
    assert (await bob.get(f"{V3}/notifications?from=nonsense")).status == 400
    assert (await bob.get(f"{V3}/notifications?limit=x")).status == 400


async def test_pushers_go_with_their_device(homeserver) -> None:
    from harness import logged_in_user

    phone = await logged_in_user(homeserver, "pat")
    laptop = await logged_in_user(homeserver, "pat")
    body = {"kind": "http", "app_id": "org.example.app", "pushkey": "key-phone",
            "app_display_name": "App", "device_display_name": "Phone", "lang": "en",
            "data": {"url": "http://127.0.0.1:9/_matrix/push/v1/notify"}}
    assert (await phone.post("/_matrix/client/v3/pushers/set", body)).status == 200
    assert len((await laptop.get("/_matrix/client/v3/pushers")).json["pushers"]) == 1
    assert (await phone.post("/_matrix/client/v3/logout")).status == 200
    assert (await laptop.get("/_matrix/client/v3/pushers")).json["pushers"] == []
