"""The ``Authorization: X-Matrix`` header of server-server requests: parse, build, verify.

Server-server API, "Request Authentication". The sender signs a JSON object holding the request
method, the target (path and query, as sent), both server names and the parsed JSON body, and
sends the signature in an RFC 9110 section 11.4 ``credentials`` value. Everything here is pure:
which verify key belongs to the origin is the caller's business (the keyring).

Parsing follows the spec's summary of the RFC grammar, with its two compatibility allowances for
older senders: ``origin=server:8448`` (a colon in an unquoted value; Synapse before 1.x sent the
origin unquoted) and a missing ``destination`` parameter (added in v1.3).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

import nacl.signing

from myelin.core.signing import SignatureError, sign_json, verify_json
from myelin.ids import is_valid_server_name
from myelin.signing_key import SigningKey

__all__ = [
    "XMatrixAuth",
    "XMatrixError",
    "authorization_header",
    "is_valid_key_id",
    "parse_authorization",
    "request_json",
    "verify_request",
]

SCHEME = "X-Matrix"

# keys.yaml: "The version must have characters matching the regular expression [a-zA-Z0-9_]".
_KEY_ID = re.compile(r"ed25519:[a-zA-Z0-9_]+")
# RFC 9110 section 5.6.2 tchar; we also accept ':' (the spec's allowance for older servers) and
# '[' ']' (so an unquoted IPv6-literal origin from such a server parses too: neither character
# can be confused with the ',' and '=' that delimit parameters).
_TCHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_UNQUOTED_VALUE_CHARS = _TCHARS | frozenset(":[]")
_OWS = " \t"
_KNOWN = ("origin", "destination", "key", "sig")


class XMatrixError(ValueError):
    """The header is malformed, or the request's signature or destination does not check out."""


@dataclass(frozen=True)
class XMatrixAuth:
    origin: str
    destination: str | None  # None: an older sender that predates the parameter
    key_id: str
    signature: str


def is_valid_key_id(key_id: str) -> bool:
    """True for ``ed25519:<version>`` with the version characters keys.yaml allows."""
    return _KEY_ID.fullmatch(key_id) is not None


# -- parsing (RFC 9110 section 11.4, as summarised under "Request Authentication") --


def parse_authorization(header: str) -> XMatrixAuth:
    """Parse one ``Authorization`` header value; ``XMatrixError`` says what is wrong with it.

    Grammar: ``X-Matrix`` (any case), one or more spaces, then ``name=value`` pairs separated by
    commas with optional spaces/tabs around them; names are case-insensitive, values are tokens
    or quoted strings in which a backslash escapes the next character. Unknown parameters are
    ignored; a known one given twice is refused (RFC 9110: each name "MUST only occur once").
    """
    text = header.strip(_OWS)
    scheme, space, rest = text.partition(" ")
    if scheme.lower() != SCHEME.lower():
        raise XMatrixError(f"the authorisation scheme is not {SCHEME}")
    if not space:
        raise XMatrixError("no parameters after the X-Matrix scheme")
    params = _parse_params(rest.lstrip(" "))

    origin = params.get("origin")
    key_id = params.get("key")
    signature = params.get("sig")  # the prose says "signature", every example and server "sig"
    if origin is None:
        raise XMatrixError("missing the origin parameter")
    if key_id is None:
        raise XMatrixError("missing the key parameter")
    if signature is None:
        raise XMatrixError("missing the sig parameter")
    if not is_valid_server_name(origin):
        raise XMatrixError(f"origin {origin!r} is not a valid server name")
    destination = params.get("destination")
    if destination is not None and not is_valid_server_name(destination):
        raise XMatrixError(f"destination {destination!r} is not a valid server name")
    algorithm, colon, _ = key_id.partition(":")
    if not colon:
        raise XMatrixError(f"key {key_id!r} is not of the form 'algorithm:version'")
    if algorithm != "ed25519":
        raise XMatrixError(f"unsupported signing algorithm {algorithm!r} (only ed25519)")
    if not is_valid_key_id(key_id):
        raise XMatrixError(f"key version in {key_id!r} may only contain [a-zA-Z0-9_]")
    if not signature:
        raise XMatrixError("the sig parameter is empty")
    return XMatrixAuth(origin, destination, key_id, signature)


