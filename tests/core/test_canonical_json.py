"""Canonical JSON (appendices, "Signing JSON" -> "Canonical JSON").

The appendix examples are checked byte for byte; hypothesis then proves our encoder (orjson
fast path and reference slow path alike) byte-identical to ``canonicaljson``, the encoder the
majority of the federation hashed and signed with, over arbitrary JSON values.
"""

from __future__ import annotations

import json
from typing import Any

import canonicaljson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from myelin.core.canonical_json import (
    MAX_SAFE_INTEGER,
    MIN_SAFE_INTEGER,
    CanonicalJSONError,
    _encode_reference,
    encode_canonical_json,
)

# -- the appendix's examples, input text as printed there --

APPENDIX_EXAMPLES = [
    ("{}", b"{}"),
    ('{\n    "one": 1,\n    "two": "Two"\n}', b'{"one":1,"two":"Two"}'),
    ('{\n    "b": "2",\n    "a": "1"\n}', b'{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', b'{"a":"1","b":"2"}'),
    (
        """{
            "auth": {
                "success": true,
                "mxid": "@john.doe:example.com",
                "profile": {
                    "display_name": "John Doe",
                    "three_pids": [
                        {"medium": "email", "address": "john.doe@example.org"},
                        {"medium": "msisdn", "address": "123456789"}
                    ]
                }
            }
        }""",
        b'{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
        b'"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
        b'{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ),
    ('{\n    "a": "日本語"\n}', '{"a":"日本語"}'.encode()),
    ('{\n    "本": 2,\n    "日": 1\n}', '{"日":1,"本":2}'.encode()),
    ('{\n    "a": "\\u65E5"\n}', '{"a":"日"}'.encode()),
    ('{\n    "a": null\n}', b'{"a":null}'),
]


@pytest.mark.parametrize(("text", "expected"), APPENDIX_EXAMPLES)
def test_appendix_examples(text: str, expected: bytes) -> None:
    assert encode_canonical_json(json.loads(text)) == expected


def test_appendix_example_minus_zero_and_exponent() -> None:
    # {"a": -0, "b": 1e10} -> {"a":0,"b":10000000000}: both numbers are the integers 0 and
    # 10**10. Parsed as integers they encode exactly as the appendix shows...
    assert encode_canonical_json({"a": -0, "b": 10**10}) == b'{"a":0,"b":10000000000}'
    assert encode_canonical_json(json.loads('{"a": -0}')) == b'{"a":0}'
    # ...whereas a Python float is refused in strict mode (as Synapse and Ruma refuse it).
    with pytest.raises(CanonicalJSONError, match="float"):
        encode_canonical_json(json.loads('{"b": 1e10}'))


# -- grammar details --


def test_escapes_follow_the_grammar() -> None:
    # Dedicated escapes for \b \t \n \f \r \" \\, \u00XX (lowercase hex) for other controls,
    # nothing else escaped: not "/", not DEL, not U+2028/U+2029, not non-ASCII.
    value = '\b\t\n\f\r"\\\x00\x01\x1f\x0b/\x7f\u2028\u2029é😀'
    assert encode_canonical_json(value) == (
        '"\\b\\t\\n\\f\\r\\"\\\\\\u0000\\u0001\\u001f\\u000b/\x7f\u2028\u2029é😀"'
    ).encode("utf-8")


def test_keys_sort_by_code_point_not_utf16() -> None:
    # U+FFFF sorts before U+1F600 by code point (and by UTF-8 bytes) but after it in UTF-16.
    value = {"😀": 1, "\uffff": 2, "a": 3, "B": 4, "": 5}
    assert encode_canonical_json(value) == '{"":5,"B":4,"a":3,"\uffff":2,"😀":1}'.encode()


def test_integer_range_boundaries() -> None:
    assert encode_canonical_json(MAX_SAFE_INTEGER) == b"9007199254740991"
    assert encode_canonical_json(MIN_SAFE_INTEGER) == b"-9007199254740991"
    for bad in (MAX_SAFE_INTEGER + 1, MIN_SAFE_INTEGER - 1, 2**63, -(2**64)):
        with pytest.raises(CanonicalJSONError, match="outside"):
            encode_canonical_json({"x": [bad]})


def test_booleans_are_not_integers() -> None:
    assert encode_canonical_json([True, False, None]) == b"[true,false,null]"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": 1.5}, "float 1.5 at a"),
        ({"a": {"b": [0, 2.0]}}, r"float 2.0 at a.b\[1\]"),
        ({1: "x"}, "keys must be strings"),
        ({"a": b"bytes"}, "bytes at a is not a JSON value"),
        ({"a": {1, 2}}, "set at a"),
        ("\ud800", "surrogate"),
    ],
)
def test_strict_mode_rejects_with_a_location(value: Any, message: str) -> None:
    with pytest.raises(CanonicalJSONError, match=message):
        encode_canonical_json(value)


