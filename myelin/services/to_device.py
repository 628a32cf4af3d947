"""Send-to-Device messaging (client-server API module "Send-to-Device messaging").

A send stores one message per target device, all at one position of the shared durable stream,
in the same write as the client transaction ID, so a retransmission gets the first answer and
sends nothing. /sync delivers a device's messages oldest first and deletes them once a later
sync token proves the device received them (``acknowledge``).

Messages for users of other servers leave as one ``m.direct_to_device`` EDU per destination
server and request (server-server API, "Send-to-device messaging"); received EDUs are delivered
to the local devices they name, once per (origin, message_id) even when retransmitted.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

import orjson

from myelin.errors import bad_json, too_large
from myelin.ids import UserID
from myelin.services.federation.devices import EduSender, server_of
from myelin.services.notifier import Notifier
from myelin.services.stream_changes import StreamChanges
from myelin.storage.database import IntegrityError
from myelin.storage.sequences import StreamPositions
from myelin.storage.stores.devices import DeviceStore
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.to_device import ToDeviceStore

MAX_CONTENT_BYTES = 65536  # one message's content, as compact JSON
MAX_MESSAGES = 10000  # (user, device) entries of one request, counting "*" once
DEFAULT_LIMIT = 100  # per /sync, as the module recommends
ALL_DEVICES = "*"
DIRECT_TO_DEVICE = "m.direct_to_device"
INBOX_RETENTION_MS = 7 * 24 * 3600 * 1000  # how long a received message_id is remembered
_EMPTY_RESPONSE = b"{}"

log = logging.getLogger("myelin.federation")

# For one request: (local deliveries, destination server -> user -> device -> content).
Split = tuple[list[tuple[str, str, bytes]], dict[str, dict[str, dict[str, Any]]]]


class ToDeviceService:
    def __init__(self, store: ToDeviceStore, devices: DeviceStore, events: EventStore,
                 stream: StreamPositions, notifier: Notifier, server_name: str) -> None:
        self._store = store
        self._devices = devices
        self._events = events
        self._stream = stream
        self._notifier = notifier
        self._server_name = server_name
        # Set by the composition root when federating; None: remote users' messages are
        # dropped.
        self.federation: EduSender | None = None
        self._last_prune = 0.0
        # So that the /sync of a device with nothing pending reads and deletes nothing (most
        # syncs of most devices): the newest position a message was queued at for a device,
        # and the position up to which its messages are known deleted, both since start-up.
        # A device is asked about only when something may be pending: a message queued after
        # its last deletion, or no deletion seen yet, or messages older than start-up.
        self._queued = StreamChanges(stream.current)  # per (user, device)
        self._deleted_upto: dict[tuple[str, str], int] = {}

    async def send(self, sender: str, sender_device: str, event_type: str, txn_id: str,
                   messages: Any) -> bytes:
        """PUT /sendToDevice/{eventType}/{txnId}; returns the response body (JSON)."""
        endpoint = f"sendToDevice/{event_type}"
        stored = await self._events.get_client_transaction(sender, sender_device, endpoint,
                                                           txn_id)
        if stored is not None:
            return stored
        deliveries, remote = await self._deliveries(messages)
        transaction = (sender, sender_device, endpoint, txn_id, _EMPTY_RESPONSE,
                       int(time.time() * 1000))
        position = self._stream.allocate()
        self._mark_queued(deliveries, position)
        try:
            await self._store.add(sender, event_type, position, deliveries, transaction)
        except IntegrityError:
            # The same transaction raced in on another connection and won: answer as it did.
            stored = await self._events.get_client_transaction(sender, sender_device,
                                                               endpoint, txn_id)
            if stored is None:
                raise
            return stored
        finally:
            self._stream.finish(position)
        if deliveries:
            self._notifier.announce(self._stream.current,
                                    users={user_id for user_id, _, _ in deliveries})
        await self._send_remote(sender, event_type, remote)
        return _EMPTY_RESPONSE

    async def _send_remote(self, sender: str, event_type: str,
                           remote: Mapping[str, dict[str, dict[str, Any]]]) -> None:
        """Queue one EDU per destination server. The local part is committed already, so a
        failure to queue is logged rather than failing a request a retry could not repair."""
        if self.federation is None:
            return
        for destination, messages in sorted(remote.items()):
            content = {"sender": sender, "type": event_type,
                       "message_id": secrets.token_urlsafe(18),  # 24 characters, unique
                       "messages": messages}
            try:
                await self.federation.send_edu(destination, DIRECT_TO_DEVICE, content)
            except Exception:
                log.exception("could not queue to-device messages for %s", destination)

    async def _deliveries(self, messages: Any) -> Split:
        """Validate the whole request, then list (user_id, device_id, content JSON) for every
        existing local device it targets, and group what remote users get by their server
        (their server expands "*" itself)."""
        if not isinstance(messages, dict):
            raise bad_json("'messages' must be an object")
        checked: list[tuple[str, dict[str, bytes]]] = []
        remote: dict[str, dict[str, dict[str, Any]]] = {}
        entries = 0
        for user_id, by_device in messages.items():
            parsed = UserID.parse(user_id)
            if not isinstance(by_device, dict):
                raise bad_json(f"messages[{user_id!r}] must be an object")
            encoded: dict[str, bytes] = {}
            for device_id, content in by_device.items():
                if not isinstance(content, dict):
                    raise bad_json(f"messages[{user_id!r}][{device_id!r}] must be an object")
                data = orjson.dumps(content)
                if len(data) > MAX_CONTENT_BYTES:
                    raise too_large(f"A to-device message may hold at most {MAX_CONTENT_BYTES}"
                                    " bytes of content")
                encoded[device_id] = data
            entries += len(encoded)
            if entries > MAX_MESSAGES:
                raise too_large(f"At most {MAX_MESSAGES} messages per request")
            if parsed.domain == self._server_name:
                checked.append((user_id, encoded))
            elif encoded:
                remote.setdefault(parsed.domain, {})[user_id] = dict(by_device)
        deliveries: list[tuple[str, str, bytes]] = []
        for user_id, encoded in checked:
            deliveries.extend(await self._expand(user_id, encoded))
        return deliveries, remote

    async def _expand(self, user_id: str,
                      encoded: Mapping[str, bytes]) -> list[tuple[str, str, bytes]]:
        """One message per existing device of a local user; a message for a named device wins
        over the "*" one."""
        known = [d.device_id for d in await self._devices.list_devices(user_id)]
        wildcard = encoded.get(ALL_DEVICES)
        out: list[tuple[str, str, bytes]] = []
        for device_id in known:
            content = encoded.get(device_id, wildcard)
            if content is not None:
                out.append((user_id, device_id, content))
        return out

    # -- m.direct_to_device EDUs from other servers --

    async def on_direct_to_device(self, origin: str, content: Any) -> None:
        """Deliver a received EDU to the local devices it names. The sender must belong to
        the origin (a server speaks only for its own users); users of other servers are
        skipped; a (origin, message_id) seen before is not delivered again."""
        if not isinstance(content, dict):
            return
        sender, event_type = content.get("sender"), content.get("type")
        message_id, messages = content.get("message_id"), content.get("messages")
        if not (isinstance(sender, str) and isinstance(event_type, str)
                and isinstance(message_id, str) and message_id
                and isinstance(messages, dict)):
            log.info("ignoring a malformed m.direct_to_device from %s", origin)
            return
        if server_of(sender) != origin:
            log.warning("%s sent to-device messages as %s; ignored", origin, sender)
            return
        deliveries: list[tuple[str, str, bytes]] = []
        for user_id, by_device in messages.items():
            if server_of(user_id) != self._server_name or not isinstance(by_device, dict):
                continue
            encoded = {d: orjson.dumps(c) for d, c in by_device.items()
                       if isinstance(d, str) and isinstance(c, dict)}
            deliveries.extend(await self._expand(user_id, encoded))
        if not deliveries:
            return
        now_ms = int(time.time() * 1000)
        position = self._stream.allocate()
        self._mark_queued(deliveries, position)
        try:
            await self._store.add_received(origin, message_id, sender, event_type, position,
                                           deliveries, now_ms)
        except IntegrityError:
            return  # delivered before: a retransmission
        finally:
            self._stream.finish(position)
        self._notifier.announce(self._stream.current,
                                users={user_id for user_id, _, _ in deliveries})
        if time.monotonic() - self._last_prune > 3600:
            self._last_prune = time.monotonic()
            await self._store.prune_received(now_ms - INBOX_RETENTION_MS)

    async def pending(self, user_id: str, device_id: str, upto_stream: int,
                      limit: int = DEFAULT_LIMIT) -> tuple[list[dict[str, Any]], bool]:
        """The device's messages at positions <= ``upto_stream``, oldest first, at most
        ``limit``; the bool says whether more (<= ``upto_stream``) remain."""
        events, _, more = await self._batch(user_id, device_id, upto_stream, limit)
        return events, more

    async def delivery(self, user_id: str, device_id: str, upto_stream: int,
                       limit: int = DEFAULT_LIMIT) -> tuple[list[dict[str, Any]], int]:
        """What one /sync delivers: the events, and the stream position the sync must cover
        (its next_batch): ``upto_stream`` when everything pending fits, else the position of
        the last event delivered, so the next sync's acknowledgement cannot delete the rest."""
        events, last, more = await self._batch(user_id, device_id, upto_stream, limit)
        return events, (last if more else upto_stream)

    async def _batch(self, user_id: str, device_id: str, upto_stream: int,
                     limit: int) -> tuple[list[dict[str, Any]], int, bool]:
        if limit < 1:
            raise ValueError("to-device limit must be positive")
        if not self._may_have_pending(user_id, device_id):
            return [], upto_stream, False
        rows = await self._store.pending(user_id, device_id, upto_stream, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        events = [{"type": r.type, "sender": r.sender, "content": r.content} for r in rows]
        return events, (rows[-1].stream_id if rows else upto_stream), more

    async def acknowledge(self, user_id: str, device_id: str, upto_stream: int) -> None:
        """The device's sync token covers ``upto_stream``: it has every message up to there."""
        key = (user_id, device_id)
        if not self._may_have_pending(user_id, device_id):
            return
        await self._store.delete_upto(user_id, device_id, upto_stream)
        self._deleted_upto[key] = max(upto_stream, self._deleted_upto.get(key, upto_stream))

    def _mark_queued(self, deliveries: list[tuple[str, str, bytes]], position: int) -> None:
        for user_id, device_id, _ in deliveries:
            self._queued.mark(position, (user_id, device_id))

    def _may_have_pending(self, user_id: str, device_id: str) -> bool:
        key = (user_id, device_id)
        deleted = self._deleted_upto.get(key)
        return deleted is None or self._queued.changed_after(deleted, key)
