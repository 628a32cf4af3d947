"""The identifier checks the authorization rules make (appendices, "Identifier Grammar")."""

from __future__ import annotations

from myelin.ids import MAX_ID_BYTES, is_valid_server_name


def domain_of(identifier: object) -> str | None:
    """The server name after the first ':' of a user, room or v1-v2 event ID, if any."""
    if not isinstance(identifier, str) or ":" not in identifier:
        return None
    return identifier.split(":", 1)[1]


def is_valid_user_id(user_id: object) -> bool:
    """Appendices, "User Identifiers", including "Historical User IDs".

    Servers "MUST accept user IDs with localparts consisting of any legal non-surrogate
    Unicode code points except for ':' and NUL (U+0000), including other control characters
    and the empty string", so only the sigil, the ':', the server name and the 255-byte limit
    are enforced here.
    """
    if not isinstance(user_id, str) or not user_id.startswith("@") or ":" not in user_id:
        return False
    localpart, server_name = user_id[1:].split(":", 1)
    if "\x00" in localpart or any(0xD800 <= ord(c) <= 0xDFFF for c in localpart):
        return False
    try:
        size = len(user_id.encode("utf-8"))
    except UnicodeEncodeError:  # pragma: no cover - surrogates are refused above
        return False
    return size <= MAX_ID_BYTES and is_valid_server_name(server_name)
