"""UserStore, DeviceStore and ServerMetaStore, each test run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from myelin.storage.database import Database, IntegrityError
from myelin.storage.stores.devices import DeviceStore
from myelin.storage.stores.server_meta import ServerMetaStore
from myelin.storage.stores.tokens import TokenStore
from myelin.storage.stores.users import UserExistsError, UserStore


async def test_users_insert_get_and_duplicates(db: Database) -> None:
    users = UserStore(db)
    await users.insert_user("@a:x", "hash", created_ts=5, is_admin=True)
    record = await users.get_user("@a:x")
    assert record is not None
    assert (record.user_id, record.password_hash, record.is_admin, record.is_guest,
            record.deactivated, record.created_ts) == ("@a:x", "hash", True, False, False, 5)
    assert await users.get_user("@nobody:x") is None
    with pytest.raises(UserExistsError):
        await users.insert_user("@a:x", None, created_ts=6)
    assert (await users.get_user("@a:x")).password_hash == "hash"  # type: ignore[union-attr]


async def test_users_concurrent_registration_of_one_name_has_one_winner(db: Database) -> None:
    users = UserStore(db)
    results = await asyncio.gather(
        *(users.insert_user("@race:x", f"h{i}", created_ts=i) for i in range(20)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, UserExistsError) for r in results if r is not None)


async def test_users_updates(db: Database) -> None:
    users = UserStore(db)
    await users.insert_user("@a:x", None, created_ts=1)
    assert await users.set_admin("@a:x", True)
    assert await users.set_password_hash("@a:x", "new")
    assert not await users.set_admin("@missing:x", True)
    record = await users.get_user("@a:x")
    assert record is not None and record.is_admin and record.password_hash == "new"


async def test_devices_and_tokens(db: Database) -> None:
    await UserStore(db).insert_user("@a:x", None, created_ts=1, is_admin=True)
    devices, tokens = DeviceStore(db), TokenStore(db)
    await tokens.insert_session("@a:x", "D1", "t1", display_name="Phone", now_ts=10)
    await tokens.insert_session("@a:x", "D1", "t2", display_name=None, now_ts=11)
    await tokens.insert_session("@a:x", "D2", "t3", display_name="Laptop", now_ts=12,
                                expires_ts=99)
    listed = await devices.list_devices("@a:x")
    assert [(d.device_id, d.display_name) for d in listed] == [("D1", "Phone"), ("D2", "Laptop")]
    token = await tokens.get_token("t3")
    assert token is not None
    assert (token.user_id, token.device_id, token.expires_ts, token.is_admin) == (
        "@a:x", "D2", 99, True)
    assert await tokens.get_token("nope") is None
    assert sorted(await devices.delete_device("@a:x", "D1")) == ["t1", "t2"]
    assert await tokens.get_token("t1") is None
    assert [d.device_id for d in await devices.list_devices("@a:x")] == ["D2"]


async def test_device_for_unknown_user_leaves_nothing(db: Database) -> None:
    devices, tokens = DeviceStore(db), TokenStore(db)
    with pytest.raises(IntegrityError):
        await tokens.insert_session("@ghost:x", "D", "t", display_name=None, now_ts=1)
    assert await tokens.get_token("t") is None
    assert await devices.list_devices("@ghost:x") == []


async def test_duplicate_token_rolls_back_the_new_device(db: Database) -> None:
    await UserStore(db).insert_user("@a:x", None, created_ts=1)
    devices, tokens = DeviceStore(db), TokenStore(db)
    await tokens.insert_session("@a:x", "D1", "same", display_name=None, now_ts=1)
    with pytest.raises(IntegrityError):
        await tokens.insert_session("@a:x", "D2", "same", display_name=None, now_ts=2)
    assert [d.device_id for d in await devices.list_devices("@a:x")] == ["D1"]


async def test_server_meta(db: Database) -> None:
    meta = ServerMetaStore(db)
    assert await meta.get("k") is None
    await meta.upsert("k", "v1")
    await meta.upsert("k", "v2")
    assert await meta.get("k") == "v2"


async def test_refresh_token_rotation(db: Database) -> None:
    await UserStore(db).insert_user("@a:x", None, created_ts=1)
    tokens = TokenStore(db)
    await tokens.insert_session("@a:x", "D", "a1", display_name=None, now_ts=1, expires_ts=10,
                                refresh_sha256="r1")
    assert await tokens.refresh("r1", "a2", "r2", now_ts=2, expires_ts=20) == ("@a:x", "D")
    # r1 stays valid until the new pair is used ...
    assert await tokens.refresh("r1", "a2b", "r2b", now_ts=3, expires_ts=30) == ("@a:x", "D")
    await tokens.retire_previous_refresh("r2b")  # ... a2b was used: r1 is gone now
    assert await tokens.refresh("r1", "x", "y", now_ts=4, expires_ts=40) is None
    assert await tokens.refresh("nope", "x2", "y2", now_ts=4, expires_ts=40) is None
    record = await tokens.get_token("a2b")
    assert record is not None and record.refresh_sha256 == "r2b" and record.expires_ts == 30
    # Deleting the device takes its refresh tokens with it.
    await DeviceStore(db).delete_device("@a:x", "D")
    assert await tokens.refresh("r2b", "x3", "y3", now_ts=5, expires_ts=50) is None
