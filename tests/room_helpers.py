"""Client-side steps the federation tests repeat: make rooms, send messages, wait for events
to arrive on the other server."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any
from urllib.parse import quote

from harness import Client


async def create_room(client: Client, **body: Any) -> str:
    response = await client.post("/_matrix/client/v3/createRoom", {"preset": "public_chat",
                                                                   **body})
    assert response.status == 200, response
    return str(response.json["room_id"])


async def join(client: Client, room: str, via: list[str] | None = None) -> Any:
    query = "".join(f"&via={quote(s)}" for s in via or [])
    return await client.post(f"/_matrix/client/v3/join/{quote(room)}?{query.lstrip('&')}", {})


async def send_text(client: Client, room_id: str, text: str) -> str:
    txn = secrets.token_hex(8)
    response = await client.request(
        "PUT", f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{txn}",
        {"msgtype": "m.text", "body": text})
    assert response.status == 200, response
    return str(response.json["event_id"])


async def timeline_texts(client: Client, room_id: str, limit: int = 100) -> list[str]:
    response = await client.get(
        f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=b&limit={limit}")
    assert response.status == 200, response
    return [e["content"].get("body") for e in reversed(response.json["chunk"])
            if e["type"] == "m.room.message"]


async def wait_for(check: Any, within: float = 15.0, interval: float = 0.1) -> Any:
    """Poll ``check`` (an async callable) until it returns something truthy."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within} s (last: {last!r})")


async def wait_for_text(client: Client, room_id: str, text: str, within: float = 15.0) -> None:
    async def seen() -> bool:
        return text in await timeline_texts(client, room_id)
    await wait_for(seen, within)
