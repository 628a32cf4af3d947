"""POST/GET /user/{userId}/filter over HTTP."""

from __future__ import annotations

from harness import RunningServer

FILTER = {"room": {"timeline": {"limit": 10, "types": ["m.room.message"],
                                "not_senders": ["@spam:x"]}},
          "event_fields": ["type", "content"], "presence": {"not_types": ["*"]}}


async def test_upload_and_download(homeserver: RunningServer) -> None:
    await homeserver.services.auth.register("alice", "pw")
    client = homeserver.client
    await client.login("alice", "pw")
    up = await client.post("/_matrix/client/v3/user/@alice:test.local/filter", FILTER)
    assert up.status == 200, up
    filter_id = up.json["filter_id"]
    assert not filter_id.startswith("{")
    down = await client.get(f"/_matrix/client/v3/user/@alice:test.local/filter/{filter_id}")
    assert down.status == 200
    assert down.json["room"]["timeline"] == FILTER["room"]["timeline"]
    assert down.json["event_fields"] == ["type", "content"]
    again = await client.post("/_matrix/client/v3/user/@alice:test.local/filter", FILTER)
    assert again.json["filter_id"] == filter_id  # same filter, same ID
    other = await client.post("/_matrix/client/v3/user/@alice:test.local/filter", {})
    assert other.json["filter_id"] != filter_id


async def test_filter_errors(homeserver: RunningServer) -> None:
    await homeserver.services.auth.register("alice", "pw")
    await homeserver.services.auth.register("bob", "pw")
    client = homeserver.client
    await client.login("bob", "pw")
    base = "/_matrix/client/v3/user/@alice:test.local/filter"
    assert (await client.post(base, {})).json["errcode"] == "M_FORBIDDEN"
    own = "/_matrix/client/v3/user/@bob:test.local/filter"
    assert (await client.get(own + "/999")).status == 404
    assert (await client.get(own + "/abc")).status == 404
    assert (await client.get(base + "/0")).status == 403
    bad = await client.post(own, {"room": {"timeline": {"limit": "ten"}}})
    assert bad.status == 400 and bad.json["errcode"] == "M_BAD_JSON"
    anon = await homeserver.client.post(own, {}, token="")
    assert anon.status == 401
