"""Reading power levels: v1-stringy-power-levels (v1-v9), v1-floaty-power-levels (v1-v5),
integers only (v10+), defaults, and room creators (v12: infinite power)."""

from __future__ import annotations

import math

import pytest

from myelin.core.auth import INFINITE, PowerLevels, user_power_level
from myelin.core.auth.levels import InvalidLevel, parse_level
from myelin.core.room_versions import RoomVersion

from auth_scenarios import ALICE, BOB, CAROL, Room, each_version


@pytest.mark.parametrize("version", each_version("1-9"))
@pytest.mark.parametrize(("text", "value"), [
    ("100", 100), ("000100", 100), ("+100", 100), ("-100", -100), (" 100 ", 100),
    (" 00100 ", 100), (" +100 ", 100), (" -100 ", -100), ("\t7\n", 7)])
def test_stringy_power_levels(version: RoomVersion, text: str, value: int) -> None:
    assert parse_level(text, version) == value


@pytest.mark.parametrize("version", each_version("1-12"))
@pytest.mark.parametrize("text", ["1.5", "1e3", "", " ", "+-1", "--1", "1_000", "\u0661",
                                  "0x10", "1 0"])
def test_malformed_strings_are_not_levels(version: RoomVersion, text: str) -> None:
    with pytest.raises(InvalidLevel):
        parse_level(text, version)


@pytest.mark.parametrize("version", each_version("10-12"))
def test_v10_strings_are_not_levels(version: RoomVersion) -> None:
    with pytest.raises(InvalidLevel):
        parse_level("100", version)


@pytest.mark.parametrize("version", each_version("1-5"))
@pytest.mark.parametrize(("number", "value"), [(5.114698e4, 51146), (50.57, 50), (-2.7, -2),
                                               (1e300, int(1e300))])
def test_floaty_power_levels_truncate(version: RoomVersion, number: float, value: int) -> None:
    assert parse_level(number, version) == value


@pytest.mark.parametrize("version", each_version("1-12"))
@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan, True])
def test_infinities_nan_and_booleans_are_not_levels(version: RoomVersion, number: float) -> None:
    with pytest.raises(InvalidLevel):
        parse_level(number, version)


@pytest.mark.parametrize("version", each_version("6-12"))
def test_floats_are_not_levels_from_v6(version: RoomVersion) -> None:
    with pytest.raises(InvalidLevel):
        parse_level(50.0, version)


@pytest.mark.parametrize("version", each_version("1-12"))
def test_defaults_without_power_levels_event(version: RoomVersion) -> None:
    room = Room(version)
    power = PowerLevels.from_state(room.state, version)
    creator_level = INFINITE if version.privileged_creators else 100
    assert power.user_level(ALICE) == creator_level
    assert power.user_level(BOB) == 0
    assert [power.level(n) for n in ("ban", "kick", "redact", "invite")] == [50, 50, 50, 0]
    assert power.required_level("m.room.topic", is_state=True) == 50
    assert power.required_level("m.room.message", is_state=False) == 0


@pytest.mark.parametrize("version", each_version("1-10"))
def test_creator_is_content_creator_before_v11(version: RoomVersion) -> None:
    room = Room(version, create_content={"creator": BOB})
    assert user_power_level(BOB, room.state, version) == 100
    assert user_power_level(ALICE, room.state, version) == 0


@pytest.mark.parametrize("version", each_version("11-12"))
def test_v11_creator_is_create_sender(version: RoomVersion) -> None:
    room = Room(version, create_content={"creator": BOB})
    assert user_power_level(BOB, room.state, version) == 0
    assert user_power_level(ALICE, room.state, version) in (100, INFINITE)


@pytest.mark.parametrize("version", each_version("1-12"))
def test_levels_from_power_levels_event(version: RoomVersion) -> None:
    room = Room(version)
    room.power_levels({BOB: 30}, users_default=5, events={"m.room.topic": 7}, events_default=3,
                      state_default=9, ban=1)
    power = PowerLevels.from_state(room.state, version)
    assert (power.user_level(BOB), power.user_level(CAROL), power.level("ban")) == (30, 5, 1)
    assert power.required_level("m.room.topic", is_state=True) == 7
    assert power.required_level("m.room.name", is_state=True) == 9
    assert power.required_level("m.room.message", is_state=False) == 3
    # The creator keeps power only through the users map before v12.
    assert power.user_level(ALICE) == (INFINITE if version.privileged_creators else 100)


@pytest.mark.parametrize("version", each_version("12"))
def test_v12_additional_creators_have_infinite_power_even_if_listed(version: RoomVersion) -> None:
    room = Room(version, create_content={"additional_creators": [BOB]})
    room.send("m.room.power_levels", ALICE, {"users": {BOB: 0, ALICE: 0}, "users_default": 10})
    power = PowerLevels.from_state(room.state, version)
    assert power.user_level(ALICE) == power.user_level(BOB) == INFINITE
    assert power.user_level(CAROL) == 10
