"""Cross-signing keys and signatures over HTTP."""

from __future__ import annotations

from typing import Any

import nacl.signing
from test_keys import V3, Device, device, query, upload

from myelin.core.signing import encode_base64, sign_json

from harness import RunningServer


class CrossSigningKey:
    def __init__(self, user_id: str, usage: str) -> None:
        self.user_id = user_id
        self.usage = usage
        self.key = nacl.signing.SigningKey.generate()
        self.public = encode_base64(self.key.verify_key.encode())
        self.key_id = f"ed25519:{self.public}"

    def json(self, signer: CrossSigningKey | None = None, **overrides: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"user_id": self.user_id, "usage": [self.usage],
                               "keys": {self.key_id: self.public}}
        out.update(overrides)
        return signer.sign(out) if signer is not None else out

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign_json(obj, self.user_id, self.key, self.key_id)


class Identity:
    def __init__(self, user_id: str) -> None:
        self.master = CrossSigningKey(user_id, "master")
        self.self_signing = CrossSigningKey(user_id, "self_signing")
        self.user_signing = CrossSigningKey(user_id, "user_signing")

    def body(self) -> dict[str, Any]:
        return {"master_key": self.master.json(),
                "self_signing_key": self.self_signing.json(self.master),
                "user_signing_key": self.user_signing.json(self.master)}


def password_auth(name: str, session: str, password: str = "pw") -> dict[str, Any]:
    return {"type": "m.login.password", "session": session, "password": password,
            "identifier": {"type": "m.id.user", "user": name}}


async def upload_cross_signing(dev: Device, body: dict[str, Any]) -> Any:
    return await dev.client.post(f"{V3}/keys/device_signing/upload", body)


async def signatures(dev: Device, body: dict[str, Any]) -> dict[str, Any]:
    response = await dev.client.post(f"{V3}/keys/signatures/upload", body)
    assert response.status == 200, response
    return dict(response.json)


async def test_upload_without_then_with_uia(homeserver: RunningServer) -> None:
    alice = await device(homeserver, "alice")
    bob = await device(homeserver, "bob")
    identity = Identity(alice.user_id)
    body = identity.body()
    # No master key yet: no UIA. Repeating exactly the same keys: still none.
    assert (await upload_cross_signing(alice, body)).status == 200
    assert (await upload_cross_signing(alice, body)).status == 200
    assert (await upload_cross_signing(alice, {"master_key": body["master_key"]})).status == 200

    seen_by_bob = await query(bob, {alice.user_id: []})
    assert seen_by_bob["master_keys"] == {alice.user_id: body["master_key"]}
    assert seen_by_bob["self_signing_keys"] == {alice.user_id: body["self_signing_key"]}
    assert seen_by_bob["user_signing_keys"] == {}
    own = await query(alice, {alice.user_id: []})
    assert own["user_signing_keys"] == {alice.user_id: body["user_signing_key"]}

    # Replacing keys needs the password.
    replacement = Identity(alice.user_id)
    challenge = await upload_cross_signing(alice, replacement.body())
    assert challenge.status == 401
    assert challenge.json["flows"] == [{"stages": ["m.login.password"]}]
    session = challenge.json["session"]
    wrong = await upload_cross_signing(alice, {**replacement.body(), "auth": password_auth(
        "alice", session, "nope")})
    assert wrong.status == 401 and wrong.json["errcode"] == "M_FORBIDDEN"
    # Omitting the master key while changing another one needs UIA too.
    partial = await upload_cross_signing(alice, {
        "self_signing_key": replacement.self_signing.json(identity.master)})
    assert partial.status == 401
    assert (await query(bob, {alice.user_id: []}))["master_keys"] == {
        alice.user_id: body["master_key"]}
    done = await upload_cross_signing(alice, {**replacement.body(),
                                              "auth": password_auth("alice", session)})
    assert done.status == 200, done
    assert (await query(bob, {alice.user_id: []}))["master_keys"] == {
        alice.user_id: replacement.body()["master_key"]}
    # A new self-signing key signed by the stored master key, with UIA.
    newer = CrossSigningKey(alice.user_id, "self_signing")
    challenge = await upload_cross_signing(alice, {"self_signing_key": newer.json()})
    ok = await upload_cross_signing(alice, {
        "self_signing_key": newer.json(replacement.master),
        "auth": password_auth("alice", challenge.json["session"])})
    assert ok.status == 200, ok
    assert (await query(bob, {alice.user_id: []}))["self_signing_keys"][alice.user_id][
        "keys"] == {newer.key_id: newer.public}


async def test_invalid_cross_signing_keys_store_nothing(homeserver: RunningServer) -> None:
    alice = await device(homeserver, "alice")
    identity = Identity(alice.user_id)
    stranger = CrossSigningKey(alice.user_id, "master")

    async def rejected(body: dict[str, Any], status: int, errcode: str) -> None:
        response = await upload_cross_signing(alice, body)
        assert response.status == status, response
        assert response.json["errcode"] == errcode
        got = await query(alice, {alice.user_id: []})
        assert got["master_keys"] == got["self_signing_keys"] == got["user_signing_keys"] == {}

    good = identity.body()
    await rejected({**good, "self_signing_key": identity.self_signing.json(stranger)},
                   400, "M_INVALID_SIGNATURE")
    await rejected({**good, "user_signing_key": identity.user_signing.json()},
                   400, "M_INVALID_SIGNATURE")
    await rejected({"self_signing_key": good["self_signing_key"]}, 400, "M_MISSING_PARAM")
    await rejected({**good, "master_key": identity.master.json(user_id="@bob:test.local")},
                   400, "M_BAD_JSON")
    await rejected({**good, "master_key": identity.master.json(usage=["self_signing"])},
                   400, "M_BAD_JSON")
    await rejected({**good, "master_key": identity.master.json(
        keys={"ed25519:abc": identity.master.public})}, 400, "M_BAD_JSON")
    await rejected({"master_key": {**good["master_key"], "keys": {"ed25519:AAAA": "AAAA"}}},
                   400, "M_BAD_JSON")  # not a real ed25519 key
    # A key whose public key is one of the user's device IDs.
    clash = CrossSigningKey(alice.user_id, "master")
    login = await alice.client.post(f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "pw", "device_id": clash.public})
    assert login.status == 200 and login.json["device_id"] == clash.public
    await rejected({"master_key": clash.json()}, 403, "M_FORBIDDEN")


