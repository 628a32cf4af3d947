"""Other servers' signing keys (``server_keys``), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from myelin.storage.database import Database
from myelin.storage.stores.server_keys import ServerKeyRecord, ServerKeyStore


def response(valid_until: int, current: dict[str, str], old: dict[str, tuple[str, int]]
             | None = None, server: str = "remote.example") -> dict[str, Any]:
    return {
        "server_name": server,
        "verify_keys": {kid: {"key": key} for kid, key in current.items()},
        "old_verify_keys": {kid: {"key": key, "expired_ts": ts}
                            for kid, (key, ts) in (old or {}).items()},
        "valid_until_ts": valid_until,
        "signatures": {server: {kid: "sig" for kid in current}},
    }


async def test_store_and_read_back(db: Database) -> None:
    store = ServerKeyStore(db)
    r = response(5000, {"ed25519:a": "AAAA", "curve25519:x": "ignored"},
                 {"ed25519:old": ("OOOO", 1234)})
    await store.store_response(r, from_server="remote.example", fetched_ts=100)
    keys = await store.get_keys("remote.example")
    assert keys == {
        "ed25519:a": ServerKeyRecord("remote.example", "ed25519:a", "AAAA", 5000, None, 100,
                                     "remote.example"),
        "ed25519:old": ServerKeyRecord("remote.example", "ed25519:old", "OOOO", 5000, 1234,
                                       100, "remote.example"),
    }
    assert list(await store.get_keys("remote.example", ["ed25519:old", "ed25519:zz"])) == [
        "ed25519:old"]
    assert await store.get_keys("other.example") == {}
    assert await store.latest_response("remote.example") == r
    assert await store.latest_response("other.example") is None
    assert await store.responses("remote.example") == [r]
    assert await store.responses("remote.example", ["ed25519:zz"]) == []


async def test_fresher_response_replaces_and_stale_one_does_not(db: Database) -> None:
    store = ServerKeyStore(db)
    first = response(5000, {"ed25519:a": "AAAA"})
    await store.store_response(first, from_server="remote.example", fetched_ts=100)
    fresher = response(9000, {"ed25519:a": "AAAA", "ed25519:b": "BBBB"})
    await store.store_response(fresher, from_server="notary.example", fetched_ts=200)
    keys = await store.get_keys("remote.example")
    assert keys["ed25519:a"].valid_until_ts == 9000
    assert keys["ed25519:a"].from_server == "notary.example"
    # A stale copy (say, from a notary's cache) cannot shorten what we know.
    await store.store_response(first, from_server="remote.example", fetched_ts=300)
    assert (await store.get_keys("remote.example"))["ed25519:a"].valid_until_ts == 9000
    assert await store.latest_response("remote.example") == fresher
    assert await store.responses("remote.example") == [fresher]


async def test_retired_key_stays_retired(db: Database) -> None:
    store = ServerKeyStore(db)
    await store.store_response(response(5000, {"ed25519:a": "AAAA"}),
                               from_server="remote.example", fetched_ts=100)
    rotated = response(4000, {"ed25519:b": "BBBB"}, {"ed25519:a": ("AAAA", 4500)})
    await store.store_response(rotated, from_server="remote.example", fetched_ts=200)
    keys = await store.get_keys("remote.example")
    assert keys["ed25519:a"].expired_ts == 4500  # news of retirement wins, however dated
    # An old copy listing the key as current does not bring it back.
    await store.store_response(response(6000, {"ed25519:a": "AAAA"}),
                               from_server="notary.example", fetched_ts=300)
    assert (await store.get_keys("remote.example"))["ed25519:a"].expired_ts == 4500
    # Both rows now come from the rotated response, which a notary hands out once.
    responses = await store.responses("remote.example")
    assert [r["valid_until_ts"] for r in responses] == [4000]
    assert len(await store.responses("remote.example", ["ed25519:a", "ed25519:b"])) == 1


async def test_servers_are_kept_apart(db: Database) -> None:
    store = ServerKeyStore(db)
    await store.store_response(response(5000, {"ed25519:a": "AAAA"}),
                               from_server="remote.example", fetched_ts=1)
    await store.store_response(response(7000, {"ed25519:a": "CCCC"}, server="two.example"),
                               from_server="two.example", fetched_ts=1)
    assert (await store.get_keys("remote.example"))["ed25519:a"].verify_key == "AAAA"
    assert (await store.get_keys("two.example"))["ed25519:a"].verify_key == "CCCC"


async def test_large_timestamps_round_trip(db: Database) -> None:
    store = ServerKeyStore(db)
    await store.store_response(response(2**53 - 1, {"ed25519:a": "AAAA"}, {"ed25519:o": (
        "OOOO", 2**53 - 2)}), from_server="remote.example", fetched_ts=2**41)
    keys = await store.get_keys("remote.example")
    assert keys["ed25519:a"].valid_until_ts == 2**53 - 1
    assert keys["ed25519:o"].expired_ts == 2**53 - 2
