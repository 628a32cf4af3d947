"""Invites through a third-party identifier: the "If content has a third_party_invite
property" rules of m.room.member invites (5.3.1 in v1-v5, 4.3.1 in v6-v7, 4.4.1 in v8-v11,
5.4.1 in v12), with the check of the ``signed`` block's Ed25519 signatures against the public
keys of the room's m.room.third_party_invite event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nacl.signing import VerifyKey

from myelin.core.auth.context import AuthContext
from myelin.core.signing import decode_base64, verify_json

_RULE = "member.invite.third_party"


def check_third_party_invite(ctx: AuthContext, third_party_invite: object) -> str:
    """Returns the number of the allowing rule; raises AuthError."""
    event = ctx.event
    # .1: "If target user is banned, reject."
    if ctx.membership(event.state_key) == "ban":
        ctx.reject(f"{_RULE}.banned", "the invited user is banned")
    # .2: "If content.third_party_invite does not have a signed property, reject."
    if not isinstance(third_party_invite, Mapping) or "signed" not in third_party_invite:
        ctx.reject(f"{_RULE}.no_signed", "third_party_invite has no signed block")
    signed = third_party_invite["signed"]
    # .3: "If signed does not have mxid and token properties, reject."
    if not isinstance(signed, Mapping) or "mxid" not in signed or "token" not in signed:
        ctx.reject(f"{_RULE}.signed_fields", "the signed block lacks mxid or token")
    # .4: "If mxid does not match state_key, reject."
    if signed["mxid"] != event.state_key:
        ctx.reject(f"{_RULE}.mxid", "signed.mxid is not the invited user")
    # .5: no m.room.third_party_invite in the current room state with state_key == token.
    token = signed["token"]
    invite = ctx.state.get(("m.room.third_party_invite", token)) if isinstance(
        token, str
    ) else None
    if invite is None:
        ctx.reject(f"{_RULE}.no_invite_event", "no m.room.third_party_invite for the token")
    # .6: "If sender does not match sender of the m.room.third_party_invite, reject."
    if invite.sender != event.sender:
        ctx.reject(f"{_RULE}.sender", "the third-party invite was made by someone else")
    # .7: "If any signature in signed matches any public key in the m.room.third_party_invite
    # event, allow." The keys are .7.1 content.public_key and .7.2 content.public_keys.
    matched = matching_key_source(signed, invite.content)
    if matched is not None:
        return ctx.rule(f"{_RULE}.signature.{matched}")
    # .8: "Otherwise, reject."
    ctx.reject(f"{_RULE}.reject", "no signature of the signed block matches a public key")


def public_keys(content: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source, key) for every public key of an m.room.third_party_invite, where source is
    "public_key" (the single key) or "public_keys" (the list)."""
    keys = []
    if isinstance(content.get("public_key"), str):
        keys.append(("public_key", content["public_key"]))
    listed = content.get("public_keys")
    for entry in listed if isinstance(listed, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("public_key"), str):
            keys.append(("public_keys", entry["public_key"]))
    return keys


def matching_key_source(signed: Mapping[str, Any], content: Mapping[str, Any]) -> str | None:
    """Which key list holds a key that verifies one of ``signed``'s signatures.

    Appendices, "Checking for a Signature": signing key identifiers of algorithms other than
    ed25519 are ignored; the signature covers the canonical JSON of the object without
    ``signatures`` and ``unsigned``.
    """
    signatures = signed.get("signatures")
    if not isinstance(signatures, Mapping):
        return None
    signers = [
        (server_name, key_id)
        for server_name, by_key in signatures.items()
        if isinstance(by_key, Mapping)
        for key_id in by_key
        if isinstance(key_id, str) and key_id.startswith("ed25519:")
    ]
    for source, public_key in public_keys(content):
        try:
            verify_key = VerifyKey(decode_base64(public_key))
        except ValueError:  # not base64, or not 32 bytes (nacl's ValueError)
            continue
        for server_name, key_id in signers:
            try:
                verify_json(signed, server_name, key_id, verify_key)
            except ValueError:  # SignatureError
                continue
            return source
    return None
