"""The X-Matrix Authorization header (server-server API, "Request Authentication")."""

from __future__ import annotations

from typing import Any

import nacl.signing
import pytest
import signedjson.key
import signedjson.sign

from myelin.core.canonical_json import encode_canonical_json
from myelin.core.signing import decode_base64, encode_base64
from myelin.core.x_matrix import (
    XMatrixAuth,
    XMatrixError,
    authorization_header,
    parse_authorization,
    request_json,
    verify_request,
)
from myelin.signing_key import SigningKey

# Appendices, "Cryptographic Test Vectors": the seed, server name and key ID they all use.
SEED = decode_base64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
KEY = SigningKey("1", nacl.signing.SigningKey(SEED))


# -- parsing ------------------------------------------------------------------------------


def test_parses_the_spec_example() -> None:
    header = ('X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",'
              'key="ed25519:key1",sig="ABCDEF..."')
    assert parse_authorization(header) == XMatrixAuth(
        "origin.hs.example.com", "destination.hs.example.com", "ed25519:key1", "ABCDEF..."
    )


@pytest.mark.parametrize("header", [
    # scheme and names are case-insensitive; order does not matter
    'x-matrix ORIGIN="a.example",Key="ed25519:k",SIG="s",Destination="b.example"',
    # one or more spaces after the scheme; spaces and tabs around commas and '='
    'X-Matrix   origin="a.example" ,\tkey = "ed25519:k" , sig="s",destination="b.example"',
    # tokens need no quotes, and older servers send colons unquoted
    "X-Matrix origin=a.example,key=ed25519:k,sig=s,destination=b.example",
    # empty list elements and unknown parameters are ignored
    'X-Matrix ,origin="a.example",,key="ed25519:k",sig="s",destination="b.example",x=1,',
    # backslash escapes are undone
    'X-Matrix origin="a\\.example",key="ed25519:\\k",sig="\\s",destination="b.example"',
])
def test_grammar_variants(header: str) -> None:
    assert parse_authorization(header) == XMatrixAuth("a.example", "b.example", "ed25519:k", "s")


def test_older_synapse_unquoted_origin_with_port_and_no_destination() -> None:
    """Synapse before v1.3 support sent ``origin=server`` unquoted and no destination."""
    header = 'X-Matrix origin=synapse.example:8448,key="ed25519:a_AbCd",sig="c2ln"'
    assert parse_authorization(header) == XMatrixAuth(
        "synapse.example:8448", None, "ed25519:a_AbCd", "c2ln"
    )


def test_unquoted_ipv6_literal_origin() -> None:
    auth = parse_authorization('X-Matrix origin=[::1]:8448,key="ed25519:a",sig="s"')
    assert auth.origin == "[::1]:8448"


def test_escaped_quote_and_backslash_inside_quoted_value() -> None:
    auth = parse_authorization('X-Matrix origin="a.example",key="ed25519:a",sig="x\\"y\\\\z"')
    assert auth.signature == 'x"y\\z'


