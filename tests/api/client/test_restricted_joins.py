"""Restricted and knock_restricted rooms: joining through membership of another room."""

from __future__ import annotations

import pytest

from harness import RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"



@pytest.mark.parametrize("version", ["8", "10", "12"])
async def test_restricted_join(homeserver: RunningServer, version: str) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    carol = await user(homeserver, "carol")
    space = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    room = (await alice.post(f"{V3}/createRoom", {"room_version": version, "initial_state": [{
        "type": "m.room.join_rules",
        "content": {"join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": space}]}}]})
            ).json["room_id"]
    assert (await bob.post(f"{V3}/join/{space}", {})).status == 200
    joined = await bob.post(f"{V3}/join/{room}", {})
    assert joined.status == 200, joined
    member = (await bob.get(f"{V3}/rooms/{room}/state/m.room.member/@bob:test.local")).json
    assert member["join_authorised_via_users_server"] == "@alice:test.local"
    refused = await carol.post(f"{V3}/join/{room}", {})
    assert refused.status == 403


async def test_knock_restricted(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    carol = await user(homeserver, "carol")
    space = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    room = (await alice.post(f"{V3}/createRoom", {"initial_state": [{
        "type": "m.room.join_rules",
        "content": {"join_rule": "knock_restricted",
                    "allow": [{"type": "m.room_membership", "room_id": space}]}}]})
            ).json["room_id"]
    await bob.post(f"{V3}/join/{space}", {})
    assert (await bob.post(f"{V3}/join/{room}", {})).status == 200
    assert (await carol.post(f"{V3}/join/{room}", {})).status == 403
    knocked = await carol.post(f"{V3}/knock/{room}", {"reason": "let me in"})
    assert knocked.status == 200
    sync = (await carol.get(f"{V3}/sync")).json
    assert room in sync["rooms"]["knock"]
    assert (await alice.post(f"{V3}/rooms/{room}/invite",
                             {"user_id": "@carol:test.local"})).status == 200
    assert (await carol.post(f"{V3}/join/{room}", {})).status == 200


async def test_restricted_rule_is_invite_only_before_v8(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    space = (await alice.post(f"{V3}/createRoom", {"preset": "public_chat"})).json["room_id"]
    room = (await alice.post(f"{V3}/createRoom", {"room_version": "7", "initial_state": [{
        "type": "m.room.join_rules",
        "content": {"join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": space}]}}]})
            ).json["room_id"]
    await bob.post(f"{V3}/join/{space}", {})
    assert (await bob.post(f"{V3}/join/{room}", {})).status == 403
