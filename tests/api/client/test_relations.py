"""Relations, threads and bundled aggregations over HTTP (and through ``serve_events``)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
from typing import Any
from urllib.parse import quote

import pytest

from myelin.errors import MatrixError
from myelin.services.rooms.client_format import serve_events
from myelin.services.rooms.history import HistoryService
from myelin.services.sync import SyncService

from harness import Client, RunningServer
from harness import logged_in_user as user

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"
_txn = itertools.count()


async def create_room(client: Client, **body: Any) -> str:
    resp = await client.post(f"{V3}/createRoom", {"preset": "public_chat", **body})
    assert resp.status == 200, resp
    return str(resp.json["room_id"])


async def send(client: Client, room_id: str, content: dict[str, Any],
               event_type: str = "m.room.message") -> str:
    resp = await client.request(
        "PUT", f"{V3}/rooms/{room_id}/send/{event_type}/t{next(_txn)}", content)
    assert resp.status == 200, resp
    return str(resp.json["event_id"])


async def redact(client: Client, room_id: str, event_id: str) -> None:
    resp = await client.request("PUT", f"{V3}/rooms/{room_id}/redact/{event_id}/r{next(_txn)}",
                                {})
    assert resp.status == 200, resp


def rel(rel_type: str, parent: str, body: str = "x", **more: Any) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body,
            "m.relates_to": {"rel_type": rel_type, "event_id": parent, **more}}


def edit(parent: str, body: str) -> dict[str, Any]:
    return {**rel("m.replace", parent, f"* {body}"),
            "m.new_content": {"msgtype": "m.text", "body": body}}


async def relations(client: Client, room_id: str, event_id: str, path: str = "",
                    **query: Any) -> dict[str, Any]:
    resp = await get_relations(client, room_id, event_id, path, **query)
    assert resp.status == 200, resp
    return dict(resp.json)


async def get_relations(client: Client, room_id: str, event_id: str, path: str = "",
                        **query: Any) -> Any:
    qs = "&".join(f"{k}={quote(str(v))}" for k, v in query.items())
    return await client.get(f"{V1}/rooms/{room_id}/relations/{event_id}{path}?{qs}")


def ids(chunk: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in chunk]


async def threads(client: Client, room_id: str, **query: Any) -> dict[str, Any]:
    qs = "&".join(f"{k}={quote(str(v))}" for k, v in query.items())
    resp = await client.get(f"{V1}/rooms/{room_id}/threads?{qs}")
    assert resp.status == 200, resp
    return dict(resp.json)


async def test_relations_paginate_and_filter(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await create_room(alice)
    root = await send(alice, room_id, {"msgtype": "m.text", "body": "root"})
    thread = [await send(alice, room_id, rel("m.thread", root, f"t{i}")) for i in range(7)]
    reaction = await send(alice, room_id, {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": root, "key": "👍"}}, "m.reaction")
    reference = await send(alice, room_id, rel("m.reference", root))
    await send(alice, room_id, {"body": "unrelated"})
    everything = [*thread, reaction, reference]

    first = await relations(alice, room_id, root)
    assert ids(first["chunk"]) == everything[::-1][:5]  # default limit 5, newest first
    assert "prev_batch" not in first and "recursion_depth" not in first
    seen, token, pages = ids(first["chunk"]), first.get("next_batch"), 1
    while token:
        page = await relations(alice, room_id, root, limit=3, **{"from": token})
        assert page["prev_batch"] == token
        seen += ids(page["chunk"])
        token, pages = page.get("next_batch"), pages + 1
    assert seen == everything[::-1] and pages == 3  # 5 + 3 + 1

    forwards = await relations(alice, room_id, root, dir="f", limit=50)
    assert ids(forwards["chunk"]) == everything and "next_batch" not in forwards
    only_threads = await relations(alice, room_id, root, "/m.thread", limit=50)
    assert ids(only_threads["chunk"]) == thread[::-1]
    reactions = await relations(alice, room_id, root, "/m.annotation/m.reaction")
    assert ids(reactions["chunk"]) == [reaction]
    assert (await relations(alice, room_id, root, "/m.annotation/m.room.message"))["chunk"] == []
    assert (await relations(alice, room_id, thread[0]))["chunk"] == []

    # "from" a later page, "to" an earlier one: the same range again.
    page1 = await relations(alice, room_id, root, limit=2)
    page2 = await relations(alice, room_id, root, limit=2, **{"from": page1["next_batch"]})
    between = await relations(alice, room_id, root, limit=10, dir="f",
                              **{"from": page2["next_batch"], "to": page1["next_batch"]})
    assert ids(between["chunk"]) == ids(page2["chunk"])[::-1]
    # A /messages or /sync token works as a starting point too.
    since = (await alice.get(f"{V3}/sync")).json["next_batch"]
    late = await send(alice, room_id, rel("m.thread", root, "late"))
    after_sync = await relations(alice, room_id, root, dir="f", **{"from": since})
    assert ids(after_sync["chunk"]) == [late]


async def test_recurse(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await create_room(alice)
    root = await send(alice, room_id, {"body": "root"})
    level1 = await send(alice, room_id, rel("m.thread", root))
    level2 = await send(alice, room_id, rel("m.reference", level1))
    level3 = await send(alice, room_id, {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": level2, "key": "k"}}, "m.reaction")
    await send(alice, room_id, rel("m.reference", level3))  # a fourth level: too deep

    direct = await relations(alice, room_id, root)
    assert ids(direct["chunk"]) == [level1] and "recursion_depth" not in direct
    no = await relations(alice, room_id, root, recurse="false")
    assert ids(no["chunk"]) == [level1] and no["recursion_depth"] == 1
    deep = await relations(alice, room_id, root, recurse="true")
    assert ids(deep["chunk"]) == [level3, level2, level1] and deep["recursion_depth"] == 3
    refs = await relations(alice, room_id, root, "/m.reference", recurse="true")
    assert ids(refs["chunk"]) == [level2]
    reactions = await relations(alice, room_id, root, "/m.annotation/m.reaction", recurse="true")
    assert ids(reactions["chunk"]) == [level3]
    paged = await relations(alice, room_id, root, recurse="true", limit=2)
    rest = await relations(alice, room_id, root, recurse="true",
                           **{"from": paged["next_batch"]})
    assert ids(paged["chunk"]) + ids(rest["chunk"]) == [level3, level2, level1]


async def test_edits(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await create_room(alice)
    await bob.post(f"{V3}/join/{room_id}", {})
    original = await send(alice, room_id, {"msgtype": "m.text", "body": "original"})
    # A thread root: GET /threads serves it with its bundled aggregations.
    await send(bob, room_id, rel("m.thread", original, "in thread"))
    first = await send(alice, room_id, edit(original, "first"))
    await asyncio.sleep(0.01)  # edits are ordered by origin_server_ts
    second = await send(alice, room_id, edit(original, "second"))
    await asyncio.sleep(0.01)
    # Invalid edits, all newer than the valid ones: none of them may win.
    await send(bob, room_id, edit(original, "not yours"))
    await send(alice, room_id, edit(original, "other type"), "m.room.other")
    await send(alice, room_id, rel("m.replace", original, "no m.new_content"))
    await alice.request("PUT", f"{V3}/rooms/{room_id}/state/m.room.message/k",
                        edit(original, "state"))
    edit_of_edit = await send(alice, room_id, edit(second, "edit of an edit"))

    async def served() -> dict[str, Any]:
        (root,) = (await threads(alice, room_id))["chunk"]
        assert root["event_id"] == original
        return dict(root)

    async def bundled() -> dict[str, Any]:
        return dict((await served())["unsigned"]["m.relations"])

    replace = (await bundled())["m.replace"]
    assert replace["event_id"] == second
    assert replace["content"]["m.new_content"]["body"] == "second"
    assert replace["sender"] == "@alice:test.local" and replace["type"] == "m.room.message"
    # The original's content is left intact; an edit gets no aggregations of its own.
    edits = await relations(alice, room_id, original, "/m.replace", limit=50)
    assert len(edits["chunk"]) == 6  # every m.replace child is listed, valid or not
    assert all("m.relations" not in e["unsigned"] for e in edits["chunk"])
    assert ids((await relations(alice, room_id, second))["chunk"]) == [edit_of_edit]

    await redact(alice, room_id, second)  # redacting the latest edit reverts to the one before
    assert (await bundled())["m.replace"]["event_id"] == first
    assert (await served())["content"]["body"] == "original"  # content is never replaced
    await redact(alice, room_id, original)  # a redacted original bundles no edit
    redacted = await served()
    assert redacted["content"] == {} and "m.replace" not in redacted["unsigned"]["m.relations"]
    assert "m.thread" in redacted["unsigned"]["m.relations"]


async def test_threads(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    carol = await user(homeserver, "carol")
    room_id = await create_room(alice)
    for member in (bob, carol):
        await member.post(f"{V3}/join/{room_id}", {})
    root_a = await send(alice, room_id, {"body": "a"})
    root_b = await send(bob, room_id, {"body": "b"})
    await send(carol, room_id, {"body": "not a thread"})
    await send(bob, room_id, rel("m.thread", root_a, "a1"))
    await send(alice, room_id, rel("m.thread", root_b, "b1"))
    latest_a = await send(bob, room_id, rel("m.thread", root_a, "a2"))

    listed = await threads(alice, room_id)
    assert ids(listed["chunk"]) == [root_a, root_b] and "next_batch" not in listed
    summary = listed["chunk"][0]["unsigned"]["m.relations"]["m.thread"]
    assert summary["count"] == 2 and summary["current_user_participated"] is True
    assert summary["latest_event"]["event_id"] == latest_a
    assert summary["latest_event"]["content"]["body"] == "a2"

    latest_b = await send(carol, room_id, rel("m.thread", root_b, "b2"))  # b is now newest
    listed = await threads(alice, room_id)
    assert ids(listed["chunk"]) == [root_b, root_a]
    assert listed["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["latest_event"][
        "event_id"] == latest_b
    first = await threads(alice, room_id, limit=1)
    assert ids(first["chunk"]) == [root_b]
    rest = await threads(alice, room_id, limit=1, **{"from": first["next_batch"]})
    assert ids(rest["chunk"]) == [root_a] and "next_batch" not in rest

    assert ids((await threads(carol, room_id, include="participated"))["chunk"]) == [root_b]
    assert ids((await threads(bob, room_id, include="participated"))["chunk"]) == [root_b,
                                                                                   root_a]
    carol_view = (await threads(carol, room_id))["chunk"]
    participation = {e["event_id"]: e["unsigned"]["m.relations"]["m.thread"][
        "current_user_participated"] for e in carol_view}
    assert participation == {root_b: True, root_a: False}

    # The latest thread event carries its own aggregations (here: an edit).
    fix = await send(carol, room_id, edit(latest_b, "b2, fixed"))
    listed = await threads(alice, room_id)
    latest = listed["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["latest_event"]
    assert latest["unsigned"]["m.relations"]["m.replace"]["event_id"] == fix
    # Thread events themselves are served with their relations too.
    in_thread = await relations(alice, room_id, root_b, "/m.thread")
    assert in_thread["chunk"][0]["unsigned"]["m.relations"]["m.replace"]["event_id"] == fix

    # Redacted thread events drop out of the count, the latest event and the ordering.
    await redact(carol, room_id, latest_b)
    listed = await threads(alice, room_id)
    assert ids(listed["chunk"]) == [root_a, root_b]
    summary = listed["chunk"][1]["unsigned"]["m.relations"]["m.thread"]
    assert summary["count"] == 1 and summary["latest_event"]["content"]["body"] == "b1"
    assert ids((await threads(carol, room_id, include="participated"))["chunk"]) == []
    await redact(alice, room_id, ids((await relations(alice, room_id, root_b))["chunk"])[0])
    assert ids((await threads(alice, room_id))["chunk"]) == [root_a]


async def test_references_and_redacted_relations(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await create_room(alice)
    root = await send(alice, room_id, {"body": "root"})
    child = await send(alice, room_id, rel("m.thread", root))
    ref1 = await send(alice, room_id, rel("m.reference", child))
    ref2 = await send(alice, room_id, rel("m.reference", child))

    async def child_relations() -> dict[str, Any]:
        (served,) = (await relations(alice, room_id, root))["chunk"]
        return dict(served["unsigned"].get("m.relations", {}))

    assert await child_relations() == {"m.reference": {"chunk": [{"event_id": ref1},
                                                                 {"event_id": ref2}]}}
    await redact(alice, room_id, ref1)
    assert await child_relations() == {"m.reference": {"chunk": [{"event_id": ref2}]}}
    assert ids((await relations(alice, room_id, child))["chunk"]) == [ref2]
    await redact(alice, room_id, ref2)
    assert await child_relations() == {}
    # A redacted parent keeps its children (only the child's redaction breaks a relation).
    await redact(alice, room_id, root)
    assert ids((await relations(alice, room_id, root))["chunk"]) == [child]
    (listed,) = (await threads(alice, room_id))["chunk"]
    assert listed["event_id"] == root and listed["content"] == {}
    assert listed["unsigned"]["m.relations"]["m.thread"]["count"] == 1


async def test_history_visibility(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    room_id = await create_room(alice, initial_state=[{
        "type": "m.room.history_visibility", "state_key": "",
        "content": {"history_visibility": "joined"}}])
    hidden_root = await send(alice, room_id, {"body": "before bob"})
    await send(alice, room_id, rel("m.thread", hidden_root))
    await bob.post(f"{V3}/join/{room_id}", {})
    root = await send(alice, room_id, {"body": "while bob is here"})
    seen = await send(alice, room_id, rel("m.thread", root, "seen"))
    hidden_edit = await send(alice, room_id, edit(root, "edited before bob left"))
    assert hidden_edit
    await bob.post(f"{V3}/rooms/{room_id}/leave", {})
    unseen = await send(alice, room_id, rel("m.thread", root, "after bob left"))

    assert (await get_relations(bob, room_id, hidden_root)).status == 404
    visible = await relations(bob, room_id, root, limit=50)
    assert seen in ids(visible["chunk"]) and unseen not in ids(visible["chunk"])
    assert unseen in ids((await relations(alice, room_id, root, limit=50))["chunk"])
    listed = await threads(bob, room_id)
    assert ids(listed["chunk"]) == [root]  # the older thread's root is hidden from bob
    summary = listed["chunk"][0]["unsigned"]["m.relations"]["m.thread"]
    assert summary["latest_event"]["event_id"] == seen  # the newer one is after he left
    alice_summary = (await threads(alice, room_id))["chunk"][0]["unsigned"]["m.relations"]
    assert alice_summary["m.thread"]["latest_event"]["event_id"] == unseen


async def test_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    mallory = await user(homeserver, "mallory")
    room_id = await create_room(alice)
    other_room = await create_room(alice)
    root = await send(alice, room_id, {"body": "root"})
    elsewhere = await send(alice, other_room, {"body": "elsewhere"})

    forbidden = await get_relations(mallory, room_id, root)
    assert forbidden.status == 403 and forbidden.json["errcode"] == "M_FORBIDDEN"
    no_threads = await mallory.get(f"{V1}/rooms/{room_id}/threads")
    assert no_threads.status == 403 and no_threads.json["errcode"] == "M_FORBIDDEN"
    for missing in ("$unknown", elsewhere):
        resp = await get_relations(alice, room_id, missing)
        assert resp.status == 404 and resp.json["errcode"] == "M_NOT_FOUND"
    for query in ({"dir": "up"}, {"recurse": "yes"}, {"from": "nonsense"}, {"limit": "x"},
                  {"limit": "-1"}):
        resp = await get_relations(alice, room_id, root, **query)
        assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM", query
    for bad in ("include=mine", "limit=0", "from=nonsense"):
        resp = await alice.get(f"{V1}/rooms/{room_id}/threads?{bad}")
        assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM", bad
    v3 = await alice.get(f"{V3}/rooms/{room_id}/relations/{root}")
    assert v3.status in (400, 404)  # only under v1


async def test_serve_events_bundles(homeserver: RunningServer) -> None:
    """What /sync, /messages, /context and /event serve once they pass the bundler."""
    alice = await user(homeserver, "alice")
    room_id = await create_room(alice)
    root = await send(alice, room_id, {"body": "root"})
    reply = await send(alice, room_id, rel("m.thread", root))
    fix = await send(alice, room_id, edit(root, "root, edited"))
    ref = await send(alice, room_id, rel("m.reference", root))
    state_id = (await alice.request("PUT", f"{V3}/rooms/{room_id}/state/m.room.topic",
                                    {"topic": "t"})).json["event_id"]
    await send(alice, room_id, rel("m.reference", state_id))
    services = homeserver.services
    stored = await services.event_store.get_events([root, reply, fix, state_id])
    whoami = (await alice.get(f"{V3}/account/whoami")).json
    bundler = services.relations.bundler_for(whoami["user_id"], whoami["device_id"])
    events = [stored[root], stored[reply], stored[fix], stored[state_id]]
    served = await serve_events(events, (whoami["user_id"], whoami["device_id"]),
                                services.timeline.get_pdus, bundler=bundler)
    bundle = served[0]["unsigned"]["m.relations"]
    assert bundle["m.thread"]["latest_event"]["event_id"] == reply
    assert bundle["m.thread"]["count"] == 1
    assert bundle["m.thread"]["current_user_participated"] is True
    # The latest event is served in full, with the device's transaction ID like any event.
    assert "transaction_id" in bundle["m.thread"]["latest_event"]["unsigned"]
    assert bundle["m.replace"]["event_id"] == fix
    assert bundle["m.reference"] == {"chunk": [{"event_id": ref}]}
    assert all("m.relations" not in e["unsigned"] for e in served[1:])  # no children / edit
    # Without a bundler nothing changes.
    plain = await serve_events(events, None, services.timeline.get_pdus)
    assert all("m.relations" not in e["unsigned"] for e in plain)


async def test_check_new_relation(homeserver: RunningServer) -> None:
    """The send-time checks of "Threading" and "Event annotations" (service level)."""
    alice = await user(homeserver, "alice")
    room_id = await create_room(alice)
    root = await send(alice, room_id, {"body": "root"})
    reply = await send(alice, room_id, rel("m.thread", root))
    check = homeserver.services.relations.check_new_relation
    await check("@alice:test.local", "m.room.message", rel("m.thread", root))
    with pytest.raises(MatrixError) as thread_off_thread:
        await check("@alice:test.local", "m.room.message", rel("m.thread", reply))
    assert (thread_off_thread.value.status, thread_off_thread.value.errcode) == (400,
                                                                                  "M_UNKNOWN")
    like = {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"}}
    await check("@alice:test.local", "m.reaction", like)
    first = await send(alice, room_id, like, "m.reaction")
    with pytest.raises(MatrixError) as duplicate:
        await check("@alice:test.local", "m.reaction", like)
    assert (duplicate.value.status, duplicate.value.errcode) == (400, "M_DUPLICATE_ANNOTATION")
    await check("@bob:test.local", "m.reaction", like)  # someone else may
    await redact(alice, room_id, first)
    await check("@alice:test.local", "m.reaction", like)  # once redacted, again


_CALLERS_WIRED = all("bundler_for" in inspect.signature(service).parameters
                     for service in (HistoryService, SyncService))


@pytest.mark.skipif(not _CALLERS_WIRED, reason="/sync and /messages pass no bundler yet")
async def test_bundles_everywhere_events_are_served(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await create_room(alice)
    root = await send(alice, room_id, {"body": "root"})
    reply = await send(alice, room_id, rel("m.thread", root))
    for i in range(3):
        await send(alice, room_id, {"body": f"filler {i}"})

    def thread_of(event: dict[str, Any]) -> Any:
        return event["unsigned"]["m.relations"]["m.thread"]["latest_event"]["event_id"]

    def find(chunk: list[dict[str, Any]]) -> dict[str, Any]:
        (event,) = [e for e in chunk if e["event_id"] == root]
        return event

    event = (await alice.get(f"{V3}/rooms/{room_id}/event/{root}")).json
    assert thread_of(event) == reply
    context = (await alice.get(f"{V3}/rooms/{room_id}/context/{root}?limit=2")).json
    assert thread_of(context["event"]) == reply
    messages = (await alice.get(f"{V3}/rooms/{room_id}/messages?dir=b&limit=50")).json
    assert thread_of(find(messages["chunk"])) == reply
    # /sync bundles when the timeline is limited (or the room is new to the client).
    small = quote(json.dumps({"room": {"timeline": {"limit": 5}}}))
    synced = (await alice.get(f"{V3}/sync?filter={small}")).json
    timeline = synced["rooms"]["join"][room_id]["timeline"]
    assert timeline["limited"] and thread_of(find(timeline["events"])) == reply
