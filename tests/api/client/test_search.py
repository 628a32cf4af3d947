"""POST /search over HTTP (runs on PostgreSQL too when MYELIN_TEST_POSTGRES is set)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from harness import Client, Response, RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"


async def new_room(client: Client, **body: Any) -> str:
    resp = await client.post(f"{V3}/createRoom", body)
    assert resp.status == 200, resp
    return str(resp.json["room_id"])


async def send(client: Client, room_id: str, body: str, *, txn: list[int] = [0]) -> str:  # noqa: B006
    txn[0] += 1  # unique transaction IDs across the whole test module
    resp = await client.request("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/t{txn[0]}",
                                {"msgtype": "m.text", "body": body})
    assert resp.status == 200, resp
    return str(resp.json["event_id"])


async def search(client: Client, term: str, next_batch: str | None = None,
                 **criteria: Any) -> Response:
    path = f"{V3}/search" + (f"?next_batch={quote(next_batch)}" if next_batch else "")
    return await client.post(path, {"search_categories": {"room_events": {
        "search_term": term, **criteria}}})


async def found(client: Client, term: str, **criteria: Any) -> list[str]:
    resp = await search(client, term, **criteria)
    assert resp.status == 200, resp
    return [r["result"]["event_id"] for r in resp.json["search_categories"]["room_events"]
            ["results"]]


async def test_matching_words_keys_and_highlights(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await new_room(alice, name="The fox den", topic="Where foxes meet")
    fox = await send(alice, room_id, "the quick brown fox")
    await send(alice, room_id, "lazy dogs sleeping")
    running = await send(alice, room_id, "Foxes are running home")
    resp = await search(alice, "fox")
    assert resp.status == 200, resp
    body = resp.json["search_categories"]["room_events"]
    by_type: dict[str, list[str]] = {}
    for r in body["results"]:
        assert isinstance(r["rank"], float) and r["rank"] > 0
        assert r["result"]["room_id"] == room_id and "context" not in r
        by_type.setdefault(r["result"]["type"], []).append(r["result"]["event_id"])
    assert sorted(by_type["m.room.message"]) == sorted([fox, running])
    assert set(by_type) == {"m.room.message", "m.room.name", "m.room.topic"}
    assert body["count"] == 4 and "next_batch" not in body
    assert {"fox", "foxes"} <= set(body["highlights"])
    assert sorted(await found(alice, "fox", keys=["content.body"])) == sorted([fox, running])
    topic = await found(alice, "meet", keys=["content.topic"])
    assert len(topic) == 1
    assert await found(alice, "meet", keys=["content.name", "content.body"]) == []
    assert await found(alice, "RUNNING") == [running]  # case and stemming
    assert await found(alice, "brown fox") == [fox]  # all words must match
    assert await found(alice, '"fox brown"') == []  # a phrase keeps its word order
    assert await found(alice, '"brown fox"') == [fox]
    assert await found(alice, "fox -brown", keys=["content.body"]) == [running]
    assert sorted(await found(alice, "dogs or quick")) == sorted(
        [fox, *await found(alice, "dogs")])
    assert await found(alice, "cat") == []


async def test_rank_and_recent_order(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await new_room(alice)
    best = await send(alice, room_id, "apple apple apple")
    weak = await send(alice, room_id, "I had an apple with some other fruit and vegetables "
                                      "today at lunch in the park")
    assert await found(alice, "apple") == [best, weak]  # rank is the default
    assert await found(alice, "apple", order_by="rank") == [best, weak]
    assert await found(alice, "apple", order_by="recent") == [weak, best]
    ranks = [r["rank"] for r in (await search(alice, "apple")).json[
        "search_categories"]["room_events"]["results"]]
    assert ranks[0] > ranks[1]


async def test_filters(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    one = await new_room(alice, preset="public_chat")
    two = await new_room(alice, preset="public_chat")
    for room_id in (one, two):
        assert (await bob.post(f"{V3}/join/{room_id}", {})).status == 200
    a1, b1 = await send(alice, one, "kiwi one"), await send(bob, one, "kiwi two")
    a2, b2 = await send(alice, two, "kiwi three"), await send(bob, two, "kiwi four")
    everything = {a1, b1, a2, b2}
    assert set(await found(alice, "kiwi")) == everything
    assert set(await found(alice, "kiwi", filter={"rooms": [one]})) == {a1, b1}
    assert set(await found(alice, "kiwi", filter={"not_rooms": [one]})) == {a2, b2}
    assert set(await found(alice, "kiwi", filter={"senders": ["@bob:test.local"]})) == {b1, b2}
    assert set(await found(alice, "kiwi", filter={"not_senders": ["@bob:test.local"]})) == {
        a1, a2}
    assert await found(alice, "kiwi", filter={"rooms": [one], "senders": ["@bob:test.local"],
                                              "types": ["m.room.*"]}) == [b1]
    assert await found(alice, "kiwi", filter={"types": ["m.room.name"]}) == []
    assert await found(alice, "kiwi", filter={"not_types": ["m.room.message"]}) == []
    assert len(await found(alice, "kiwi", filter={"limit": 3})) == 3
    assert await found(alice, "kiwi", filter={"contains_url": True}) == []
    assert await found(alice, "kiwi", filter={"rooms": []}) == []


async def test_only_joined_rooms_and_visible_events(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    private = await new_room(alice)
    await send(alice, private, "secret plans")
    assert await found(bob, "secret") == []
    assert await found(bob, "secret", filter={"rooms": [private]}) == []
    # History visibility "joined": what was said before bob joined stays hidden from him.
    room_id = await new_room(alice, preset="public_chat", initial_state=[{
        "type": "m.room.history_visibility", "state_key": "",
        "content": {"history_visibility": "joined"}}])
    hidden = await send(alice, room_id, "banana before")
    assert (await bob.post(f"{V3}/join/{room_id}", {})).status == 200
    shown = await send(alice, room_id, "banana after")
    assert await found(bob, "banana") == [shown]
    assert set(await found(alice, "banana")) == {hidden, shown}
    # A room bob left is not searched any more (joined rooms only, as in Synapse).
    assert (await bob.post(f"{V3}/rooms/{room_id}/leave", {})).status == 200
    assert await found(bob, "banana") == []


async def test_redacted_events_disappear(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await new_room(alice)
    kept = await send(alice, room_id, "mango kept")
    gone = await send(alice, room_id, "mango gone")
    assert set(await found(alice, "mango")) == {kept, gone}
    resp = await alice.request("PUT", f"{V3}/rooms/{room_id}/redact/{gone}/r1", {})
    assert resp.status == 200, resp
    assert await found(alice, "mango") == [kept]
    assert await found(alice, "gone") == []
    body = (await search(alice, "mango")).json["search_categories"]["room_events"]
    assert body["count"] == 1


async def test_event_context_and_profiles(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await new_room(alice)
    resp = await alice.request("PUT", f"{V3}/profile/@alice:test.local/displayname",
                               {"displayname": "Alice A."})
    assert resp.status == 200, resp
    ids = [await send(alice, room_id, f"filler {i}") for i in range(3)]
    hit = await send(alice, room_id, "needle in the haystack")
    ids += [await send(alice, room_id, f"after {i}") for i in range(3)]
    resp = await search(alice, "needle", event_context={
        "before_limit": 2, "after_limit": 1, "include_profile": True})
    assert resp.status == 200, resp
    result = resp.json["search_categories"]["room_events"]["results"][0]
    assert result["result"]["event_id"] == hit
    context = result["context"]
    assert [e["event_id"] for e in context["events_before"]] == [ids[2], ids[1]]
    assert [e["event_id"] for e in context["events_after"]] == [ids[3]]
    assert context["profile_info"] == {"@alice:test.local": {"displayname": "Alice A."}}
    more = await alice.get(f"{V3}/rooms/{room_id}/messages?dir=f&limit=10"
                           f"&from={quote(context['end'])}")
    assert [e["event_id"] for e in more.json["chunk"]] == ids[4:]
    default = (await search(alice, "needle", event_context={})).json
    context = default["search_categories"]["room_events"]["results"][0]["context"]
    assert len(context["events_before"]) == 5 and len(context["events_after"]) == 3
    assert "profile_info" not in context
    none = (await search(alice, "needle", event_context={"before_limit": 0,
                                                          "after_limit": 0})).json
    context = none["search_categories"]["room_events"]["results"][0]["context"]
    assert context["events_before"] == [] and context["events_after"] == []


async def test_include_state(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await new_room(alice, name="Stateful")
    await send(alice, room_id, "papaya")
    body = (await search(alice, "papaya", include_state=True)).json
    state = body["search_categories"]["room_events"]["state"]
    assert list(state) == [room_id]
    assert {(e["type"], e["state_key"]) for e in state[room_id]} >= {
        ("m.room.create", ""), ("m.room.name", ""), ("m.room.member", "@alice:test.local")}
    plain = (await search(alice, "papaya")).json["search_categories"]["room_events"]
    assert "state" not in plain


async def paginate(client: Client, term: str, token: str | None = None,
                   **criteria: Any) -> list[list[str]]:
    pages = []
    for _ in range(20):
        resp = await search(client, term, token, **criteria)
        assert resp.status == 200, resp
        body = resp.json["search_categories"]["room_events"]
        pages.append([r["result"]["event_id"] for r in body["results"]])
        token = body.get("next_batch")
        if token is None:
            return pages
    raise AssertionError("pagination does not end")


async def test_pagination_both_orders(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await new_room(alice)
    ids = [await send(alice, room_id, "cherry " + "cherry " * (i % 4) + "x" * i)
           for i in range(25)]
    recent = await paginate(alice, "cherry", order_by="recent", filter={"limit": 10})
    assert [len(p) for p in recent] == [10, 10, 5]
    assert [e for p in recent for e in p] == list(reversed(ids))
    ranked = await paginate(alice, "cherry", filter={"limit": 10})
    flat = [e for p in ranked for e in p]
    assert sorted(flat) == sorted(ids) and len(flat) == 25
    assert flat == await found(alice, "cherry", filter={"limit": 100})
    first = (await search(alice, "cherry", filter={"limit": 10})).json
    assert first["search_categories"]["room_events"]["count"] == 25
    # The token is tied to the ordering it came from, and must be one of ours.
    token = first["search_categories"]["room_events"]["next_batch"]
    other = await search(alice, "cherry", token, order_by="recent")
    assert other.status == 400 and other.json["errcode"] == "M_INVALID_PARAM"
    for bad in ("nonsense", "e30", "WzEsInJhbmsiLHt9LCJ4IiwxXQ"):
        resp = await search(alice, "cherry", bad)
        assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM", bad


async def test_groupings(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    one = await new_room(alice, preset="public_chat")
    two = await new_room(alice, preset="public_chat")
    assert (await bob.post(f"{V3}/join/{one}", {})).status == 200
    in_one = [await send(alice, one, f"grape {i}") for i in range(3)]
    in_one.append(await send(bob, one, "grape from bob"))
    in_two = [await send(alice, two, f"grape {i}") for i in range(3)]
    groupings = {"group_by": [{"key": "room_id"}, {"key": "sender"}]}
    body = (await search(alice, "grape", order_by="recent", groupings=groupings,
                         filter={"limit": 5})).json["search_categories"]["room_events"]
    served = [r["result"]["event_id"] for r in body["results"]]
    assert served == [*reversed(in_two), in_one[3], in_one[2]]
    rooms = body["groups"]["room_id"]
    assert rooms[two]["results"] == list(reversed(in_two)) and rooms[two]["order"] == 1
    assert rooms[one]["results"] == [in_one[3], in_one[2]] and rooms[one]["order"] == 2
    senders = body["groups"]["sender"]
    assert senders["@bob:test.local"]["results"] == [in_one[3]]
    assert senders["@alice:test.local"]["order"] == 1
    # A group's next_batch goes on within that group only.
    rest = await paginate(alice, "grape", rooms[one]["next_batch"], order_by="recent",
                          groupings=groupings, filter={"limit": 5})
    assert [e for p in rest for e in p] == [in_one[1], in_one[0]]
    narrowed = await search(alice, "grape", rooms[one]["next_batch"], order_by="recent",
                            filter={"limit": 5, "rooms": [two]})
    assert narrowed.json["search_categories"]["room_events"]["results"] == []
    by_bob = await search(alice, "grape", senders["@bob:test.local"]["next_batch"],
                          order_by="recent", filter={"limit": 5})
    assert by_bob.json["search_categories"]["room_events"]["results"] == []
    # Everything fits: no next_batch anywhere.
    body = (await search(alice, "grape", groupings=groupings)).json[
        "search_categories"]["room_events"]
    assert "next_batch" not in body
    assert all("next_batch" not in g for g in body["groups"]["room_id"].values())
    plain = (await search(alice, "grape")).json["search_categories"]["room_events"]
    assert "groups" not in plain


async def test_hostile_search_terms(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    room_id = await new_room(alice)
    plain = await send(alice, room_id, 'quote " star * near NEAR(a b) col:x (paren) drop')
    terms = ['"', '""', '"""', "*", "a*", "*a", "NEAR", "NEAR(quote star)", "NEAR(", "(", ")",
             "((", "())", "quote)", "(quote", "AND", "OR", "NOT", "quote OR", "OR quote",
             "quote NOT", "NOT quote", "-", "--", "-quote", "- -", "quote -", "^quote",
             "value:quote", "col:x", "{value}: quote", "quote + star", "'", "''",
             "'; DROP TABLE events; --", "\" OR 1=1 --", "$1", "?", "?1", "\\", "\\\"",
             "quote & star | !drop", "quote <-> star", "quote:*", "!!", "&&", "||", "<2>",
             "\u0000", "quote\u0000star", "🦊", "é", "x" * 3000, "quote " * 200,
             "\t\n ", "", "and and or or", "-\"quote star\"", '"quote star', 'or "" or']
    for term in terms:
        for order in ("rank", "recent"):
            resp = await search(alice, term, order_by=order)
            assert resp.status == 200, (term, resp)
            body = resp.json["search_categories"]["room_events"]
            assert all(r["result"]["event_id"] == plain for r in body["results"]), term
    assert await found(alice, "NEAR(a b)") == [plain]  # words and phrases, not FTS5 syntax
    assert await found(alice, "NEAR(quote star)") == []  # "near quote" is not a phrase in it
    assert await found(alice, "paren)") == [plain]
    assert await found(alice, "'; DROP --") == [plain]
    assert await found(alice, "quote -near") == []
    assert (await alice.get(f"{V3}/rooms/{room_id}/event/{plain}")).status == 200


