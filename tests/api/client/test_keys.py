"""End-to-end encryption keys: upload, query, claim and device-list changes over HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nacl.signing

from myelin.core.signing import encode_base64, sign_json

from harness import Client, RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"


class Device:
    """A client device with real ed25519 keys."""

    def __init__(self, client: Client, user_id: str, device_id: str) -> None:
        self.client = client
        self.user_id = user_id
        self.device_id = device_id
        self.key = nacl.signing.SigningKey.generate()
        self.curve = encode_base64(nacl.signing.SigningKey.generate().verify_key.encode())

    @property
    def public(self) -> str:
        return encode_base64(self.key.verify_key.encode())

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign_json(obj, self.user_id, self.key, f"ed25519:{self.device_id}")

    def device_keys(self, **overrides: Any) -> dict[str, Any]:
        keys = {"user_id": self.user_id, "device_id": self.device_id,
                "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                "keys": {f"ed25519:{self.device_id}": self.public,
                         f"curve25519:{self.device_id}": self.curve}}
        keys.update(overrides)
        return self.sign(keys)

    def otk(self, n: int) -> dict[str, Any]:
        return self.sign({"key": encode_base64(bytes([n]) * 32)})


async def device(server: RunningServer, name: str, display_name: str | None = None) -> Device:
    client = await user(server, name)
    me = (await client.get(f"{V3}/account/whoami")).json
    if display_name is not None:
        await client.request("PUT", f"{V3}/devices/{me['device_id']}",
                             {"display_name": display_name})
    return Device(client, me["user_id"], me["device_id"])


async def upload(dev: Device, body: dict[str, Any]) -> Any:
    return await dev.client.post(f"{V3}/keys/upload", body)


async def query(dev: Device, users: dict[str, list[str]]) -> dict[str, Any]:
    response = await dev.client.post(f"{V3}/keys/query", {"device_keys": users})
    assert response.status == 200, response
    return dict(response.json)


async def test_upload_and_query(homeserver: RunningServer) -> None:
    alice = await device(homeserver, "alice", "Alice's phone")
    bob = await device(homeserver, "bob")
    keys = alice.device_keys()
    response = await upload(alice, {
        "device_keys": keys,
        "one_time_keys": {"signed_curve25519:AAAA": alice.otk(1),
                          "signed_curve25519:AAAB": alice.otk(2)},
    })
    assert response.status == 200, response
    assert response.json == {"one_time_key_counts": {"signed_curve25519": 2}}
    # Re-uploading the same device keys and one-time keys is fine and adds nothing.
    again = await upload(alice, {"device_keys": keys,
                                 "one_time_keys": {"signed_curve25519:AAAA": alice.otk(1)}})
    assert again.json == {"one_time_key_counts": {"signed_curve25519": 2}}

    result = await query(bob, {alice.user_id: []})
    got = result["device_keys"][alice.user_id][alice.device_id]
    assert got == {**keys, "unsigned": {"device_display_name": "Alice's phone"}}
    assert result["failures"] == {}
    assert result["master_keys"] == {}
    only = await query(bob, {alice.user_id: ["NOPE"], "@someone:elsewhere.example": []})
    assert only["device_keys"] == {alice.user_id: {}}
    assert list(only["failures"]) == ["elsewhere.example"]  # unreachable: listed, per spec


async def test_upload_errors_store_nothing(homeserver: RunningServer) -> None:
    alice = await device(homeserver, "alice")
    bob = await device(homeserver, "bob")
    otks = {"signed_curve25519:AAAA": alice.otk(1)}

    async def rejected(body: dict[str, Any], errcode: str) -> None:
        response = await upload(alice, body)
        assert response.status == 400, response
        assert response.json["errcode"] == errcode
        assert (await upload(alice, {})).json == {"one_time_key_counts": {}}
        assert (await query(bob, {alice.user_id: []}))["device_keys"] == {alice.user_id: {}}

    # Someone else's user or device.
    await rejected({"device_keys": alice.device_keys(user_id=bob.user_id),
                    "one_time_keys": otks}, "M_INVALID_PARAM")
    await rejected({"device_keys": alice.device_keys(device_id="OTHER"),
                    "one_time_keys": otks}, "M_INVALID_PARAM")
    # Signed by another key, or tampered with after signing.
    forged = Device(alice.client, alice.user_id, alice.device_id)
    forged.curve = alice.curve
    bad = forged.device_keys()
    bad["keys"][f"ed25519:{alice.device_id}"] = alice.public
    await rejected({"device_keys": bad, "one_time_keys": otks}, "M_INVALID_SIGNATURE")
    tampered = alice.device_keys()
    tampered["algorithms"] = ["m.megolm.v1.aes-sha2"]
    await rejected({"device_keys": tampered}, "M_INVALID_SIGNATURE")
    unsigned = alice.device_keys()
    del unsigned["signatures"]
    await rejected({"device_keys": unsigned}, "M_BAD_JSON")
    # Key IDs that are not the device's, a missing curve25519 key, bad shapes.
    wrong_ids = alice.device_keys(keys={f"ed25519:{alice.device_id}": alice.public,
                                        "curve25519:OTHER": alice.curve})
    await rejected({"device_keys": wrong_ids}, "M_INVALID_PARAM")
    await rejected({"device_keys": alice.device_keys(keys={
        f"ed25519:{alice.device_id}": alice.public})}, "M_INVALID_PARAM")
    await rejected({"device_keys": alice.device_keys(algorithms="m.megolm.v1.aes-sha2")},
                   "M_BAD_JSON")
    await rejected({"one_time_keys": {"nocolon": "abc"}}, "M_BAD_JSON")
    await rejected({"one_time_keys": {"curve25519:A": 5}}, "M_BAD_JSON")
    await rejected({"device_keys": alice.device_keys(),
                    "one_time_keys": {"signed_curve25519:B": {"nokey": 1}}}, "M_BAD_JSON")


async def test_conflicting_reuploads(homeserver: RunningServer) -> None:
    alice = await device(homeserver, "alice")
    bob = await device(homeserver, "bob")
    keys = alice.device_keys()
    assert (await upload(alice, {"device_keys": keys,
                                 "one_time_keys": {"curve25519:K1": "aaaa"}})).status == 200
    # New identity keys for an existing device are refused, with everything else in the request.
    other = Device(alice.client, alice.user_id, alice.device_id)
    response = await upload(alice, {"device_keys": other.device_keys(),
                                    "one_time_keys": {"curve25519:K2": "bbbb"}})
    assert response.status == 400 and response.json["errcode"] == "M_INVALID_PARAM"
    # A one-time key ID reused with different content is refused too.
    clash = await upload(alice, {"one_time_keys": {"curve25519:K1": "cccc",
                                                   "curve25519:K3": "dddd"}})
    assert clash.status == 400 and clash.json["errcode"] == "M_INVALID_PARAM"
    assert (await upload(alice, {})).json == {"one_time_key_counts": {"curve25519": 1}}
    stored = (await query(bob, {alice.user_id: []}))["device_keys"][alice.user_id]
    assert stored[alice.device_id]["keys"] == keys["keys"]


async def otk_counts(services: Any, who: Any) -> dict[str, int]:
    return (await services.e2e_keys.key_counts(who.user_id, who.device_id))[0]


async def fallback_types(services: Any, who: Any) -> list[str]:
    return (await services.e2e_keys.key_counts(who.user_id, who.device_id))[1]


async def test_claim_exhaustion_then_fallback(homeserver: RunningServer) -> None:
    alice = await device(homeserver, "alice")
    bob = await device(homeserver, "bob")
    services = homeserver.services
    fallback = {**alice.otk(9), "fallback": True}
    fallback = alice.sign({k: v for k, v in fallback.items() if k != "signatures"})
    assert (await upload(alice, {
        "device_keys": alice.device_keys(),
        "one_time_keys": {"signed_curve25519:A1": alice.otk(1),
                          "signed_curve25519:A2": alice.otk(2)},
        "fallback_keys": {"signed_curve25519:F1": fallback},
    })).status == 200
    assert await fallback_types(services, alice) == ["signed_curve25519"]

    async def claim() -> dict[str, Any]:
        response = await bob.client.post(f"{V3}/keys/claim", {"one_time_keys": {
            alice.user_id: {alice.device_id: "signed_curve25519", "NODEVICE": "curve25519"}}})
        assert response.status == 200, response
        assert response.json["failures"] == {}
        return dict(response.json["one_time_keys"])

    first, second = await asyncio.gather(claim(), claim())
    claimed = [first[alice.user_id][alice.device_id], second[alice.user_id][alice.device_id]]
    assert sorted(k for c in claimed for k in c) == ["signed_curve25519:A1",
                                                     "signed_curve25519:A2"]
    assert claimed[0] != claimed[1]
    assert await otk_counts(services, alice) == {}
    # Exhausted: the fallback key, now marked used, and handed out again until replaced.
    for _ in range(2):
        got = await claim()
        assert got == {alice.user_id: {alice.device_id: {"signed_curve25519:F1": fallback}}}
    assert await fallback_types(services, alice) == []
    # Re-uploading the same fallback key keeps it used; a new one is unused.
    await upload(alice, {"fallback_keys": {"signed_curve25519:F1": fallback}})
    assert await fallback_types(services, alice) == []
    await upload(alice, {"fallback_keys": {"signed_curve25519:F2": fallback}})
    assert await fallback_types(services, alice) == ["signed_curve25519"]
    # Nothing at all for a device without keys.
    empty = await bob.client.post(f"{V3}/keys/claim", {"one_time_keys": {
        bob.user_id: {bob.device_id: "signed_curve25519"}}})
    assert empty.json == {"one_time_keys": {}, "failures": {}}


async def test_device_list_changes_and_sync_wakeup(homeserver: RunningServer) -> None:
    alice = await device(homeserver, "alice")
    bob = await device(homeserver, "bob")
    carol = await device(homeserver, "carol")
    dave = await device(homeserver, "dave")
    room_id = (await alice.client.post(f"{V3}/createRoom",
                                       {"preset": "public_chat"})).json["room_id"]
    assert (await bob.client.post(f"{V3}/join/{room_id}", {})).status == 200
    start = (await alice.client.get(f"{V3}/sync")).json["next_batch"]

    services = homeserver.services
    # A /sync long-poll of alice (listening to her rooms) is woken by bob's new keys. Until
    # /sync reports device_lists it would go back to waiting, so wait on the notifier directly.
    poll = asyncio.create_task(services.notifier.wait(
        alice.user_id, [room_id], services.timeline.stream.current, 5))
    await asyncio.sleep(0.1)
    began = time.monotonic()
    assert (await upload(bob, {"device_keys": bob.device_keys()})).status == 200
    assert await poll is True
    assert time.monotonic() - began < 2
    assert (await upload(dave, {"device_keys": dave.device_keys()})).status == 200  # no room
    after_keys = (await alice.client.get(f"{V3}/sync?since={start}")).json["next_batch"]

    async def changes(since: str, upto: str) -> dict[str, Any]:
        response = await alice.client.get(f"{V3}/keys/changes?from={since}&to={upto}")
        assert response.status == 200, response
        return dict(response.json)

    assert await changes(start, after_keys) == {"changed": [bob.user_id], "left": []}
    assert await services.e2e_keys.device_list_changes(alice.user_id, None, 10**6) == ([], [])
    # Uploading only one-time keys is not a device list change.
    assert (await upload(bob, {"one_time_keys": {"curve25519:X": "abcd"}})).status == 200
    later = (await alice.client.get(f"{V3}/sync?since={after_keys}")).json["next_batch"]
    assert await changes(after_keys, later) == {"changed": [], "left": []}
    # Someone new sharing a room, and someone leaving every shared room.
    assert (await carol.client.post(f"{V3}/join/{room_id}", {})).status == 200
    assert (await bob.client.post(f"{V3}/rooms/{room_id}/leave", {})).status == 200
    end = (await alice.client.get(f"{V3}/sync?since={later}")).json["next_batch"]
    assert await changes(later, end) == {"changed": [carol.user_id], "left": [bob.user_id]}
    bad = await alice.client.get(f"{V3}/keys/changes?from=garbage&to={end}")
    assert bad.status == 400
    missing = await alice.client.get(f"{V3}/keys/changes?from={start}")
    assert missing.status == 400


async def test_logout_removes_the_device_keys_and_announces_it(homeserver) -> None:
    import nacl.signing

    from myelin.core.signing import encode_base64, sign_json

    from harness import logged_in_user

    alice = await logged_in_user(homeserver, "kalice")
    bob = await logged_in_user(homeserver, "kbob")
    room_id = (await alice.post("/_matrix/client/v3/createRoom",
                                {"preset": "public_chat"})).json["room_id"]
    await bob.post(f"/_matrix/client/v3/join/{room_id}", {})
    device = (await bob.get("/_matrix/client/v3/account/whoami")).json["device_id"]
    key = nacl.signing.SigningKey.generate()
    public = encode_base64(bytes(key.verify_key))
    device_keys = {"user_id": "@kbob:test.local", "device_id": device,
                   "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                   "keys": {f"ed25519:{device}": public, f"curve25519:{device}": public}}
    signed = sign_json(device_keys, "@kbob:test.local", key, f"ed25519:{device}")
    assert (await bob.post("/_matrix/client/v3/keys/upload",
                           {"device_keys": signed})).status == 200
    token = (await alice.get("/_matrix/client/v3/sync")).json["next_batch"]
    query = {"device_keys": {"@kbob:test.local": []}}
    before = await alice.post("/_matrix/client/v3/keys/query", query)
    assert device in before.json["device_keys"]["@kbob:test.local"]
    assert (await bob.post("/_matrix/client/v3/logout")).status == 200
    after = await alice.post("/_matrix/client/v3/keys/query", query)
    assert after.json["device_keys"].get("@kbob:test.local", {}) == {}
    changes = (await alice.get(f"/_matrix/client/v3/sync?since={token}")).json
    assert "@kbob:test.local" in changes["device_lists"]["changed"]
    rows = await homeserver.services.db.fetch(
        "SELECT device_id FROM e2e_device_keys WHERE user_id = '@kbob:test.local'")
    assert rows == []


async def test_sync_key_counts_follow_uploads_and_claims(homeserver: RunningServer) -> None:
    alice = await device(homeserver, "alice")
    bob = await device(homeserver, "bob")

    async def counts() -> tuple[Any, Any]:
        body = (await alice.client.get(f"{V3}/sync?timeout=0")).json
        return body["device_one_time_keys_count"], body["device_unused_fallback_key_types"]

    async def claim() -> None:
        response = await bob.client.post(f"{V3}/keys/claim", {"one_time_keys": {
            alice.user_id: {alice.device_id: "signed_curve25519"}}})
        assert response.status == 200

    assert await counts() == ({}, [])
    fallback = alice.sign({**alice.otk(9), "fallback": True})
    await upload(alice, {"device_keys": alice.device_keys(),
                         "one_time_keys": {"signed_curve25519:A1": alice.otk(1),
                                           "signed_curve25519:A2": alice.otk(2)},
                         "fallback_keys": {"signed_curve25519:F1": fallback}})
    assert await counts() == ({"signed_curve25519": 2}, ["signed_curve25519"])
    await claim()
    assert await counts() == ({"signed_curve25519": 1}, ["signed_curve25519"])
    await claim()
    await claim()  # out of one-time keys: the fallback key is used
    assert await counts() == ({}, [])
    await upload(alice, {"one_time_keys": {"signed_curve25519:A3": alice.otk(3)}})
    assert await counts() == ({"signed_curve25519": 1}, [])
