"""Which servers hear about an event: this server's events go to every other server with a
member in the room (server-server API, "Transactions": PDUs are pushed to the servers in the
room), queued per destination by the ``FederationSender``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from myelin.core.events import PDU
from myelin.services.rooms.membership_cache import JoinedMembers

log = logging.getLogger("myelin.federation")


class PduQueue(Protocol):
    async def send_pdu(self, destinations: Iterable[str], pdu_json: dict) -> None: ...  # type: ignore[type-arg]


def server_of(user_id: str) -> str | None:
    return user_id.split(":", 1)[1] if ":" in user_id else None


class RoomDistributor:
    def __init__(self, queue: PduQueue, joined_members: JoinedMembers,
                 server_name: str) -> None:
        self._queue = queue
        self._joined_members = joined_members
        self._server_name = server_name
        # One worker keeps the room's order: events are queued in the order they committed.
        self._pending: asyncio.Queue[PDU] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def destinations(self, pdu: PDU, exclude: Iterable[str] = ()) -> set[str]:
        servers = {s for m in await self._joined_members.get(pdu.room_id)
                   if (s := server_of(m)) is not None}
        if pdu.type == "m.room.member" and pdu.state_key:
            # A member leaving, kicked or banned is no longer joined but must hear of it.
            target = server_of(pdu.state_key)
            if target is not None and pdu.membership != "invite":
                servers.add(target)
        return servers - {self._server_name, *exclude}

    async def distribute(self, pdu: PDU, exclude: Iterable[str] = ()) -> None:
        destinations = await self.destinations(pdu, exclude)
        if destinations:
            await self._queue.send_pdu(sorted(destinations), pdu.data)

    def on_persisted(self, pdu: PDU, stream: int) -> None:
        """Timeline callback: queue this server's own events (received ones are not ours to
        forward; send_join forwards the joins it accepts itself)."""
        if server_of(pdu.sender) != self._server_name:
            return
        self._pending.put_nowait(pdu)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        while not self._pending.empty():
            pdu = self._pending.get_nowait()
            try:
                await self.distribute(pdu)
            except Exception:
                log.exception("queueing %s for other servers failed", pdu.event_id)

    async def drain(self) -> None:
        """Finish queueing what was handed over (at shutdown)."""
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)
