"""Push rule conditions (client-server API, "Push Notifications", "Conditions"): what an
event is tested against, with the matching primitives they need. Pure: no I/O.

Kept apart from :mod:`myelin.core.push_rules` (the rule model, the default rules and rule
evaluation), which re-exports the public names below.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_MAX_SAFE_INT = 2**53 - 1
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class PushContext:
    """What evaluation needs besides the event: facts about the recipient and the room.

    ``notification_levels`` is the power level needed per notification key (see
    :func:`notification_levels`); ``sender_power_level`` may be ``math.inf`` (v12 creators).
    """

    user_id: str
    member_count: int
    display_name: str | None = None
    sender_power_level: int | float = 0
    notification_levels: Mapping[str, int] = field(default_factory=lambda: {"room": 50})


def notification_levels(power_levels_content: Mapping[str, Any] | None) -> dict[str, int]:
    """The ``notifications`` levels of an ``m.room.power_levels`` content, ``room``
    defaulting to 50. Keys not present have no level, so their condition never matches."""
    levels = {"room": 50}
    notifications = (power_levels_content or {}).get("notifications")
    if isinstance(notifications, Mapping):
        for key, value in notifications.items():
            if isinstance(value, int) and not isinstance(value, bool):
                levels[key] = value
            elif isinstance(value, str):  # older room versions allowed string levels
                with contextlib.suppress(ValueError):
                    levels[key] = int(value)
    return levels


def condition_holds(cond: Mapping[str, Any], event: Mapping[str, Any],
                    ctx: PushContext) -> bool:
    """Does one condition of an override/underride rule hold for ``event``? Unknown or
    malformed conditions never hold."""
    kind = cond.get("kind")
    key = cond.get("key")
    if kind == "event_match":
        pattern = cond.get("pattern")
        if not isinstance(key, str) or not isinstance(pattern, str):
            return False
        value = property_at(event, key)
        return isinstance(value, str) and glob_matches(pattern, value,
                                                       words=key == "content.body")
    if kind == "event_property_is":
        return (isinstance(key, str) and "value" in cond
                and _same_value(property_at(event, key), cond["value"]))
    if kind == "event_property_contains":
        if not isinstance(key, str) or "value" not in cond:
            return False
        values = property_at(event, key)
        return isinstance(values, list) and any(_same_value(v, cond["value"]) for v in values)
    if kind == "contains_display_name":
        body = property_at(event, "content.body")
        name = ctx.display_name
        return (isinstance(body, str) and isinstance(name, str) and name != ""
                and glob_matches(name, body, words=True, literal=True))
    if kind == "room_member_count":
        return _count_matches(cond.get("is"), ctx.member_count)
    if kind == "sender_notification_permission":
        required = ctx.notification_levels.get(key) if isinstance(key, str) else None
        return required is not None and ctx.sender_power_level >= required
    return False  # "Unrecognised conditions MUST NOT match any events"


def _is_simple(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT
    return value is None or isinstance(value, (str, bool))


def _same_value(actual: Any, expected: Any) -> bool:
    """Exact match of non-compound canonical JSON values: no casting (``1`` is not
    ``true``, ``"true"`` is not ``true``)."""
    return (actual is not _MISSING and _is_simple(actual) and _is_simple(expected)
            and type(actual) is type(expected) and actual == expected)


def _count_matches(spec: Any, count: int) -> bool:
    if not isinstance(spec, str):
        return False
    for op in ("==", "<=", ">=", "<", ">"):
        if spec.startswith(op):
            number = spec[len(op):]
            break
    else:
        op, number = "==", spec
    if not number.isascii() or not number.isdigit():
        return False
    n = int(number)
    return {"==": count == n, "<": count < n, ">": count > n,
            "<=": count <= n, ">=": count >= n}[op]


@functools.lru_cache(maxsize=512)
def split_property_path(path: str) -> tuple[str, ...]:
    """Appendices, "Dot-separated property paths": split on unescaped dots; ``\\.`` and
    ``\\\\`` are a literal dot and backslash, any other backslash is literal."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(path):
        c = path[i]
        if c == "\\" and i + 1 < len(path) and path[i + 1] in ".\\":
            current.append(path[i + 1])
            i += 2
            continue
        if c == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


def property_at(event: Mapping[str, Any], path: str) -> Any:
    """The value at a dot-separated ``path`` of ``event``, or a sentinel that matches
    nothing when absent (only objects are descended into, never arrays)."""
    value: Any = event
    for name in split_property_path(path):
        if not isinstance(value, Mapping) or name not in value:
            return _MISSING
        value = value[name]
    return value


# Glob matching (appendices, "Glob-style matching"): "*" is any run, "?" any one character.
# Implemented as a bit-parallel NFA rather than a regex, so user-written patterns such as
# "*a*a*a*b" cost O(len(text) * len(pattern)) instead of backtracking exponentially.

_STAR, _ANY = object(), object()


def _is_word_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str,
             literal: bool) -> tuple[int, int, dict[str, int], int, str | None]:
    tokens: list[Any] = []
    for c in pattern:
        if not literal and c == "*":
            if not tokens or tokens[-1] is not _STAR:  # "**" is "*"
                tokens.append(_STAR)
        elif not literal and c == "?":
            tokens.append(_ANY)
        else:
            tokens.append(c.casefold())
    star_mask = any_mask = 0
    char_masks: dict[str, int] = {}
    for i, t in enumerate(tokens):
        if t is _STAR:
            star_mask |= 1 << i
        elif t is _ANY:
            any_mask |= 1 << i
        else:
            char_masks[t] = char_masks.get(t, 0) | 1 << i
    plain = None if star_mask or any_mask else "".join(tokens)
    return star_mask, any_mask, char_masks, len(tokens), plain


def glob_matches(pattern: str, text: str, *, words: bool = False, literal: bool = False) -> bool:
    """Case-insensitive glob match of ``pattern`` against the whole of ``text``; with
    ``words``, against any substring that starts and ends at a word boundary (the start or
    end of ``text``, or a character outside ``[A-Za-z0-9_]``), as ``content.body`` matching
    requires. ``literal`` treats ``*`` and ``?`` as ordinary characters.

    "Case-insensitive" (which the spec leaves to the implementation) is Unicode case folding.
    """
    star_mask, any_mask, char_masks, size, plain = _compile(pattern, literal)
    if plain is not None and not words:  # no wildcards: a plain comparison
        return text.casefold() == plain
    accept = 1 << size

    def closure(states: int) -> int:  # a star may match nothing (runs are collapsed)
        return states | (states & star_mask) << 1

    start = closure(1)
    chars = [c.casefold() for c in text]
    n = len(chars)
    states = 0 if words else start
    for i in range(n + 1):
        if words:
            before_ok = i == 0 or not _is_word_char(text[i - 1])
            here_ok = i == n or not _is_word_char(text[i])
            if before_ok or here_ok:
                states |= start
                if states & accept:
                    return True
        if i == n:
            break
        step = (states & star_mask) | (states & (any_mask | char_masks.get(chars[i], 0))) << 1
        states = closure(step)
        if not states and not words:
            return False
    return bool(states & accept) and not words
