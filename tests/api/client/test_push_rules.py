"""The push rules API (/pushrules/...) over HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from harness import Client, Response, RunningServer, logged_in_user

BASE = "/_matrix/client/v3/pushrules"
HIGHLIGHT = {"set_tweak": "highlight"}


async def put(client: Client, path: str, body: Any) -> Response:
    return await client.request("PUT", BASE + path, body)


async def delete(client: Client, path: str) -> Response:
    return await client.request("DELETE", BASE + path)


def ids(ruleset: dict[str, Any], kind: str) -> list[str]:
    return [r["rule_id"] for r in ruleset[kind]]


async def test_full_ruleset_has_the_defaults(homeserver: RunningServer) -> None:
    client = await logged_in_user(homeserver, "alice")
    for path in (BASE + "/", BASE, "/_matrix/client/r0/pushrules/"):
        response = await client.get(path)
        assert response.status == 200, (path, response)
        ruleset = response.json["global"]
        assert set(ruleset) == {"override", "content", "room", "sender", "underride"}
    assert ids(ruleset, "override")[:3] == [".m.rule.master", ".m.rule.suppress_notices",
                                            ".m.rule.invite_for_me"]
    assert ids(ruleset, "underride")[-1] == ".m.rule.encrypted"
    assert ruleset["content"] == ruleset["room"] == ruleset["sender"] == []
    master = ruleset["override"][0]
    assert master == {"rule_id": ".m.rule.master", "default": True, "enabled": False,
                      "conditions": [], "actions": []}
    invite = ruleset["override"][2]
    assert invite["conditions"][2] == {"kind": "event_match", "key": "state_key",
                                       "pattern": "@alice:test.local"}
    for path in (BASE + "/global/", BASE + "/global"):
        response = await client.get(path)
        assert response.status == 200 and response.json == ruleset


async def test_create_read_order_and_delete_rules(homeserver: RunningServer) -> None:
    client = await logged_in_user(homeserver, "alice")
    cake = {"pattern": "cake", "actions": ["notify", {"set_tweak": "sound",
                                                      "value": "cakealarm.wav"}]}
    assert (await put(client, "/global/content/nocake", cake)).json == {}
    lie = {"pattern": "cake*lie", "actions": ["notify"]}
    assert (await put(client, "/global/content/cakelie?before=nocake", lie)).status == 200
    beer = {"conditions": [{"kind": "event_match", "key": "content.body", "pattern": "beer"},
                           {"kind": "room_member_count", "is": "<=10"}],
            "actions": ["notify", {"set_tweak": "sound", "value": "beeroclock.wav"}]}
    assert (await put(client, "/global/override/beer", beer)).status == 200
    room = quote("!dj234r78wl45Gh4D:matrix.org", safe="")
    assert (await put(client, f"/global/room/{room}", {"actions": []})).status == 200
    sender = quote("@spambot:matrix.org", safe="")
    assert (await put(client, f"/global/sender/{sender}", {"actions": []})).status == 200
    assert (await put(client, "/global/underride/last?after=nope2", {"actions": []})
            ).status == 400
    assert (await put(client, "/global/underride/u1", {"actions": ["notify"]})).status == 200
    assert (await put(client, "/global/underride/u2?after=u1", {"actions": []})).status == 200

    ruleset = (await client.get(BASE + "/")).json["global"]
    assert ids(ruleset, "content") == ["cakelie", "nocake"]
    assert ids(ruleset, "override")[:2] == [".m.rule.master", "beer"]
    assert ids(ruleset, "override")[2] == ".m.rule.suppress_notices"
    assert ids(ruleset, "room") == ["!dj234r78wl45Gh4D:matrix.org"]
    assert ids(ruleset, "sender") == ["@spambot:matrix.org"]
    assert ids(ruleset, "underride")[:3] == ["u1", "u2", ".m.rule.call"]

    got = await client.get(BASE + "/global/content/cakelie")
    assert got.json == {"rule_id": "cakelie", "default": False, "enabled": True,
                        "pattern": "cake*lie", "actions": ["notify"]}
    got = await client.get(BASE + "/global/override/beer")
    assert got.json == {"rule_id": "beer", "default": False, "enabled": True, **beer}
    got = await client.get(BASE + f"/global/room/{room}")
    assert got.json == {"rule_id": "!dj234r78wl45Gh4D:matrix.org", "default": False,
                        "enabled": True, "actions": []}
    default = await client.get(BASE + "/global/underride/.m.rule.message")
    assert default.json["default"] is True and default.json["actions"] == ["notify"]

    # Updating keeps the place; before/after moves.
    assert (await put(client, "/global/content/nocake", lie)).status == 200
    assert (await put(client, "/global/content/cakelie?after=nocake", lie)).status == 200
    ruleset = (await client.get(BASE + "/")).json["global"]
    assert ids(ruleset, "content") == ["nocake", "cakelie"]
    assert ruleset["content"][0]["pattern"] == "cake*lie"

    assert (await delete(client, "/global/content/nocake")).json == {}
    assert (await client.get(BASE + "/global/content/nocake")).status == 404
    missing = await delete(client, "/global/content/nocake")
    assert missing.status == 404 and missing.json["errcode"] == "M_NOT_FOUND"
    ruleset = (await client.get(BASE + "/")).json["global"]
    assert ids(ruleset, "content") == ["cakelie"]


async def test_enabled_and_actions(homeserver: RunningServer) -> None:
    client = await logged_in_user(homeserver, "alice")
    master = "/global/override/.m.rule.master"
    assert (await client.get(BASE + master + "/enabled")).json == {"enabled": False}
    assert (await put(client, master + "/enabled", {"enabled": True})).json == {}
    assert (await client.get(BASE + master + "/enabled")).json == {"enabled": True}
    assert (await client.get(BASE + master)).json["enabled"] is True

    message = "/global/underride/.m.rule.message"
    assert (await client.get(BASE + message + "/actions")).json == {"actions": ["notify"]}
    new_actions = ["notify", HIGHLIGHT]
    assert (await put(client, message + "/actions", {"actions": new_actions})).json == {}
    assert (await client.get(BASE + message + "/actions")).json == {"actions": new_actions}
    rule = (await client.get(BASE + message)).json
    assert rule["default"] is True and rule["actions"] == new_actions
    assert rule["conditions"] == [{"kind": "event_match", "key": "type",
                                   "pattern": "m.room.message"}]

    assert (await put(client, "/global/override/mine", {"actions": ["notify"]})).status == 200
    assert (await put(client, "/global/override/mine/enabled", {"enabled": False})).status == 200
    assert (await put(client, "/global/override/mine/actions", {"actions": []})).status == 200
    mine = (await client.get(BASE + "/global/override/mine")).json
    assert mine["enabled"] is False and mine["actions"] == [] and mine["conditions"] == []
    # A PUT of the rule itself keeps it disabled (only new rules start enabled).
    assert (await put(client, "/global/override/mine", {"actions": ["notify"]})).status == 200
    assert (await client.get(BASE + "/global/override/mine/enabled")).json == {"enabled": False}

    # Other users see only their own rules and settings.
    bob = await logged_in_user(homeserver, "bob")
    assert (await bob.get(BASE + master + "/enabled")).json == {"enabled": False}
    assert (await bob.get(BASE + "/global/override/mine")).status == 404


async def test_changes_reach_sync_as_account_data(homeserver: RunningServer) -> None:
    client = await logged_in_user(homeserver, "alice")
    first = await client.get("/_matrix/client/v3/sync")
    assert first.status == 200
    since = first.json["next_batch"]
    assert (await put(client, "/global/override/.m.rule.master/enabled",
                      {"enabled": True})).status == 200
    later = await client.get(f"/_matrix/client/v3/sync?since={since}&timeout=0")
    events = [e for e in later.json["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert len(events) == 1
    assert events[0]["content"] == (await client.get(BASE + "/")).json
    assert events[0]["content"]["global"]["override"][0]["enabled"] is True


async def test_errors(homeserver: RunningServer) -> None:
    client = await logged_in_user(homeserver, "alice")

    async def error(response: Response, status: int, errcode: str) -> None:
        assert (response.status, response.json["errcode"]) == (status, errcode), response

    # Authentication.
    for method, path in (("GET", "/"), ("GET", "/global/"),
                         ("GET", "/global/override/.m.rule.master"),
                         ("PUT", "/global/override/x"), ("DELETE", "/global/override/x"),
                         ("GET", "/global/override/x/enabled"),
                         ("PUT", "/global/override/x/enabled"),
                         ("GET", "/global/override/x/actions"),
                         ("PUT", "/global/override/x/actions")):
        await error(await client.request(method, BASE + path, {"actions": []}, token=""),
                    401, "M_MISSING_TOKEN")
    await error(await client.get(BASE + "/", token="nope"), 401, "M_UNKNOWN_TOKEN")

    # Unknown rules.
    await error(await client.get(BASE + "/global/override/nope"), 404, "M_NOT_FOUND")
    await error(await client.get(BASE + "/global/override/nope/enabled"), 404, "M_NOT_FOUND")
    await error(await client.get(BASE + "/global/override/nope/actions"), 404, "M_NOT_FOUND")
    await error(await client.get(BASE + "/global/content/.m.rule.master"), 404, "M_NOT_FOUND")
    await error(await put(client, "/global/override/nope/enabled", {"enabled": True}),
                404, "M_NOT_FOUND")
    await error(await put(client, "/global/override/nope/actions", {"actions": []}),
                404, "M_NOT_FOUND")
    await error(await delete(client, "/global/override/nope"), 404, "M_NOT_FOUND")

    # Bad kinds.
    await error(await client.get(BASE + "/global/everything/x"), 400, "M_INVALID_PARAM")
    await error(await put(client, "/global/everything/x", {"actions": []}),
                400, "M_INVALID_PARAM")
    await error(await delete(client, "/global/everything/x"), 400, "M_INVALID_PARAM")
    await error(await put(client, "/global/everything/x/enabled", {"enabled": True}),
                400, "M_INVALID_PARAM")

    # Server-default rule IDs cannot be created, replaced or deleted.
    await error(await put(client, "/global/override/.m.rule.master", {"actions": []}),
                400, "M_INVALID_PARAM")
    await error(await put(client, "/global/override/.mine", {"actions": []}),
                400, "M_INVALID_PARAM")
    await error(await delete(client, "/global/override/.m.rule.master"), 400, "M_INVALID_PARAM")
    await error(await delete(client, "/global/override/.m.rule.nope"), 404, "M_NOT_FOUND")
    await error(await put(client, "/global/override/a%2Fb", {"actions": []}),
                400, "M_INVALID_PARAM")
    await error(await put(client, "/global/override/a%5Cb", {"actions": []}),
                400, "M_INVALID_PARAM")

    # Kind-specific parameters.
    await error(await put(client, "/global/content/c", {"actions": []}), 400, "M_MISSING_PARAM")
    await error(await put(client, "/global/room/not-a-room", {"actions": []}),
                400, "M_INVALID_PARAM")
    await error(await put(client, "/global/sender/not-a-user", {"actions": []}),
                400, "M_INVALID_PARAM")

    # Bodies.
    await error(await put(client, "/global/override/x", {}), 400, "M_BAD_JSON")
    await error(await put(client, "/global/override/x", {"actions": "notify"}), 400, "M_BAD_JSON")
    await error(await put(client, "/global/override/x", {"actions": [], "conditions": [{}]}),
                400, "M_BAD_JSON")
    await error(await put(client, "/global/override/x", {"actions": [{"value": 1}]}),
                400, "M_BAD_JSON")
    await error(await put(client, "/global/override/.m.rule.master/enabled", {"enabled": "yes"}),
                400, "M_BAD_JSON")
    await error(await client.request("PUT", BASE + "/global/override/x", data=b"{"),
                400, "M_NOT_JSON")

    # before/after must name another of the user's rules of the same kind.
    await error(await put(client, "/global/override/x?before=nope", {"actions": []}),
                400, "M_UNKNOWN")
    await error(await put(client, "/global/override/x?after=.m.rule.master", {"actions": []}),
                400, "M_UNKNOWN")
    assert (await put(client, "/global/underride/u", {"actions": []})).status == 200
    await error(await put(client, "/global/override/x?after=u", {"actions": []}),
                400, "M_UNKNOWN")
    assert (await client.get(BASE + "/global/override/x")).status == 404

    # Only the "global" scope exists.
    assert (await client.get(BASE + "/device/override/x")).status == 404