def _parse_params(text: str) -> dict[str, str]:
    """``#auth-param``: a comma-separated list; empty elements are allowed (RFC 9110 5.6.1)."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and (text[i] in _OWS or text[i] == ","):
            i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] in _TCHARS:
            i += 1
        name = text[start:i].lower()
        if not name:
            raise XMatrixError(f"expected a parameter name at position {start}")
        while i < n and text[i] in _OWS:  # BWS
            i += 1
        if i >= n or text[i] != "=":
            raise XMatrixError(f"parameter {name!r} has no '=value'")
        i += 1
        while i < n and text[i] in _OWS:  # BWS
            i += 1
        if i < n and text[i] == '"':
            value, i = _quoted_string(text, i)
        else:
            start = i
            while i < n and text[i] in _UNQUOTED_VALUE_CHARS:
                i += 1
            value = text[start:i]
            if not value:
                raise XMatrixError(f"parameter {name!r} has an empty or invalid value")
        while i < n and text[i] in _OWS:
            i += 1
        if i < n and text[i] != ",":
            raise XMatrixError(
                f"unexpected character {text[i]!r} after parameter {name!r}; "
                "values with characters outside token must be quoted"
            )
        if name in _KNOWN and name in params:
            raise XMatrixError(f"parameter {name!r} is given more than once")
        params[name] = value
    return params


def _quoted_string(text: str, i: int) -> tuple[str, int]:
    """RFC 9110 5.6.4 quoted-string starting at ``text[i] == '"'``; returns (value, next index).

    "a backslash-character pair is replaced by the character that follows the backslash".
    """
    out: list[str] = []
    i += 1
    n = len(text)
    while i < n:
        char = text[i]
        if char == '"':
            return "".join(out), i + 1
        if char == "\\":
            if i + 1 >= n:
                break
            escaped = text[i + 1]
            if not _is_qtext(escaped, pair=True):
                raise XMatrixError(f"invalid escaped character {escaped!r} in a quoted value")
            out.append(escaped)
            i += 2
            continue
        if not _is_qtext(char, pair=False):
            raise XMatrixError(f"invalid character {char!r} in a quoted value")
        out.append(char)
        i += 1
    raise XMatrixError("unterminated quoted value")


def _is_qtext(char: str, *, pair: bool) -> bool:
    """qdtext (HTAB / SP / VCHAR except '"' and '\\' / obs-text) or, for a quoted-pair, any of
    HTAB / SP / VCHAR / obs-text."""
    code = ord(char)
    if char in _OWS or code >= 0x80:
        return True
    if not 0x21 <= code <= 0x7E:
        return False
    return pair or char not in '"\\'


# -- signing ("Request Authentication", steps 1 and 2) --


def request_json(
    method: str, uri: str, origin: str, destination: str, content: Any | None
) -> dict[str, Any]:
    """Step 1's object: ``content`` is present only when the request has a JSON body.

    ``uri`` is the request target as sent: the path from ``/_matrix/...`` with ``?`` and the
    query string if any, without scheme or host.
    """
    obj: dict[str, Any] = {
        "method": method,
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if content is not None:
        obj["content"] = content
    return obj


def authorization_header(
    signing_key: SigningKey,
    origin: str,
    destination: str,
    method: str,
    uri: str,
    content: Any | None,
) -> str:
    """Step 2's header value, written the way the spec asks senders to for old recipients: one
    space after the scheme, lower-case names, no spaces around commas, every value quoted."""
    signed = sign_json(
        request_json(method, uri, origin, destination, content),
        origin,
        signing_key.signing_key,
        signing_key.key_id,
        strict=False,  # a body may carry pre-v6 events whose numbers need not be canonical
    )
    signature = signed["signatures"][origin][signing_key.key_id]
    return (
        f"{SCHEME} origin={_quote(origin)},destination={_quote(destination)},"
        f"key={_quote(signing_key.key_id)},sig={_quote(signature)}"
    )


def _quote(value: str) -> str:
    """A quoted-string: server names never hold '"' or '\\', but escape them if one does."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def verify_request(
    auth: XMatrixAuth,
    verify_key: nacl.signing.VerifyKey,
    method: str,
    uri: str,
    content: Any | None,
    *,
    our_server_name: str,
) -> None:
    """Raise ``XMatrixError`` unless ``auth`` is a valid signature of this request to us.

    A ``destination`` naming another server must be refused (the spec: "401 Unauthorized");
    without one (pre-v1.3 senders), the signed object still names a destination, which can
    only be us, so the signature is checked against our own name either way.
    """
    if auth.destination is not None and auth.destination != our_server_name:
        raise XMatrixError(
            f"the request is addressed to {auth.destination}, not to this server"
        )
    signed = request_json(method, uri, auth.origin, our_server_name, content)
    signed["signatures"] = {auth.origin: {auth.key_id: auth.signature}}
    try:
        verify_json(signed, auth.origin, auth.key_id, verify_key)  # lenient canonical JSON
    except SignatureError as e:
        raise XMatrixError(str(e)) from None