async def test_signature_upload(homeserver: RunningServer) -> None:
    alice = await device(homeserver, "alice")
    bob = await device(homeserver, "bob")
    carol = await device(homeserver, "carol")
    alice_id, bob_id = Identity(alice.user_id), Identity(bob.user_id)
    for dev, identity in ((alice, alice_id), (bob, bob_id)):
        assert (await upload(dev, {"device_keys": dev.device_keys()})).status == 200
        assert (await upload_cross_signing(dev, identity.body())).status == 200

    # Alice's self-signing key signs her device; her device signs her master key.
    device_keys = alice.device_keys()
    signed_device = alice_id.self_signing.sign(device_keys)
    signed_master = alice.sign(alice_id.master.json())
    result = await signatures(alice, {alice.user_id: {
        alice.device_id: signed_device, alice_id.master.public: signed_master}})
    assert result == {"failures": {}}
    seen = await query(carol, {alice.user_id: []})
    got_device = seen["device_keys"][alice.user_id][alice.device_id]
    assert got_device["signatures"][alice.user_id] == signed_device["signatures"][alice.user_id]
    got_master = seen["master_keys"][alice.user_id]
    assert got_master["signatures"][alice.user_id][f"ed25519:{alice.device_id}"] == \
        signed_master["signatures"][alice.user_id][f"ed25519:{alice.device_id}"]

    # Bob's user-signing key signs Alice's master key: only Bob sees that signature.
    bob_signs = bob_id.user_signing.sign(alice_id.master.json())
    assert await signatures(bob, {alice.user_id: {alice_id.master.public: bob_signs}}) == {
        "failures": {}}
    by_bob = (await query(bob, {alice.user_id: []}))["master_keys"][alice.user_id]
    assert by_bob["signatures"][bob.user_id] == bob_signs["signatures"][bob.user_id]
    by_carol = (await query(carol, {alice.user_id: []}))["master_keys"][alice.user_id]
    assert bob.user_id not in by_carol["signatures"]
    changed = await homeserver.services.e2e_keys.device_list_changes(
        bob.user_id, 0, homeserver.services.timeline.stream.current)
    assert alice.user_id in changed[0]


async def test_signature_upload_failures(homeserver: RunningServer) -> None:
    alice = await device(homeserver, "alice")
    bob = await device(homeserver, "bob")
    alice_id, bob_id = Identity(alice.user_id), Identity(bob.user_id)
    assert (await upload(alice, {"device_keys": alice.device_keys()})).status == 200
    # Before any cross-signing keys: no self-signing key to check with.
    early = await signatures(alice, {alice.user_id: {
        alice.device_id: alice_id.self_signing.sign(alice.device_keys())}})
    assert early["failures"][alice.user_id][alice.device_id]["errcode"] == "M_NOT_FOUND"
    assert (await upload_cross_signing(alice, alice_id.body())).status == 200
    assert (await upload_cross_signing(bob, bob_id.body())).status == 200

    forged = CrossSigningKey(alice.user_id, "self_signing")
    forged.public, forged.key_id = alice_id.self_signing.public, alice_id.self_signing.key_id
    tampered = alice_id.self_signing.sign(alice.device_keys())
    tampered["algorithms"] = ["x"]
    result = await signatures(alice, {
        alice.user_id: {
            alice.device_id: forged.sign(alice.device_keys()),
            "NODEVICE": alice_id.self_signing.sign(alice.device_keys(device_id="NODEVICE")),
            alice_id.master.public: alice_id.master.json(),  # no device signature
        },
        bob.user_id: {bob_id.master.public: alice_id.user_signing.sign(
            bob_id.master.json(usage=["master", "extra"]))},
    })
    failures = result["failures"]
    assert failures[alice.user_id][alice.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures[alice.user_id]["NODEVICE"]["errcode"] == "M_NOT_FOUND"
    assert failures[alice.user_id][alice_id.master.public]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures[bob.user_id][bob_id.master.public]["errcode"] == "M_BAD_JSON"
    mismatch = await signatures(alice, {alice.user_id: {alice.device_id: tampered}})
    assert mismatch["failures"][alice.user_id][alice.device_id]["errcode"] == "M_BAD_JSON"
    # Nothing was stored.
    seen = await query(bob, {alice.user_id: []})
    assert set(seen["device_keys"][alice.user_id][alice.device_id]["signatures"]) == {
        alice.user_id}
    assert list(seen["device_keys"][alice.user_id][alice.device_id]["signatures"][
        alice.user_id]) == [f"ed25519:{alice.device_id}"]
    assert "signatures" not in (await query(alice, {bob.user_id: []}))["master_keys"][
        bob.user_id]
    malformed = await alice.client.post(f"{V3}/keys/signatures/upload",
                                        {alice.user_id: "nope"})
    assert malformed.status == 400 and malformed.json["errcode"] == "M_BAD_JSON"
