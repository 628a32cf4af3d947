"""Rooms in a given state, and table-driven cases, for the authorization-rule tests.

A test names the spec rule it covers per room version with ``rule_cases({"1-5": "5.2.3",
"6-7": "4.2.3", ...})``: each case's pytest id is ``v<version>-rule-<number>`` (for example
``test_join_rejected_when_sender_banned[v8-rule-4.3.3]``), which is what
tests/core/auth/test_rule_coverage.py scans for. ``absent_in("6-12")`` gives the versions
where a rule does not exist (ids ``v<version>-absent``), to show it does not apply there.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from nacl.signing import SigningKey

from myelin.core.auth import AuthError, authorising_rule, check_auth
from myelin.core.events import PDU, StateKey
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion

from event_builders import make_event

ALICE = "@alice:example.org"  # creates every room
BOB = "@bob:example.org"
CAROL = "@carol:example.org"
DAN = "@dan:example.org"
EVE = "@eve:elsewhere.example"  # a user of another server
ALL_VERSIONS = list(KNOWN_ROOM_VERSIONS.values())


def versions(span: str) -> list[RoomVersion]:
    """"1-5" -> v1..v5, "7" -> [v7], "10-12" -> v10..v12."""
    low, _, high = span.partition("-")
    return [KNOWN_ROOM_VERSIONS[str(n)] for n in range(int(low), int(high or low) + 1)]


def rule_cases(numbers: dict[str, str]) -> list[Any]:
    """(room version, rule number) cases, one per version of each span."""
    cases, seen = [], set()
    for span, number in numbers.items():
        for version in versions(span):
            assert version.identifier not in seen, f"v{version.identifier} listed twice"
            seen.add(version.identifier)
            cases.append(
                pytest.param(version, number, id=f"v{version.identifier}-rule-{number}")
            )
    return cases


def number_in(numbers: dict[str, str], version: RoomVersion) -> str:
    """The rule number ``numbers`` (as given to ``rule_cases``) gives for ``version``."""
    for span, number in numbers.items():
        if version in versions(span):
            return number
    raise KeyError(f"no rule number for v{version.identifier}")


# The final "Otherwise, allow." of each room version.
FINAL_ALLOW = {"1-2": "12", "3-5": "11", "6-11": "10", "12": "11"}


def each_version(span: str = "1-12") -> list[Any]:
    """Room versions as cases with readable ids (``v7``), for tests not tied to one rule."""
    return [pytest.param(v, id=f"v{v.identifier}") for v in versions(span)]


def absent_in(span: str) -> list[Any]:
    """Room versions in which a rule does not exist."""
    return [pytest.param(v, id=f"v{v.identifier}-absent") for v in versions(span)]


def assert_allowed(event: PDU, state: dict[StateKey, PDU], rule: str) -> None:
    """The event passes, allowed by rule ``rule``."""
    assert authorising_rule(event, state) == rule


def assert_rejected(event: PDU, state: dict[StateKey, PDU], rule: str) -> AuthError:
    with pytest.raises(AuthError) as info:
        check_auth(event, state)
    assert info.value.rule == rule, info.value
    return info.value


class Room:
    """A room of ``version`` created by ALICE (who has joined), whose state the test sets
    directly: ``send`` puts a state event into ``state`` without authorising it."""

    def __init__(
        self,
        version: RoomVersion,
        *,
        create_content: dict[str, Any] | None = None,
        creator: str = ALICE,
        join_creator: bool = True,
    ) -> None:
        self.version = version
        self.creator = creator
        self.state: dict[StateKey, PDU] = {}
        self._count = 0
        content = {"room_version": version.identifier}
        if not version.implicit_room_creator:
            content["creator"] = creator
        content.update(create_content or {})
        self.create = create_event(version, creator, content)
        self.room_id = self.create.room_id
        self.state[("m.room.create", "")] = self.create
        self.last = self.create.event_id
        if join_creator:
            self.member(creator, "join")

    def event(
        self,
        type: str,
        sender: str,
        content: dict[str, Any] | None = None,
        *,
        state_key: str | None = None,
        prev_events: list[str] | None = None,
        event_id: str | None = None,
        **extra: Any,
    ) -> PDU:
        """A new event on top of the room (not added to the state)."""
        self._count += 1
        return make_event(
            self.version,
            event_id or f"$e{self._count}:example.org",
            type,
            sender,
            content,
            state_key=state_key,
            prev_events=[self.last] if prev_events is None else prev_events,
            **{"room_id": self.room_id, **extra},
        )

    def send(self, type: str, sender: str, content: dict[str, Any], state_key: str = "") -> PDU:
        event = self.event(type, sender, content, state_key=state_key)
        self.state[event.state_tuple] = event
        self.last = event.event_id
        return event

    def member(self, user: str, membership: str, sender: str | None = None) -> PDU:
        return self.send("m.room.member", sender or user, {"membership": membership}, user)

    def membership_event(
        self, sender: str, target: str, membership: str, **content: Any
    ) -> PDU:
        """A new m.room.member event to authorise."""
        return self.event(
            "m.room.member", sender, {"membership": membership, **content}, state_key=target
        )

    def power_levels(self, users: dict[str, Any] | None = None, **fields: Any) -> PDU:
        """Sets m.room.power_levels; before v12 the creator is given 100 unless listed."""
        return self.send("m.room.power_levels", self.creator, self.levels(users, **fields))

    def levels(self, users: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        users = dict(users or {})
        if not self.version.privileged_creators:
            users.setdefault(self.creator, 100)
        return {"users": users, **fields}

    def join_rule(self, join_rule: str, **content: Any) -> PDU:
        return self.send("m.room.join_rules", self.creator, {"join_rule": join_rule, **content})


def create_event(version: RoomVersion, sender: str, content: dict[str, Any], **extra: Any) -> PDU:
    """An m.room.create; in v12 it has no room_id and the room is "!" + its event ID."""
    data: dict[str, Any] = {
        "type": "m.room.create",
        "sender": sender,
        "content": content,
        "state_key": "",
        "origin_server_ts": 1,
        "depth": 1,
        "prev_events": [],
        "auth_events": [],
        "hashes": {"sha256": "unchecked"},
        "signatures": {},
    }
    if not version.room_id_from_create_event:
        data["room_id"] = "!room:example.org"
    data.update(extra)
    event_id = "$create" if version.room_id_from_create_event else "$create:example.org"
    return PDU(data, version, event_id=event_id)


# -- third-party invites: real Ed25519 signatures over the canonical JSON of "signed" --


def unpadded_base64(data: bytes, *, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(data).decode("ascii").rstrip("=")


def canonical_json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def signed_block(
    key: SigningKey, mxid: str, token: str, *, server: str = "id.example.org"
) -> dict[str, Any]:
    """The ``signed`` object an identity server gives for a third-party invite."""
    signed: dict[str, Any] = {"mxid": mxid, "token": token}
    signature = key.sign(canonical_json(signed)).signature
    signed["signatures"] = {server: {"ed25519:0": unpadded_base64(signature)}}
    return signed


def public_key_of(key: SigningKey, *, urlsafe: bool = False) -> str:
    return unpadded_base64(bytes(key.verify_key), urlsafe=urlsafe)