async def test_errors(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    anonymous = Client(homeserver.url, homeserver.client.session)
    assert (await anonymous.post(f"{V3}/search", {"search_categories": {}})).status == 401

    async def error(body: Any) -> tuple[int, str]:
        resp = await alice.post(f"{V3}/search", body)
        return resp.status, resp.json.get("errcode")

    assert await error({}) == (400, "M_BAD_JSON")
    assert await error({"search_categories": {"room_events": {}}}) == (400, "M_BAD_JSON")
    assert await error({"search_categories": {"room_events": {"search_term": 5}}}) == (
        400, "M_BAD_JSON")
    assert await error({"search_categories": {}}) == (400, "M_UNKNOWN")
    assert await error({"search_categories": {"people": {"search_term": "x"}}}) == (
        400, "M_UNKNOWN")
    for bad in ({"order_by": "oldest"}, {"keys": ["content.sender"]}, {"keys": "content.body"},
                {"groupings": {"group_by": [{"key": "type"}]}}, {"filter": {"limit": 0}},
                {"filter": {"rooms": "!a:b"}}, {"event_context": {"before_limit": -1}},
                {"event_context": {"after_limit": "5"}}, {"include_state": "yes"}):
        body = {"search_categories": {"room_events": {"search_term": "x", **bad}}}
        assert await error(body) == (400, "M_BAD_JSON"), bad
    # Categories this server does not know are ignored next to room_events.
    resp = await alice.post(f"{V3}/search", {"search_categories": {
        "room_events": {"search_term": "x"}, "people": {}}})
    assert resp.status == 200, resp
    assert resp.json == {"search_categories": {"room_events": {
        "results": [], "count": 0, "highlights": ["x"]}}}
    r0 = await alice.post("/_matrix/client/r0/search", {"search_categories": {
        "room_events": {"search_term": "x"}}})
    assert r0.status == 200


async def test_upgraded_room_predecessor_searched(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    old = await new_room(alice)
    before = await send(alice, old, "lychee before upgrade")
    resp = await alice.post(f"{V3}/rooms/{old}/upgrade", {"new_version": "10"})
    assert resp.status == 200, resp
    new = resp.json["replacement_room"]
    after = await send(alice, new, "lychee after upgrade")
    assert set(await found(alice, "lychee", filter={"rooms": [new]})) == {before, after}
    assert await found(alice, "lychee", filter={"rooms": [old]}) == [before]


async def test_search_results_carry_bundled_edits(homeserver) -> None:
    from harness import logged_in_user

    alice = await logged_in_user(homeserver, "edith")
    room_id = (await alice.post("/_matrix/client/v3/createRoom", {})).json["room_id"]
    original = (await alice.request(
        "PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/o",
        {"msgtype": "m.text", "body": "teh quokka"})).json["event_id"]
    edit = (await alice.request(
        "PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/e",
        {"msgtype": "m.text", "body": "* the quokka",
         "m.new_content": {"msgtype": "m.text", "body": "the quokka"},
         "m.relates_to": {"rel_type": "m.replace", "event_id": original}})).json["event_id"]
    found = await alice.post("/_matrix/client/v3/search", {"search_categories": {
        "room_events": {"search_term": "teh"}}})
    results = found.json["search_categories"]["room_events"]["results"]
    assert [r["result"]["event_id"] for r in results] == [original]
    bundled = results[0]["result"]["unsigned"]["m.relations"]["m.replace"]
    assert bundled["event_id"] == edit