@pytest.mark.parametrize(("header", "message"), [
    ('Bearer abc', "scheme"),
    ('X-Matrixorigin="a"', "scheme"),
    ("X-Matrix", "no parameters"),
    ('X-Matrix key="ed25519:a",sig="s"', "missing the origin"),
    ('X-Matrix origin="a.example",sig="s"', "missing the key"),
    ('X-Matrix origin="a.example",key="ed25519:a"', "missing the sig"),
    ('X-Matrix origin="a.example",key="ed25519a",sig="s"', "algorithm:version"),
    ('X-Matrix origin="a.example",key="curve25519:a",sig="s"', "unsupported signing algorithm"),
    ('X-Matrix origin="a.example",key="ed25519:a-b",sig="s"', "[a-zA-Z0-9_]"),
    ('X-Matrix origin="a.example",key="ed25519:",sig="s"', "[a-zA-Z0-9_]"),
    ('X-Matrix origin="a.example",key="ed25519:a",sig=""', "sig parameter is empty"),
    ('X-Matrix origin="a.example",key="ed25519:a",sig="s', "unterminated"),
    ('X-Matrix origin="a.example",origin="b.example",key="ed25519:a",sig="s"', "more than once"),
    ("X-Matrix origin=a/b,key=ed25519:a,sig=s", "must be quoted"),
    ('X-Matrix origin="a.example" "b",key="ed25519:a",sig="s"', "unexpected character"),
    ('X-Matrix origin=,key="ed25519:a",sig="s"', "empty or invalid value"),
    ('X-Matrix origin,key="ed25519:a",sig="s"', "no '=value'"),
    ('X-Matrix ="x",origin="a.example"', "parameter name"),
    ('X-Matrix origin="not a server",key="ed25519:a",sig="s"', "not a valid server name"),
    ('X-Matrix origin="a.example",destination="b/c",key="ed25519:a",sig="s"', "destination"),
    ('X-Matrix origin="a.\x01example",key="ed25519:a",sig="s"', "invalid character"),
])
def test_malformed_headers_are_refused_with_a_reason(header: str, message: str) -> None:
    with pytest.raises(XMatrixError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_authorization(header)


# -- signing ------------------------------------------------------------------------------


def test_request_json_omits_content_without_a_body() -> None:
    assert request_json("GET", "/_matrix/federation/v1/version", "a", "b", None) == {
        "method": "GET", "uri": "/_matrix/federation/v1/version", "origin": "a",
        "destination": "b",
    }
    assert request_json("PUT", "/x?y=1", "a", "b", {})["content"] == {}


def test_header_format_and_signature_match_an_independent_computation() -> None:
    content = {"pdus": [], "edus": [{"edu_type": "m.typing"}]}
    header = authorization_header(KEY, "domain", "dest.example", "PUT",
                                  "/_matrix/federation/v1/send/1?x=%20", content)
    prefix = 'X-Matrix origin="domain",destination="dest.example",key="ed25519:1",sig="'
    assert header.startswith(prefix) and header.endswith('"')
    signature = header[len(prefix):-1]
    message = encode_canonical_json({
        "method": "PUT", "uri": "/_matrix/federation/v1/send/1?x=%20", "origin": "domain",
        "destination": "dest.example", "content": content,
    })
    assert signature == encode_base64(KEY.signing_key.sign(message).signature)


def test_signature_verifies_with_signedjson() -> None:
    """Interop: what Synapse's signing library computes over the same object."""
    header = authorization_header(KEY, "domain", "dest.example", "GET", "/_matrix/key/v2/query",
                                  None)
    auth = parse_authorization(header)
    obj: dict[str, Any] = request_json("GET", "/_matrix/key/v2/query", "domain", "dest.example",
                                       None)
    obj["signatures"] = {"domain": {auth.key_id: auth.signature}}
    verify_key = signedjson.key.decode_verify_key_bytes("ed25519:1", bytes(KEY.signing_key
                                                                           .verify_key))
    signedjson.sign.verify_signed_json(obj, "domain", verify_key)


def test_round_trip_verifies() -> None:
    content = {"a": [1, 2, {"b": None}]}
    header = authorization_header(KEY, "origin.example", "us.example", "POST", "/p?q=1", content)
    auth = parse_authorization(header)
    verify_request(auth, KEY.signing_key.verify_key, "POST", "/p?q=1", content,
                   our_server_name="us.example")


def test_round_trip_with_pre_v6_numbers_in_the_body() -> None:
    """Bodies may carry events of room versions 1-5, whose numbers need not be canonical."""
    content = {"pdu": {"content": {"power": 50.0, "big": 2**60}}}
    header = authorization_header(KEY, "origin.example", "us.example", "PUT", "/p", content)
    verify_request(parse_authorization(header), KEY.signing_key.verify_key, "PUT", "/p",
                   content, our_server_name="us.example")


def test_server_names_with_ports_and_ipv6_round_trip() -> None:
    header = authorization_header(KEY, "[::1]:8448", "us.example:8448", "GET", "/p", None)
    auth = parse_authorization(header)
    assert (auth.origin, auth.destination) == ("[::1]:8448", "us.example:8448")
    verify_request(auth, KEY.signing_key.verify_key, "GET", "/p", None,
                   our_server_name="us.example:8448")


@pytest.mark.parametrize(("method", "uri", "content"), [
    ("GET", "/p?q=1", {"a": 1}),  # method
    ("POST", "/p?q=2", {"a": 1}),  # query string
    ("POST", "/p", {"a": 1}),  # query string dropped
    ("POST", "/p?q=1", {"a": 2}),  # body
    ("POST", "/p?q=1", None),  # body dropped
])
def test_any_change_to_the_request_breaks_the_signature(method: str, uri: str,
                                                        content: Any) -> None:
    header = authorization_header(KEY, "origin.example", "us.example", "POST", "/p?q=1", {"a": 1})
    with pytest.raises(XMatrixError, match="bad signature"):
        verify_request(parse_authorization(header), KEY.signing_key.verify_key, method, uri,
                       content, our_server_name="us.example")


def test_wrong_key_is_refused() -> None:
    header = authorization_header(KEY, "origin.example", "us.example", "GET", "/p", None)
    other = nacl.signing.SigningKey.generate().verify_key
    with pytest.raises(XMatrixError, match="bad signature"):
        verify_request(parse_authorization(header), other, "GET", "/p", None,
                       our_server_name="us.example")


def test_request_for_another_destination_is_refused() -> None:
    header = authorization_header(KEY, "origin.example", "other.example", "GET", "/p", None)
    with pytest.raises(XMatrixError, match=r"addressed to other\.example"):
        verify_request(parse_authorization(header), KEY.signing_key.verify_key, "GET", "/p",
                       None, our_server_name="us.example")


def test_header_without_destination_is_checked_against_our_name() -> None:
    """Pre-v1.3 senders omit the parameter but still sign ``destination``: ours or nothing."""
    full = parse_authorization(
        authorization_header(KEY, "origin.example", "us.example", "GET", "/p", None))
    legacy = XMatrixAuth(full.origin, None, full.key_id, full.signature)
    verify_request(legacy, KEY.signing_key.verify_key, "GET", "/p", None,
                   our_server_name="us.example")
    elsewhere = parse_authorization(
        authorization_header(KEY, "origin.example", "other.example", "GET", "/p", None))
    with pytest.raises(XMatrixError, match="bad signature"):
        verify_request(XMatrixAuth(elsewhere.origin, None, elsewhere.key_id,
                                   elsewhere.signature),
                       KEY.signing_key.verify_key, "GET", "/p", None,
                       our_server_name="us.example")


def test_signature_that_is_not_base64_is_refused() -> None:
    auth = XMatrixAuth("origin.example", "us.example", "ed25519:1", "!!!")
    with pytest.raises(XMatrixError, match="not base64"):
        verify_request(auth, KEY.signing_key.verify_key, "GET", "/p", None,
                       our_server_name="us.example")
