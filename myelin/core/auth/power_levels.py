"""Rule "If type is m.room.power_levels" (rule 10 of v1-v5 and v12, rule 9 of v6-v11).

Sub-rule numbers in comments are those of v1-v9; v10 inserts the two integer checks first
(.1, .2) and v12 the creators check after the users check, shifting the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from myelin.core.auth.context import AuthContext
from myelin.core.auth.errors import AuthError
from myelin.core.auth.identifiers import is_valid_user_id
from myelin.core.auth.levels import (
    LEVEL_FIELDS,
    POWER_LEVELS,
    InvalidLevel,
    creators,
    parse_level,
    read_level,
    read_level_map,
)

FLOATY_RULE = "v1-floaty-power-levels"


def check_power_levels(ctx: AuthContext) -> str:
    """Returns the number of the allowing rule; raises AuthError."""
    event, version = ctx.event, ctx.version
    content = event.content
    if version.integer_power_levels:
        _check_integers(ctx, content)
    # .1: "If the users property in content is not an object with keys that are valid user
    # IDs with values that are integers (v1-v9: or a string that is an integer), reject."
    # An absent users property is the default, an empty object.
    users = content.get("users", {})
    if not isinstance(users, Mapping) or not all(
        is_valid_user_id(user_id) and _readable(level, ctx) for user_id, level in users.items()
    ):
        ctx.reject("power_levels.users", "users is not an object of user IDs to integers")
    if not version.strict_canonical_json:
        _check_finite_floats(ctx, content)
    # (v12) .4: "If the users property in content contains the sender of the m.room.create
    # event or any of the additional_creators array ..., reject."
    if version.privileged_creators and creators(ctx.create) & set(users):
        ctx.reject("power_levels.creators", "room creators cannot be given a power level")
    # .2: "If there is no previous m.room.power_levels event in the room, allow."
    previous = ctx.state.get(POWER_LEVELS)
    if previous is None:
        return ctx.rule("power_levels.no_previous")
    old, new = previous.content, content
    sender_level = ctx.power.user_level(event.sender)
    # .3: "For the properties users_default, events_default, state_default, ban, redact,
    # kick, invite check if they were added, changed or removed. For each found alteration:"
    for name in LEVEL_FIELDS:
        before, after = read_level(old.get(name), version), read_level(new.get(name), version)
        if before == after:
            continue
        # .3.1: "If the current value is higher than the sender's current power level, reject."
        if before is not None and before > sender_level:
            ctx.reject("power_levels.fields.current", f"{name} is above the sender's level")
        # .3.2: "If the new value is higher than the sender's current power level, reject."
        if after is not None and after > sender_level:
            ctx.reject("power_levels.fields.new", f"new {name} is above the sender's level")
    # .4/.5: the events property (v6+: and notifications).
    maps = ("events", "notifications") if version.limit_notifications_power_levels else (
        "events",
    )
    diffs = [_diff(old.get(name), new.get(name), ctx) for name in maps]
    # .4: "For each entry being changed in, or removed from, the events property: If the
    # current value is greater than the sender's current power level, reject."
    for changes in diffs:
        for key, (before, _after) in changes.items():
            if before is not None and before > sender_level:
                ctx.reject("power_levels.maps_removed.current", f"{key} is above the sender")
    # .5: "For each entry being added to, or changed in, the events property: If the new
    # value is greater than the sender's current power level, reject."
    for changes in diffs:
        for key, (_before, after) in changes.items():
            if after is not None and after > sender_level:
                ctx.reject("power_levels.maps_added.new", f"new {key} is above the sender")
    user_changes = _diff(old.get("users"), users, ctx)
    # .6: "For each entry being changed in, or removed from, the users property, other than
    # the sender's own entry: If the current value is greater than or equal to the sender's
    # current power level, reject."
    for user_id, (before, _after) in user_changes.items():
        if user_id != event.sender and before is not None and before >= sender_level:
            ctx.reject("power_levels.users_removed.current", f"{user_id} is not below sender")
    # .7: "For each entry being added to, or changed in, the users property: If the new value
    # is greater than the sender's current power level, reject."
    for user_id, (_before, after) in user_changes.items():
        if after is not None and after > sender_level:
            ctx.reject("power_levels.users_added.new", f"{user_id} would be above the sender")
    # .8: "Otherwise, allow."
    return ctx.rule("power_levels.allow")


def _check_integers(ctx: AuthContext, content: Mapping[str, Any]) -> None:
    # (v10+) .1: "If any of the properties users_default, events_default, state_default,
    # ban, redact, kick, or invite in content are present and not an integer, reject."
    for name in LEVEL_FIELDS:
        if name in content and not _readable(content[name], ctx):
            ctx.reject("power_levels.integer_fields", f"{name} is not an integer")
    # (v10+) .2: "If either of the properties events or notifications in content are present
    # and not an object with values that are integers, reject."
    for name in ("events", "notifications"):
        value = content.get(name, {})
        if not isinstance(value, Mapping) or not all(_readable(v, ctx) for v in value.values()):
            ctx.reject("power_levels.integer_maps", f"{name} is not an object of integers")


def _check_finite_floats(ctx: AuthContext, content: Mapping[str, Any]) -> None:
    """rooms/fragments/v1-floaty-power-levels.md (v1-v5): "Values outside the range
    represented by IEEE754 binary64 (a "double") cause the powerlevel event to be rejected,
    as do Infinity, -Infinity and NaN." Not one of the numbered rules."""
    values: list[object] = [content.get(name) for name in LEVEL_FIELDS]
    for name in ("events", "notifications", "users"):
        nested = content.get(name)
        if isinstance(nested, Mapping):
            values += nested.values()
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise AuthError(FLOATY_RULE, "a power level is not a finite number")


def _readable(value: object, ctx: AuthContext) -> bool:
    try:
        parse_level(value, ctx.version)
    except InvalidLevel:
        return False
    return True


def _diff(old: object, new: object, ctx: AuthContext) -> dict[str, tuple[int | None, int | None]]:
    """Entries added, changed or removed between two level maps: key -> (before, after)."""
    before, after = read_level_map(old, ctx.version), read_level_map(new, ctx.version)
    keys: Iterable[str] = dict.fromkeys([*before, *after])
    return {
        key: (before.get(key), after.get(key))
        for key in keys
        if before.get(key) != after.get(key)
    }
