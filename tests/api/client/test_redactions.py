"""Redactions and unsigned.transaction_id over HTTP."""

from __future__ import annotations

from harness import RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"



async def test_redact_own_and_others(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    await bob.post(f"{V3}/join/{room_id}", {})
    secret = (await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/1",
                                  {"msgtype": "m.text", "body": "oops"})).json["event_id"]
    bobs = (await bob.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/1",
                              {"msgtype": "m.text", "body": "mine"})).json["event_id"]

    denied = await bob.request("PUT", f"{V3}/rooms/{room_id}/redact/{secret}/r1", {})
    assert denied.status == 403 and denied.json["errcode"] == "M_FORBIDDEN"
    own = await bob.request("PUT", f"{V3}/rooms/{room_id}/redact/{bobs}/r2",
                            {"reason": "typo"})
    assert own.status == 200
    redaction = await alice.request("PUT", f"{V3}/rooms/{room_id}/redact/{secret}/r3",
                                    {"reason": "spam"})
    assert redaction.status == 200
    again = await alice.request("PUT", f"{V3}/rooms/{room_id}/redact/{secret}/r3",
                                {"reason": "spam"})
    assert again.json == redaction.json  # idempotent per transaction ID

    got = (await bob.get(f"{V3}/rooms/{room_id}/event/{secret}")).json
    assert got["content"] == {}
    because = got["unsigned"]["redacted_because"]
    assert because["event_id"] == redaction.json["event_id"]
    assert because["redacts"] == secret and because["content"]["reason"] == "spam"

    timeline = (await bob.get(f"{V3}/sync")).json["rooms"]["join"][room_id]["timeline"]
    by_id = {e["event_id"]: e for e in timeline["events"]}
    assert by_id[secret]["content"] == {} and by_id[bobs]["content"] == {}

    unknown = await alice.request("PUT", f"{V3}/rooms/{room_id}/redact/$nope/r4", {})
    assert unknown.status == 404
    other_room = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    wrong_room = await alice.request("PUT", f"{V3}/rooms/{other_room}/redact/{secret}/r5", {})
    assert wrong_room.status == 400


async def test_transaction_id_only_for_the_sending_device(homeserver: RunningServer) -> None:
    phone = await user(homeserver, "alice")
    laptop = await user(homeserver, "alice")
    room_id = (await phone.post(f"{V3}/createRoom", {})).json["room_id"]
    event_id = (await phone.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/echo-1",
                                    {"body": "hi"})).json["event_id"]

    def find(sync_body: dict) -> dict:
        events = sync_body["rooms"]["join"][room_id]["timeline"]["events"]
        return next(e for e in events if e["event_id"] == event_id)

    assert find((await phone.get(f"{V3}/sync")).json)["unsigned"]["transaction_id"] == "echo-1"
    assert "transaction_id" not in find((await laptop.get(f"{V3}/sync")).json)["unsigned"]
    direct = (await phone.get(f"{V3}/rooms/{room_id}/event/{event_id}")).json
    assert direct["unsigned"]["transaction_id"] == "echo-1"
