"""Canonical JSON: the byte encoding that every hash and signature in Matrix is computed over.

Appendices, "Signing JSON" -> "Canonical JSON": the shortest UTF-8 JSON encoding, object keys
sorted by Unicode code point, no insignificant whitespace, only the escapes the grammar lists,
and numbers that are integers in [-(2**53)+1, (2**53)-1] without exponent, fraction or ``-0``.
The spec's own reference code is ``json.dumps(value, ensure_ascii=False, separators=(",", ":"),
sort_keys=True).encode("UTF-8")``; our slow path is exactly that, and the fast path (orjson)
is proved byte-identical to it by property tests (tests/core/test_canonical_json.py).

Strict and non-strict mode (rooms/fragments/v1-canonical-json.md vs v6-canonical-json.md):

* ``strict=True`` (room versions 6 and later, and anything we produce): floats, NaN/Infinity
  and integers outside the range above raise ``CanonicalJSONError``.
* ``strict=False`` exists only so events of room versions 1-5, which "MUST NOT" be strictly
  enforced and "might not be fully compliant" (appendices warning: "integers might not be in the
  range specified above"; rooms/fragments/v1-floaty-power-levels.md: power levels may be
  floats), can still be hashed and verified as received. Such events were produced by servers
  using the reference encoding above, so non-strict mode encodes out-of-range integers as their
  exact decimal digits and floats as Python's ``json`` does (``float.__repr__``: ``50.0``,
  ``1e+100``), which reproduces the bytes those servers hashed and signed. NaN and Infinity
  are not JSON at all and raise in both modes. A string that is not valid Unicode (a lone
  surrogate) cannot be UTF-8 encoded and raises in both modes.

Note on the appendix example ``{"a": -0, "b": 1e10}`` -> ``{"a":0,"b":10000000000}``: both
numbers there are integers; a JSON decoder that yields a Python ``float`` for ``1e10`` has left
the integer domain, and strict mode rejects that float like Synapse and Ruma do rather than
silently converting it (an event other servers drop must not be accepted here).
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

__all__ = ["MAX_SAFE_INTEGER", "MIN_SAFE_INTEGER", "CanonicalJSONError", "encode_canonical_json"]

MAX_SAFE_INTEGER = 2**53 - 1
MIN_SAFE_INTEGER = -(2**53) + 1


class CanonicalJSONError(ValueError):
    """The value has no canonical JSON encoding (in the requested mode)."""


# Fast path: orjson sorts keys by code point (UTF-8 byte order is code point order), emits
# UTF-8 with exactly the stdlib's escapes (\" \\ \b \f \n \r \t, \u00XX lowercase for other
# controls, nothing else escaped; U+2028/2029 and DEL raw). The passthrough options make
# orjson refuse (rather than invent an encoding for) dataclasses, datetimes and str/int/dict/
# list subclasses; refusals fall back to the reference encoder below.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER  # raises outside [-(2**53)+1, (2**53)-1]
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
# Containers deeper than this go to the reference encoder (orjson's own limit is 255).
_FAST_MAX_DEPTH = 128

# The spec's reference encoder (appendices, "Canonical JSON", the Python snippet).
_REFERENCE_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True
)


def encode_canonical_json(value: Any, *, strict: bool = True) -> bytes:
    """Encode ``value`` (dicts with str keys, lists, str, int, bool, None) as canonical JSON.

    Raises ``CanonicalJSONError`` when there is no canonical encoding; see the module docstring
    for what ``strict=False`` relaxes and why.
    """
    if _is_plain(value):
        try:
            return orjson.dumps(value, option=_ORJSON_OPTIONS)
        except orjson.JSONEncodeError:
            pass  # out-of-range int, non-str key, lone surrogate: the reference path decides
    return _encode_reference(value, strict)


def _is_plain(value: Any) -> bool:
    """True if ``value`` holds only exact dict/list/str/int/bool/None (no float, no subclass).

    Those are the values whose orjson encoding is proved identical to the reference one
    (integer range is enforced by orjson itself, OPT_STRICT_INTEGER). A plain recursive walk
    is the fastest pure-Python form measured (~1.5 us for a 1 KB event); a cyclic structure
    just exceeds the depth limit and is left to the reference encoder, which reports it.
    """
    t = type(value)
    if t is dict or t is list:
        return _plain_children(value, 0)
    return t is str or t is int or t is bool or value is None


def _plain_children(node: Any, depth: int) -> bool:
    for item in node.values() if type(node) is dict else node:
        t = type(item)
        if t is str or t is int or t is bool or item is None:
            continue
        if (
            (t is dict or t is list)
            and depth < _FAST_MAX_DEPTH
            and _plain_children(item, depth + 1)
        ):
            continue
        return False  # float, tuple, subclass, foreign type, or too deep
    return True


def _encode_reference(value: Any, strict: bool) -> bytes:
    """The spec's reference encoding, after checking every value the grammar constrains."""
    _check(value, strict)
    try:
        return _REFERENCE_ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError as e:
        raise CanonicalJSONError(f"string is not valid Unicode (lone surrogate): {e}") from None
    except RecursionError:
        raise CanonicalJSONError("value is nested too deeply to encode") from None
    except (TypeError, ValueError) as e:  # circular reference and the like
        raise CanonicalJSONError(str(e)) from None


def _check(value: Any, strict: bool) -> None:
    """Reject what canonical JSON cannot encode, naming where it is (e.g. ``content.x[2]``)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > 1000:
            raise CanonicalJSONError("value is nested too deeply to encode")
        if isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, str):
                    raise CanonicalJSONError(
                        f"object keys must be strings, got {type(key).__name__} "
                        f"at {path or '(top level)'}"
                    )
                stack.append((item, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(node, (list, tuple)):
            for index, item in enumerate(node):
                stack.append((item, f"{path}[{index}]", depth + 1))
        elif isinstance(node, bool) or node is None or isinstance(node, str):
            continue
        elif isinstance(node, int):
            if strict and not MIN_SAFE_INTEGER <= node <= MAX_SAFE_INTEGER:
                raise CanonicalJSONError(
                    f"integer {node} at {path or '(top level)'} is outside [-(2**53)+1, (2**53)-1]"
                )
        elif isinstance(node, float):
            if strict:
                raise CanonicalJSONError(
                    f"float {node!r} at {path or '(top level)'}: only integers are allowed"
                )
            if not math.isfinite(node):
                raise CanonicalJSONError(f"{node!r} at {path or '(top level)'} is not JSON")
        else:
            raise CanonicalJSONError(
                f"{type(node).__name__} at {path or '(top level)'} is not a JSON value"
            )
