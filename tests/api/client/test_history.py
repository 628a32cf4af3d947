"""/messages and /context over HTTP."""

from __future__ import annotations

import json
from urllib.parse import quote

from harness import Client, RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"



async def room_with_messages(alice: Client, n: int) -> tuple[str, list[str]]:
    room_id = (await alice.post(f"{V3}/createRoom", {})).json["room_id"]
    ids = []
    for i in range(n):
        resp = await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/{i}",
                                   {"msgtype": "m.text", "body": f"m{i}"})
        ids.append(resp.json["event_id"])
    return room_id, ids


async def paginate(client: Client, room_id: str, token: str | None, direction: str,
                   limit: int, filt: str | None = None) -> list[dict]:
    pages = []
    while True:
        query = f"dir={direction}&limit={limit}"
        if token:
            query += f"&from={quote(token)}"
        if filt:
            query += f"&filter={quote(filt)}"
        resp = await client.get(f"{V3}/rooms/{room_id}/messages?{query}")
        assert resp.status == 200, resp
        pages.append(resp.json)
        token = resp.json.get("end")
        if token is None or not resp.json["chunk"]:
            return pages


async def test_backwards_from_sync_prev_batch(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id, ids = await room_with_messages(alice, 25)
    synced = (await alice.get(f"{V3}/sync")).json["rooms"]["join"][room_id]["timeline"]
    assert [e["event_id"] for e in synced["events"]] == ids[-10:]
    pages = await paginate(alice, room_id, synced["prev_batch"], "b", 7)
    seen = [e["event_id"] for p in pages for e in p["chunk"]]
    messages = [e for e in seen if e in ids]
    assert messages == list(reversed(ids[:-10]))  # newest first, nothing skipped or repeated
    assert len(seen) == len(set(seen))
    everything = [e for p in pages for e in p["chunk"]]
    assert everything[-1]["type"] == "m.room.create"  # all the way back to the start
    assert all(len(p["chunk"]) <= 7 for p in pages)


async def test_forwards_and_default_from(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id, ids = await room_with_messages(alice, 12)
    backwards = await paginate(alice, room_id, None, "b", 100)
    assert backwards[0]["chunk"][0]["event_id"] == ids[-1]
    forwards = await paginate(alice, room_id, None, "f", 5)
    seen = [e["event_id"] for p in forwards for e in p["chunk"]]
    assert [e for e in seen if e in ids] == ids
    assert forwards[0]["chunk"][0]["type"] == "m.room.create"


async def test_a_page_ending_at_the_room_start_has_no_end_token(
        homeserver: RunningServer) -> None:
    # Each batch is read as the page plus one more row: a page holding exactly the room's
    # oldest events must still say that nothing comes before them.
    alice = await user(homeserver, "alice")
    room_id, ids = await room_with_messages(alice, 7)
    everything = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit=100")).json
    total = len(everything["chunk"])
    assert "end" not in everything
    exact = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit={total}")).json
    assert len(exact["chunk"]) == total and "end" not in exact
    short = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit={total - 1}")).json
    assert len(short["chunk"]) == total - 1 and "end" in short
    rest = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit=5"
                            f"&from={quote(short['end'])}")).json
    assert [e["type"] for e in rest["chunk"]] == ["m.room.create"] and "end" not in rest
    assert [e["event_id"] for e in exact["chunk"][:7]] == list(reversed(ids))


async def test_filter_and_to_token(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id, ids = await room_with_messages(alice, 6)
    only_messages = json.dumps({"types": ["m.room.message"]})
    pages = await paginate(alice, room_id, None, "b", 4, only_messages)
    assert [e["event_id"] for p in pages for e in p["chunk"]] == list(reversed(ids))
    first = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit=2")).json
    later = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=f&limit=50&from="
                             f"{quote(first['end'])}&to={quote(first['start'])}")).json
    # Forwards from the page's end back to its start: the same two events, oldest first.
    assert [e["event_id"] for e in later["chunk"]] == [ids[4], ids[5]]
    assert [e["event_id"] for e in first["chunk"]] == [ids[5], ids[4]]


async def test_messages_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id, _ = await room_with_messages(alice, 1)
    assert (await bob.get(f"{V3}/rooms/{room_id}/messages?dir=b")).status == 403
    bad = await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&from=nonsense")
    assert bad.status == 400 and bad.json["errcode"] == "M_INVALID_PARAM"
    bad_dir = await alice.get(f"{V3}/rooms/{room_id}/messages?dir=up")
    assert bad_dir.status == 400
    bad_filter = await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&filter=%7B")
    assert bad_filter.status == 400 and bad_filter.json["errcode"] == "M_NOT_JSON"


async def test_left_user_sees_history_until_leaving(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    await bob.post(f"{V3}/join/{room_id}", {})
    before = (await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/a",
                                  {"body": "while bob is here"})).json["event_id"]
    await bob.post(f"{V3}/rooms/{room_id}/leave", {})
    after = (await alice.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/b",
                                 {"body": "after bob left"})).json["event_id"]
    pages = await paginate(bob, room_id, None, "b", 50)
    seen = {e["event_id"] for p in pages for e in p["chunk"]}
    assert before in seen and after not in seen
    hidden = await bob.get(f"{V3}/rooms/{room_id}/context/{after}")
    assert hidden.status == 404


async def test_context(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id, ids = await room_with_messages(alice, 9)
    resp = await alice.get(f"{V3}/rooms/{room_id}/context/{ids[4]}?limit=4")
    assert resp.status == 200, resp
    body = resp.json
    assert body["event"]["event_id"] == ids[4]
    assert [e["event_id"] for e in body["events_before"]] == [ids[3], ids[2]]
    assert [e["event_id"] for e in body["events_after"]] == [ids[5], ids[6]]
    assert {(e["type"], e["state_key"]) for e in body["state"]} >= {("m.room.create", "")}
    after = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=f&limit=2&from="
                             f"{quote(body['end'])}")).json
    assert [e["event_id"] for e in after["chunk"]] == [ids[7], ids[8]]
    missing = await alice.get(f"{V3}/rooms/{room_id}/context/$nope")
    assert missing.status == 404
