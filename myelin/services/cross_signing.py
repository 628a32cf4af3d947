"""Cross-signing (client-server API, module "End-to-End Encryption", "Cross-signing"):
POST /keys/device_signing/upload and POST /keys/signatures/upload.

Other servers sharing a room with the user hear of new master / self-signing keys
(``m.signing_key_update``) and of new signatures on the user's devices
(``m.device_list_update``); signatures of other users' keys stay private to the signer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from myelin.errors import MatrixError, bad_json, forbidden, missing_param, not_found
from myelin.services.accounts import AccountService
from myelin.services.auth import Requester
from myelin.services.e2e_keys import (
    CROSS_SIGNING_TYPES,
    KeyChanges,
    check_signature,
    public_key_of,
    verify_key_from_base64,
    without_signatures,
)
from myelin.storage.database import Statement
from myelin.storage.stores.e2e_keys import E2eKeyStore, SignatureRow

if TYPE_CHECKING:
    from myelin.services.federation.devices import DeviceListPublisher

UIA_ENDPOINT = "keys/device_signing/upload"


def failure(error: MatrixError) -> dict[str, Any]:
    return {"status": error.status, "errcode": error.errcode, "error": error.message}


class CrossSigningService:
    def __init__(self, store: E2eKeyStore, changes: KeyChanges,
                 accounts: AccountService) -> None:
        self._store = store
        self._changes = changes
        self._accounts = accounts
        # Set by the composition root when federating; None: nobody else is told.
        self.publisher: DeviceListPublisher | None = None

    # -- POST /keys/device_signing/upload --

    async def upload_keys(self, requester: Requester, body: Mapping[str, Any]) -> None:
        user_id = requester.user_id
        uploaded: dict[str, dict[str, Any]] = {}
        for key_type in CROSS_SIGNING_TYPES:
            key = body.get(f"{key_type}_key")
            if key is not None:
                uploaded[key_type] = key
        stored = await self._store.get_cross_signing_keys(user_id)
        # The spec's exceptions to UIA: no master key yet, or the request repeats the stored
        # master key and only repeats stored keys.
        needs_uia = "master" in stored and not (
            uploaded.get("master") == stored["master"]
            and all(stored.get(t) == k for t, k in uploaded.items()))
        if "master" in stored and not needs_uia:
            return  # a repeat of the stored keys: nothing new
        session = None
        if needs_uia:
            session = await self._accounts.reauthenticate(requester, body.get("auth"),
                                                          UIA_ENDPOINT)
        statements = await self._check_keys(user_id, uploaded, stored)
        if statements:
            await self._changes.write(user_id, statements)
            if self.publisher is not None and uploaded.keys() & {"master", "self_signing"}:
                await self.publisher.signing_keys_changed(user_id)
        if session is not None:
            self._accounts.finish_uia(session)

    async def _check_keys(self, user_id: str, uploaded: dict[str, dict[str, Any]],
                          stored: dict[str, dict[str, Any]]) -> list[Statement]:
        publics: dict[str, str] = {}
        for key_type, key in uploaded.items():
            publics[key_type] = _check_key_shape(user_id, key_type, key)
        device_ids = set(await self._store.list_device_ids(user_id))
        for public in publics.values():
            if public in device_ids:
                raise forbidden("Key ID in use")
        master = uploaded.get("master") or stored.get("master")
        if master is None and (uploaded.keys() - {"master"}):
            raise missing_param("No master key available")
        if master is not None:
            master_public = public_key_of(master)
            assert master_public is not None  # checked on upload
            for key_type in ("self_signing", "user_signing"):
                if key_type in uploaded:
                    check_signature(uploaded[key_type], user_id, f"ed25519:{master_public}",
                                    master_public)
        return [self._store.put_cross_signing_key(user_id, t, {
            k: v for k, v in key.items() if k != "unsigned"}) for t, key in uploaded.items()]

    # -- POST /keys/signatures/upload --

    async def upload_signatures(self, user_id: str,
                                body: Mapping[str, Any]) -> dict[str, Any]:
        failures: dict[str, dict[str, Any]] = {}
        own_rows: list[SignatureRow] = []
        other_rows: list[SignatureRow] = []
        for target_user, objects in body.items():
            if not isinstance(objects, dict) or not all(
                    isinstance(v, dict) for v in objects.values()):
                raise bad_json(f"Signatures for {target_user} must map key IDs to objects")
            for key_id, signed in objects.items():
                try:
                    if target_user == user_id:
                        own_rows.extend(await self._own_signature(user_id, key_id, signed))
                    else:
                        other_rows.append(
                            await self._other_signature(user_id, target_user, key_id, signed))
                except MatrixError as e:
                    failures.setdefault(target_user, {})[key_id] = failure(e)
        if own_rows:
            await self._changes.write(user_id, [self._store.add_signatures(own_rows)])
            await self._publish_own_signatures(user_id, own_rows)
        if other_rows:
            targets = sorted({row[0] for row in other_rows})
            await self._changes.write(user_id, [self._store.add_signatures(other_rows)],
                                      announce=False, private_targets=targets)
        return {"failures": failures}

    async def _publish_own_signatures(self, user_id: str, rows: list[SignatureRow]) -> None:
        """Signed devices go out as device list updates, a signed master key as a signing
        key update (the receiving servers' copies carry the signatures)."""
        if self.publisher is None:
            return
        master = (await self._store.get_cross_signing_keys(user_id)).get("master")
        master_public = public_key_of(master) if master is not None else None
        targets = {row[1] for row in rows}
        if master_public in targets:
            await self.publisher.signing_keys_changed(user_id)
        devices = sorted(targets - {master_public})
        if devices:
            await self.publisher.devices_changed(user_id, devices)

    async def _own_signature(self, user_id: str, key_id: str,
                             signed: dict[str, Any]) -> list[SignatureRow]:
        cross = await self._store.get_cross_signing_keys(user_id)
        master = cross.get("master")
        their = _signatures_by(signed, user_id)
        if master is not None and public_key_of(master) == key_id:
            # The master key, signed by the user's devices.
            _require_same(signed, master)
            rows: list[SignatureRow] = []
            for signer_key_id, signature in their.items():
                if signer_key_id == f"ed25519:{key_id}":
                    continue  # the master key's own signature, not a device's
                device_id = signer_key_id.partition(":")[2]
                device = await self._store.get_device_keys(user_id, device_id)
                public = (device or {}).get("keys", {}).get(signer_key_id)
                if not isinstance(public, str):
                    raise MatrixError(400, "M_INVALID_SIGNATURE",
                                      f"Unknown signing device {device_id}")
                check_signature(signed, user_id, signer_key_id, public)
                rows.append((user_id, key_id, user_id, signer_key_id, signature))
            if not rows:
                raise MatrixError(400, "M_INVALID_SIGNATURE", "No device signature found")
            return rows
        # A device, signed by the self-signing key.
        self_signing = cross.get("self_signing")
        if self_signing is None:
            raise not_found("No self-signing key found")
        device = await self._store.get_device_keys(user_id, key_id)
        if device is None:
            raise not_found("Unknown device")
        _require_same(signed, device)
        public = public_key_of(self_signing)
        assert public is not None
        signer_key_id = f"ed25519:{public}"
        check_signature(signed, user_id, signer_key_id, public)
        return [(user_id, key_id, user_id, signer_key_id, their[signer_key_id])]

    async def _other_signature(self, user_id: str, target_user: str, key_id: str,
                               signed: dict[str, Any]) -> SignatureRow:
        user_signing = (await self._store.get_cross_signing_keys(user_id)).get("user_signing")
        if user_signing is None:
            raise not_found("No user-signing key found")
        master = (await self._store.get_cross_signing_keys(target_user)).get("master")
        if master is None or public_key_of(master) != key_id:
            raise not_found("Unknown master key")
        _require_same(signed, master)
        public = public_key_of(user_signing)
        assert public is not None
        signer_key_id = f"ed25519:{public}"
        check_signature(signed, user_id, signer_key_id, public)
        return (target_user, key_id, user_id, signer_key_id,
                _signatures_by(signed, user_id)[signer_key_id])


def _check_key_shape(user_id: str, key_type: str, key: Any) -> str:
    """Check a cross-signing key's fields; return its public key."""
    if not isinstance(key, dict):
        raise bad_json(f"{key_type}_key must be an object")
    if key.get("user_id") != user_id:
        raise bad_json(f"{key_type}_key.user_id must be {user_id}")
    usage = key.get("usage")
    if not isinstance(usage, list) or key_type not in usage:
        raise bad_json(f"{key_type}_key.usage must include {key_type!r}")
    keys = key.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        raise bad_json(f"{key_type}_key.keys must hold exactly one key")
    ((key_id, public),) = keys.items()
    if not isinstance(public, str) or key_id != f"ed25519:{public}":
        raise bad_json(f"{key_type}_key.keys must be {{'ed25519:<public key>': <public key>}}")
    if "signatures" in key and not isinstance(key["signatures"], dict):
        raise bad_json(f"{key_type}_key.signatures must be an object")
    verify_key_from_base64(public)  # a real 32-byte ed25519 key
    return public


def _signatures_by(signed: Mapping[str, Any], user_id: str) -> dict[str, str]:
    signatures = signed.get("signatures")
    ours = signatures.get(user_id) if isinstance(signatures, dict) else None
    if not isinstance(ours, dict) or not ours:
        raise MatrixError(400, "M_INVALID_SIGNATURE", f"No signature by {user_id}")
    return {k: v for k, v in ours.items() if isinstance(v, str)}


def _require_same(signed: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    if without_signatures(signed) != without_signatures(stored):
        raise bad_json("The signed object does not match the stored key")
