"""Server-side key backups: /room_keys/version and /room_keys/keys."""

from __future__ import annotations

from typing import Any

from harness import Client, RunningServer
from harness import logged_in_user as user

V3 = "/_matrix/client/v3"
ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!room:test.local"


def key(index: int = 0, forwarded: int = 0, verified: bool = False,
        tag: str = "x") -> dict[str, Any]:
    return {"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
            "session_data": {"ciphertext": tag, "ephemeral": "e", "mac": "m"}}


async def create(client: Client, public_key: str = "abc") -> str:
    response = await client.post(f"{V3}/room_keys/version",
                                  {"algorithm": ALGORITHM, "auth_data": {"public_key": public_key}})
    assert response.status == 200, response
    return str(response.json["version"])


def error(response: Any) -> tuple[int, str]:
    return response.status, response.json.get("errcode")


async def test_version_lifecycle(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    bob = await user(homeserver, "bob")
    assert error(await alice.get(f"{V3}/room_keys/version")) == (404, "M_NOT_FOUND")
    v1 = await create(alice, "one")
    info = (await alice.get(f"{V3}/room_keys/version")).json
    assert info == {"algorithm": ALGORITHM, "auth_data": {"public_key": "one"}, "count": 0,
                    "etag": info["etag"], "version": v1}
    assert isinstance(info["etag"], str)
    assert (await alice.get(f"{V3}/room_keys/version/{v1}")).json == info
    # Backups are per user.
    assert error(await bob.get(f"{V3}/room_keys/version")) == (404, "M_NOT_FOUND")
    assert error(await bob.get(f"{V3}/room_keys/version/{v1}")) == (404, "M_NOT_FOUND")

    v2 = await create(alice, "two")
    assert v2 != v1
    assert (await alice.get(f"{V3}/room_keys/version")).json["version"] == v2
    assert (await alice.get(f"{V3}/room_keys/version/{v1}")).json["auth_data"] == \
        {"public_key": "one"}

    # Only auth_data may change; the algorithm and a body version must match.
    update = {"algorithm": ALGORITHM, "auth_data": {"public_key": "two", "signatures": {}},
              "version": v2}
    assert (await alice.request("PUT", f"{V3}/room_keys/version/{v2}", update)).json == {}
    assert (await alice.get(f"{V3}/room_keys/version")).json["auth_data"] == \
        {"public_key": "two", "signatures": {}}
    bad = await alice.request("PUT", f"{V3}/room_keys/version/{v2}",
                              {**update, "algorithm": "m.other"})
    assert error(bad) == (400, "M_INVALID_PARAM")
    bad = await alice.request("PUT", f"{V3}/room_keys/version/{v2}", {**update, "version": v1})
    assert error(bad) == (400, "M_INVALID_PARAM")
    for missing in ("nope", "999", "-1"):
        bad = await alice.request("PUT", f"{V3}/room_keys/version/{missing}",
                                  {**update, "version": missing})
        assert error(bad) == (404, "M_NOT_FOUND")
        assert error(await alice.get(f"{V3}/room_keys/version/{missing}")) == (404, "M_NOT_FOUND")
        assert error(await alice.request("DELETE", f"{V3}/room_keys/version/{missing}")) == \
            (404, "M_NOT_FOUND")
    assert (await alice.get(f"{V3}/room_keys/version")).json["auth_data"] == \
        {"public_key": "two", "signatures": {}}

    # Deleting the current version makes the previous live one current again; deleting twice
    # succeeds; a deleted version is gone and its number is never reused.
    assert (await alice.request("DELETE", f"{V3}/room_keys/version/{v2}")).json == {}
    assert (await alice.request("DELETE", f"{V3}/room_keys/version/{v2}")).status == 200
    assert error(await alice.get(f"{V3}/room_keys/version/{v2}")) == (404, "M_NOT_FOUND")
    assert error(await alice.request("PUT", f"{V3}/room_keys/version/{v2}", update)) == \
        (404, "M_NOT_FOUND")
    assert (await alice.get(f"{V3}/room_keys/version")).json["version"] == v1
    v3 = await create(alice)
    assert v3 not in (v1, v2)
    assert (await alice.get(f"{V3}/room_keys/version")).json["version"] == v3

    # Body shape.
    bad = await alice.post(f"{V3}/room_keys/version", {"algorithm": ALGORITHM})
    assert error(bad) == (400, "M_MISSING_PARAM")
    bad = await alice.post(f"{V3}/room_keys/version", {"algorithm": 1, "auth_data": {}})
    assert error(bad) == (400, "M_BAD_JSON")
    bad = await alice.post(f"{V3}/room_keys/version", {"algorithm": ALGORITHM, "auth_data": []})
    assert error(bad) == (400, "M_BAD_JSON")
    assert (await alice.get(f"{V3}/room_keys/version")).json["version"] == v3


async def test_upload_and_read_keys(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    version = await create(alice)
    q = f"?version={version}"
    first = await alice.request("PUT", f"{V3}/room_keys/keys{q}", {"rooms": {
        ROOM: {"sessions": {"s1": key(tag="a"), "s2": key(tag="b")}},
        "!other:test.local": {"sessions": {"s1": key(tag="c")}},
    }})
    assert first.status == 200 and first.json["count"] == 3
    second = await alice.request("PUT", f"{V3}/room_keys/keys/{ROOM}{q}",
                                 {"sessions": {"s3": key(tag="d")}})
    assert second.json["count"] == 4 and second.json["etag"] != first.json["etag"]
    third = await alice.request("PUT", f"{V3}/room_keys/keys/{ROOM}/s4{q}", key(tag="e"))
    assert third.json["count"] == 5 and third.json["etag"] != second.json["etag"]
    info = (await alice.get(f"{V3}/room_keys/version")).json
    assert (info["count"], info["etag"]) == (5, third.json["etag"])

    everything = (await alice.get(f"{V3}/room_keys/keys{q}")).json
    assert everything == {"rooms": {
        ROOM: {"sessions": {"s1": key(tag="a"), "s2": key(tag="b"), "s3": key(tag="d"),
                            "s4": key(tag="e")}},
        "!other:test.local": {"sessions": {"s1": key(tag="c")}},
    }}
    assert (await alice.get(f"{V3}/room_keys/keys/{ROOM}{q}")).json == \
        everything["rooms"][ROOM]
    assert (await alice.get(f"{V3}/room_keys/keys/{ROOM}/s2{q}")).json == key(tag="b")
    assert (await alice.get(f"{V3}/room_keys/keys/!empty:test.local{q}")).json == \
        {"sessions": {}}
    assert error(await alice.get(f"{V3}/room_keys/keys/{ROOM}/nope{q}")) == \
        (404, "M_NOT_FOUND")
    # Nobody else sees them.
    bob = await user(homeserver, "bob")
    assert error(await bob.get(f"{V3}/room_keys/keys{q}")) == (404, "M_NOT_FOUND")


async def test_replacement_rules(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    version = await create(alice)
    url = f"{V3}/room_keys/keys/{ROOM}/s?version={version}"

    async def put(body: dict[str, Any]) -> tuple[str, int]:
        response = await alice.request("PUT", url, body)
        assert response.status == 200, response
        return response.json["etag"], response.json["count"]

    async def stored() -> dict[str, Any]:
        return dict((await alice.get(url)).json)

    etag, count = await put(key(index=5, forwarded=2, tag="start"))
    assert count == 1
    steps = [
        # (upload, replaces?) -- each compared with what is stored at that point
        (key(index=5, forwarded=3, tag="more forwards"), False),
        (key(index=6, forwarded=0, tag="later index"), False),
        (key(index=5, forwarded=2, tag="identical metadata"), False),
        (key(index=5, forwarded=1, tag="fewer forwards"), True),
        (key(index=4, forwarded=9, tag="earlier index"), True),
        (key(index=9, forwarded=9, verified=True, tag="verified"), True),
        (key(index=0, forwarded=0, verified=False, tag="unverified"), False),
        (key(index=3, forwarded=9, verified=True, tag="verified earlier"), True),
        (key(index=3, forwarded=1, verified=True, tag="verified fewer"), True),
    ]
    for upload, replaces in steps:
        before = await stored()
        new_etag, new_count = await put(upload)
        assert new_count == 1
        if replaces:
            assert await stored() == upload, upload["session_data"]
            assert new_etag != etag
        else:
            assert await stored() == before, upload["session_data"]
            assert new_etag == etag  # nothing changed, so neither did the etag
        etag = new_etag


async def test_wrong_version_and_errors_store_nothing(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    assert error(await alice.request("PUT", f"{V3}/room_keys/keys/{ROOM}/s?version=1",
                                     key())) == (404, "M_NOT_FOUND")
    old = await create(alice)
    new = await create(alice)
    stale = await alice.request("PUT", f"{V3}/room_keys/keys/{ROOM}/s?version={old}", key())
    assert stale.status == 403
    assert stale.json["errcode"] == "M_WRONG_ROOM_KEYS_VERSION"
    assert stale.json["current_version"] == new
    for path in ("/room_keys/keys", f"/room_keys/keys/{ROOM}"):
        assert error(await alice.request("PUT", f"{V3}{path}?version={old}",
                                         {"rooms": {}, "sessions": {}})) == \
            (403, "M_WRONG_ROOM_KEYS_VERSION")
    for unknown in ("77", "abc"):
        assert error(await alice.request("PUT", f"{V3}/room_keys/keys/{ROOM}/s?version={unknown}",
                                         key())) == (404, "M_NOT_FOUND")
        assert error(await alice.get(f"{V3}/room_keys/keys?version={unknown}")) == \
            (404, "M_NOT_FOUND")
        assert error(await alice.request("DELETE", f"{V3}/room_keys/keys?version={unknown}")) \
            == (404, "M_NOT_FOUND")
    assert error(await alice.request("PUT", f"{V3}/room_keys/keys/{ROOM}/s", key())) == \
        (400, "M_MISSING_PARAM")
    assert error(await alice.get(f"{V3}/room_keys/keys")) == (400, "M_MISSING_PARAM")

    q = f"?version={new}"
    bad_bodies: list[tuple[str, Any]] = [
        (f"/room_keys/keys/{ROOM}/s", {**key(), "is_verified": "yes"}),
        (f"/room_keys/keys/{ROOM}/s", {**key(), "first_message_index": 1.5}),
        (f"/room_keys/keys/{ROOM}/s", {**key(), "forwarded_count": True}),
        (f"/room_keys/keys/{ROOM}/s", {k: v for k, v in key().items() if k != "session_data"}),
        (f"/room_keys/keys/{ROOM}", {"sessions": {"good": key(), "bad": {"x": 1}}}),
        (f"/room_keys/keys/{ROOM}", {"sessions": []}),
        ("/room_keys/keys", {"rooms": {ROOM: {"sessions": {"good": key()}}, "!b:x": {}}}),
        ("/room_keys/keys", {"rooms": []}),
    ]
    for path, body in bad_bodies:
        assert error(await alice.request("PUT", f"{V3}{path}{q}", body)) == (400, "M_BAD_JSON"), \
            (path, body)
    info = (await alice.get(f"{V3}/room_keys/version")).json
    assert (info["count"], info["etag"]) == (0, "0")
    assert (await alice.get(f"{V3}/room_keys/keys{q}")).json == {"rooms": {}}


async def test_delete_keys_and_versions(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    version = await create(alice)
    q = f"?version={version}"
    uploaded = await alice.request("PUT", f"{V3}/room_keys/keys{q}", {"rooms": {
        ROOM: {"sessions": {"s1": key(), "s2": key(), "s3": key()}},
        "!b:test.local": {"sessions": {"s1": key(), "s2": key()}},
        "!c:test.local": {"sessions": {"s1": key()}},
    }})
    etag = uploaded.json["etag"]
    assert uploaded.json["count"] == 6

    one = await alice.request("DELETE", f"{V3}/room_keys/keys/{ROOM}/s1{q}")
    assert one.json["count"] == 5 and one.json["etag"] != etag
    etag = one.json["etag"]
    again = await alice.request("DELETE", f"{V3}/room_keys/keys/{ROOM}/s1{q}")
    assert again.json == {"count": 5, "etag": etag}
    room = await alice.request("DELETE", f"{V3}/room_keys/keys/{ROOM}{q}")
    assert room.json["count"] == 3 and room.json["etag"] != etag
    assert (await alice.get(f"{V3}/room_keys/keys/{ROOM}{q}")).json == {"sessions": {}}
    assert set((await alice.get(f"{V3}/room_keys/keys{q}")).json["rooms"]) == \
        {"!b:test.local", "!c:test.local"}
    everything = await alice.request("DELETE", f"{V3}/room_keys/keys{q}")
    assert everything.json["count"] == 0
    assert (await alice.get(f"{V3}/room_keys/keys{q}")).json == {"rooms": {}}

    # Keys of an older version can still be read and deleted, but not written.
    assert (await alice.request("PUT", f"{V3}/room_keys/keys/{ROOM}/k{q}", key())).status == 200
    newer = await create(alice)
    assert (await alice.get(f"{V3}/room_keys/keys/{ROOM}/k{q}")).json == key()
    assert (await alice.get(f"{V3}/room_keys/version/{version}")).json["count"] == 1
    assert (await alice.get(f"{V3}/room_keys/version/{newer}")).json["count"] == 0

    # Deleting a version deletes its keys.
    assert (await alice.request("DELETE", f"{V3}/room_keys/version/{version}")).status == 200
    assert error(await alice.get(f"{V3}/room_keys/keys{q}")) == (404, "M_NOT_FOUND")
    assert error(await alice.request("DELETE", f"{V3}/room_keys/keys{q}")) == \
        (404, "M_NOT_FOUND")
    store = homeserver.services.key_backup._store
    assert await store.get_keys("@alice:test.local", int(version)) == []
