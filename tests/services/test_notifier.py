from __future__ import annotations

import asyncio
import time

from myelin.services.notifier import Notifier


async def test_wakes_room_listeners_within_milliseconds() -> None:
    notifier = Notifier()
    started = time.perf_counter()
    task = asyncio.create_task(notifier.wait("@a:x", ["!r"], since=0, timeout_s=5))
    await asyncio.sleep(0)
    notifier.announce(1, rooms=["!r"])
    assert await task is True
    assert time.perf_counter() - started < 0.05
    assert notifier.waiting == 0


async def test_other_rooms_do_not_wake() -> None:
    notifier = Notifier()
    task = asyncio.create_task(notifier.wait("@a:x", ["!r"], since=0, timeout_s=0.1))
    await asyncio.sleep(0)
    notifier.announce(1, rooms=["!other"])
    assert await task is False
    assert notifier.waiting == 0


async def test_user_listeners_and_catch_up() -> None:
    notifier = Notifier()
    task = asyncio.create_task(notifier.wait("@a:x", [], since=0, timeout_s=5))
    await asyncio.sleep(0)
    notifier.announce(3, users=["@a:x"])  # e.g. an invite into a room not yet joined
    assert await task is True
    # Behind the stream already: no waiting at all.
    assert await notifier.wait("@a:x", [], since=1, timeout_s=5) is True


async def test_wake_all_for_shutdown() -> None:
    notifier = Notifier()
    tasks = [asyncio.create_task(notifier.wait(f"@u{i}:x", ["!r"], since=0, timeout_s=30))
             for i in range(100)]
    await asyncio.sleep(0)
    assert notifier.waiting == 100
    notifier.wake_all()
    assert not any(await asyncio.gather(*tasks))  # nothing new: the server is closing
    assert notifier.waiting == 0