def test_cycles_and_excessive_nesting_raise() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json(cyclic)
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(CanonicalJSONError, match="deeply"):
        encode_canonical_json(deep)


def test_deep_but_reasonable_nesting_uses_the_reference_path() -> None:
    value: Any = "leaf"
    for i in range(300):  # deeper than the fast path handles
        value = {"k": value} if i % 2 else [value]
    assert encode_canonical_json(value) == canonicaljson.encode_canonical_json(value)


def test_tuples_encode_as_arrays() -> None:
    assert encode_canonical_json({"a": (1, "x")}) == b'{"a":[1,"x"]}'


# -- non-strict mode (room versions 1-5) --


def test_non_strict_encodes_floats_and_big_ints_as_legacy_servers_did() -> None:
    # rooms/fragments/v1-floaty-power-levels.md's example power levels hold 50.57.
    value = {"users": {"@bob:localhost": 50.57, "@x:y": 50.0}, "big": 2**64, "e": 1.5e-07}
    encoded = encode_canonical_json(value, strict=False)
    assert (
        encoded
        == b'{"big":18446744073709551616,"e":1.5e-07,"users":{"@bob:localhost":50.57,"@x:y":50.0}}'
    )
    assert encoded == canonicaljson.encode_canonical_json(value)
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json(value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_never_json(bad: float) -> None:
    for strict in (True, False):
        with pytest.raises(CanonicalJSONError):
            encode_canonical_json({"a": bad}, strict=strict)


# -- properties: identical to canonicaljson on every value it can encode --

# Text with the characters that matter to escaping and ordering well represented.
_special = st.sampled_from(
    ["\x00", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1f", '"', "\\", "/", "\x7f",
     "\u2028", "\u2029", "é", "日", "\uffff", "😀", "\U0010ffff"]
)  # fmt: skip
_text = st.lists(st.one_of(_special, st.characters(exclude_categories=["Cs"])), max_size=12).map(
    "".join
)
_safe_ints = st.integers(MIN_SAFE_INTEGER, MAX_SAFE_INTEGER)
_strict_scalars = st.one_of(st.none(), st.booleans(), _safe_ints, _text)
strict_values = st.recursive(
    _strict_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(_text, inner, max_size=6)),
    max_leaves=40,
)
_lenient_scalars = st.one_of(
    _strict_scalars, st.integers(), st.floats(allow_nan=False, allow_infinity=False)
)
lenient_values = st.recursive(
    _lenient_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(_text, inner, max_size=6)),
    max_leaves=40,
)


@settings(max_examples=500)
@given(strict_values)
def test_strict_encoding_is_byte_identical_to_canonicaljson(value: Any) -> None:
    expected = canonicaljson.encode_canonical_json(value)
    assert encode_canonical_json(value) == expected
    assert encode_canonical_json(value, strict=False) == expected
    assert _encode_reference(value, True) == expected  # the slow path too


@settings(max_examples=300)
@given(lenient_values)
def test_non_strict_encoding_is_byte_identical_to_canonicaljson(value: Any) -> None:
    assert encode_canonical_json(value, strict=False) == canonicaljson.encode_canonical_json(value)


@settings(max_examples=300)
@given(lenient_values)
def test_strict_mode_accepts_exactly_the_spec_number_domain(value: Any) -> None:
    def compliant(v: Any) -> bool:
        if isinstance(v, dict):
            return all(compliant(x) for x in v.values())
        if isinstance(v, list):
            return all(compliant(x) for x in v)
        if isinstance(v, float):
            return False
        if isinstance(v, int) and not isinstance(v, bool):
            return MIN_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER
        return True

    if compliant(value):
        assert encode_canonical_json(value) == canonicaljson.encode_canonical_json(value)
    else:
        with pytest.raises(CanonicalJSONError):
            encode_canonical_json(value)


@given(strict_values)
def test_output_parses_back_to_the_same_value(value: Any) -> None:
    assert json.loads(encode_canonical_json(value)) == value
