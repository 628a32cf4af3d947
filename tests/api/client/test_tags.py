"""Room tags over HTTP and through /sync."""

from __future__ import annotations

from harness import RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"


async def test_tags(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    base = f"{V3}/user/@alice:test.local/rooms/{room_id}/tags"
    assert (await alice.get(base)).json == {"tags": {}}
    assert (await alice.request("PUT", f"{base}/m.favourite", {"order": 0.25})).status == 200
    assert (await alice.request("PUT", f"{base}/u.work", {})).status == 200
    assert (await alice.get(base)).json == {"tags": {"m.favourite": {"order": 0.25},
                                                     "u.work": {}}}
    synced = (await alice.get(f"{V3}/sync")).json["rooms"]["join"][room_id]["account_data"]
    assert {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.25},
                                                  "u.work": {}}}} in synced["events"]
    assert (await alice.request("DELETE", f"{base}/u.work")).status == 200
    assert (await alice.request("DELETE", f"{base}/u.nothing")).status == 200
    assert (await alice.get(base)).json == {"tags": {"m.favourite": {"order": 0.25}}}
    other = await alice.get(f"{V3}/user/@bob:test.local/rooms/{room_id}/tags")
    assert other.status == 403
    bad = await alice.request("PUT", f"{base}/" + "x" * 300, {})
    assert bad.status == 400
    shape = await alice.request("PUT", f"{base}/m.lowpriority", {"order": "high"})
    assert shape.status == 400 and shape.json["errcode"] == "M_BAD_JSON"
