"""Reporting content to the server admins (client-server API, "Reporting content").

Reports are stored for the admins (table ``reports``). What each report answers, following
report_content.yaml:

* an event: the reporter must be joined to the room now and able to see the event. An unknown
  event, one of another room, one the reporter cannot see, a redacted one, and a room the
  reporter is not joined to all get the same 404, so the answer discloses nothing the reporter
  could not read anyway;
* a room: any user may report any room this server knows ("MUST NOT restrict room reports
  based on whether or not the reporting user is joined"); an unknown room is 404, as Synapse;
* a user: any user may report any user; for a user of another server or one that does not
  exist the report is dropped and the answer is still 200 (the spec's option to conceal
  existence, which Synapse takes), since nothing could be done about them here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from myelin.errors import MatrixError, bad_json, not_found
from myelin.ids import UserID
from myelin.services.rooms.visibility import Visibility
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.reports import ReportStore
from myelin.storage.stores.state import StateStore
from myelin.storage.stores.users import UserStore

log = logging.getLogger(__name__)

MAX_USER_REPORT_REASON = 1000  # characters, as Synapse
_MAX_SCORE = 2**53 - 1  # the integer range Matrix JSON allows


def _now_ms() -> int:
    return int(time.time() * 1000)


class ReportService:
    def __init__(self, store: ReportStore, events: EventStore, state: StateStore,
                 users: UserStore, visibility: Visibility, server_name: str) -> None:
        self._store = store
        self._events = events
        self._state = state
        self._users = users
        self._visibility = visibility
        self._server_name = server_name

    async def report_event(self, reporter: str, room_id: str, event_id: str,
                           body: dict[str, Any]) -> None:
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise bad_json("reason must be a string")
        # ``score`` left the spec in v1.18; like Synapse we still accept (and keep) an integer.
        score = body.get("score")
        if score is not None and (type(score) is not int or abs(score) > _MAX_SCORE):
            raise bad_json("score must be an integer")
        unseen = not_found("The event was not found or you are not joined to the room")
        membership = await self._state.get_membership(room_id, reporter)
        if membership is None or membership[0] != "join":
            raise unseen
        stored = await self._events.get_event(event_id)
        if (stored is None or stored.pdu.room_id != room_id or stored.outlier
                or stored.rejected_reason is not None or stored.redacted_by is not None
                or not await self._visibility.is_visible(reporter, stored)):
            raise unseen
        await self._store.add("event", reporter, room_id=room_id, event_id=event_id,
                              reason=reason, score=score, content=body,
                              received_ts=_now_ms())
        log.info("%s reported event %s in %s", reporter, event_id, room_id)

    async def report_room(self, reporter: str, room_id: str, reason: str) -> None:
        if await self._events.get_room_version(room_id) is None:
            raise not_found("The room was not found")
        await self._store.add("room", reporter, room_id=room_id, reason=reason,
                              content={"reason": reason}, received_ts=_now_ms())
        log.info("%s reported room %s", reporter, room_id)

    async def report_user(self, reporter: str, user_id: str, reason: str) -> None:
        target = UserID.parse(user_id)
        if len(reason) > MAX_USER_REPORT_REASON:
            raise MatrixError(400, "M_BAD_JSON",
                              f"reason is longer than {MAX_USER_REPORT_REASON} characters")
        if target.domain != self._server_name or await self._users.get_user(user_id) is None:
            return  # answered 200 all the same: existence is not disclosed
        await self._store.add("user", reporter, target_user=user_id, reason=reason,
                              content={"reason": reason}, received_ts=_now_ms())
        log.info("%s reported user %s", reporter, user_id)
