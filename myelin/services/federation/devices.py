"""Device lists and cross-signing keys across servers (server-server API, "Device Management"
and "End-to-End Encryption").

Outbound (:class:`DeviceListPublisher`): whenever a local user's device keys, signatures or
devices change, every server sharing a room with the user gets an ``m.device_list_update`` EDU
per device, numbered in a per-user sequence (``stream_id``, with the previous one as
``prev_id``) so the receiver can tell whether it missed one; cross-signing key changes go out
as ``m.signing_key_update``.

Inbound (:class:`RemoteDeviceLists`): the device lists of remote users who share a room with a
local user are cached, so /keys/query can answer from the cache and /sync can tell local users
when a remote user's devices changed. A list is fetched with ``GET /user/devices`` on first
need and then kept current by the EDUs; an EDU whose ``prev_id`` this server has not seen means
one was lost, and the list is fetched again. A user who stops sharing every room with local
users is forgotten, since no more updates would arrive for them. Users who share no room are
asked about with ``POST /user/keys/query`` each time, uncached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeGuard
from urllib.parse import quote

from myelin.core.events import PDU
from myelin.services.e2e_keys import (
    KeyChanges,
    merge_signatures,
    public_cross_signing_keys,
    public_key_of,
    server_of,
)
from myelin.services.federation.client import FederationClient
from myelin.storage.database import Statement
from myelin.storage.stores.e2e_keys import E2eKeyStore

__all__ = ["DeviceListPublisher", "EduSender", "RemoteDeviceLists", "server_of"]

log = logging.getLogger("myelin.federation")

DEVICE_LIST_UPDATE = "m.device_list_update"
SIGNING_KEY_UPDATE = "m.signing_key_update"
FEDERATED_KEY_TYPES = ("master", "self_signing")  # user-signing keys never leave the server
V1 = "/_matrix/federation/v1"
_SEQUENCES_KEPT = 10_000  # remote users whose recent stream_ids are remembered in memory
_STREAM_IDS_KEPT = 100


class EduSender(Protocol):
    async def send_edu(self, destination: str, edu_type: str, content: dict[str, Any], *,
                       key: str | None = None) -> None: ...


class KeyedLocks:
    """One asyncio lock per key (a user ID), dropped when nobody holds or waits for it, so
    changes to one user's list are applied one at a time without a lock per user forever."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def valid_cross_signing_key(key: Any, user_id: str, key_type: str
                            ) -> TypeGuard[dict[str, Any]]:
    """A cross-signing key object of ``user_id`` for ``key_type``, in the spec's shape."""
    if not isinstance(key, dict) or key.get("user_id") != user_id:
        return False
    usage, keys = key.get("usage"), key.get("keys")
    return (isinstance(usage, list) and key_type in usage and isinstance(keys, dict)
            and len(keys) == 1 and isinstance(next(iter(keys.values())), str))


def valid_device_keys(keys: Any, user_id: str, device_id: str) -> bool:
    return (isinstance(keys, dict) and keys.get("user_id") == user_id
            and keys.get("device_id") == device_id and isinstance(keys.get("keys"), dict))


class DeviceListPublisher:
    """Sends local users' device list and cross-signing key changes to the servers sharing a
    room with them. Best effort: the change is committed locally before this runs, so a
    failure is logged, and a receiver that misses an update resyncs at the next one."""

    def __init__(self, store: E2eKeyStore, sender: EduSender, server_name: str, *,
                 share_device_names: bool = False) -> None:
        self._store = store
        self._sender = sender
        self._server_name = server_name
        # Synapse's default too: device names can say more than a user means to tell.
        self.share_device_names = share_device_names
        self._locks = KeyedLocks()

    async def destinations(self, user_id: str) -> list[str]:
        """Every other server with a user joined to a room ``user_id`` is joined to."""
        servers = {server_of(u) for u in await self._store.users_sharing_rooms(user_id)}
        return sorted(s for s in servers if s is not None and s != self._server_name)

    async def devices_changed(self, user_id: str, device_ids: Sequence[str]) -> None:
        """Announce the listed devices' current state; a device that no longer exists is
        announced as deleted."""
        if not device_ids:
            return
        try:
            async with self._locks.hold(user_id):
                await self._devices_changed(user_id, device_ids)
        except Exception:
            log.exception("could not queue device list updates for %s", user_id)

    async def _devices_changed(self, user_id: str, device_ids: Sequence[str]) -> None:
        destinations = await self.destinations(user_id)
        # The sequence advances even with nobody to tell: a server that still holds an old
        # copy then sees a gap at the next update and resyncs.
        stream_id = await self._store.outbound_stream_id(user_id)
        signatures = await self._store.get_signatures(user_id, user_id)
        updates: list[dict[str, Any]] = []
        for device_id in dict.fromkeys(device_ids):
            content: dict[str, Any] = {"user_id": user_id, "device_id": device_id,
                                       "stream_id": stream_id + 1,
                                       "prev_id": [stream_id] if stream_id else []}
            stream_id += 1
            device = await self._store.get_device(user_id, device_id)
            if device is None:
                content["deleted"] = True
            else:
                keys, display_name = device
                if keys is not None:
                    merge_signatures(keys, signatures.get(device_id, []))
                    content["keys"] = keys
                if display_name is not None and self.share_device_names:
                    content["device_display_name"] = display_name
            updates.append(content)
        await self._store.set_outbound_stream_id(user_id, stream_id)
        for destination in destinations:
            for content in updates:
                await self._sender.send_edu(destination, DEVICE_LIST_UPDATE, content)

    async def signing_keys_changed(self, user_id: str) -> None:
        """Send the user's current master and self-signing keys (with the user's own
        signatures); a newer update replaces one still queued."""
        try:
            destinations = await self.destinations(user_id)
            if not destinations:
                return
            content = await public_cross_signing_keys(self._store, user_id)
            if not content:
                return
            content["user_id"] = user_id
            for destination in destinations:
                await self._sender.send_edu(destination, SIGNING_KEY_UPDATE, content,
                                            key=user_id)
        except Exception:
            log.exception("could not queue a signing key update for %s", user_id)


class _Sequence:
    """What this server saw of one remote user's update sequence since its last resync:
    stream_ids (valid prev_ids) and (stream_id, device_id) pairs already applied."""

    def __init__(self, stream_id: int) -> None:
        self.known: set[int] = {stream_id}
        self.applied: set[tuple[int, str]] = set()


class RemoteDeviceLists:
    """The cache of remote users' device lists, the EDUs that update it, and the /keys/query
    and /keys/claim requests to other servers."""

    def __init__(self, store: E2eKeyStore, changes: KeyChanges, client: FederationClient,
                 server_name: str) -> None:
        self._store = store
        self._changes = changes
        self._client = client
        self._server_name = server_name
        self._locks = KeyedLocks()
        self._sequences: OrderedDict[str, _Sequence] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._resyncing: set[str] = set()  # users with a background resync under way
        self._left: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._left_worker: asyncio.Task[None] | None = None

    async def tracked(self, user_id: str) -> bool:
        """Whether the remote user shares a room with a local user (so their server sends
        this server their device list updates)."""
        return any(server_of(u) == self._server_name
                   for u in await self._store.users_sharing_rooms(user_id))

    # -- queries --

    async def query(self, requester_id: str, server: str, wanted: Mapping[str, Sequence[str]],
                    timeout_s: float) -> dict[str, dict[str, Any]]:
        """device_keys / master_keys / self_signing_keys for users of ``server``: from the
        cache where it is current (fetching the list first if needed), else asked of
        ``server``. Raises ``FederationError`` if ``server`` had to be asked and failed."""
        result: dict[str, dict[str, Any]] = {"device_keys": {}, "master_keys": {},
                                             "self_signing_keys": {}}
        direct: dict[str, list[str]] = {}
        for user_id, device_ids in wanted.items():
            if await self._current(user_id, timeout_s):
                await self._from_cache(requester_id, user_id, device_ids, result)
            else:
                direct[user_id] = list(device_ids)
        if direct:
            answer = await self._client.request(server, "POST", f"{V1}/user/keys/query",
                                                json={"device_keys": direct},
                                                timeout_s=timeout_s)
            await self._take_answer(requester_id, direct, answer, result)
        return result

    async def _current(self, user_id: str, timeout_s: float) -> bool:
        """Make sure a tracked user's cached list is current; False if not tracked."""
        row = await self._store.get_remote_list(user_id)
        if row is not None and not row[1]:
            return True
        if not await self.tracked(user_id):
            return False
        async with self._locks.hold(user_id):
            row = await self._store.get_remote_list(user_id)
            if row is None or row[1]:  # nobody fetched it while we waited for the lock
                await self._resync(user_id, timeout_s)
        return True

    async def _from_cache(self, requester_id: str, user_id: str, device_ids: Sequence[str],
                          result: dict[str, dict[str, Any]]) -> None:
        signatures = await self._store.get_signatures(user_id, requester_id)
        wanted = set(device_ids)
        devices: dict[str, Any] = {}
        for device_id, keys, display_name in await self._store.list_remote_devices(user_id):
            if keys is None or (wanted and device_id not in wanted):
                continue
            merge_signatures(keys, signatures.get(device_id, []))
            if display_name is not None:
                keys["unsigned"] = {"device_display_name": display_name}
            devices[device_id] = keys
        result["device_keys"][user_id] = devices
        cross = await self._store.get_cross_signing_keys(user_id)
        for key_type in FEDERATED_KEY_TYPES:
            key = cross.get(key_type)
            if key is not None:
                public = public_key_of(key)
                if public is not None:
                    merge_signatures(key, signatures.get(public, []))
                result[f"{key_type}_keys"][user_id] = key

    async def _take_answer(self, requester_id: str, asked: Mapping[str, Sequence[str]],
                           answer: Any, result: dict[str, dict[str, Any]]) -> None:
        """Copy what a /user/keys/query answer says about the users asked for, and nothing
        else (a server answers only for its own users and their real device IDs)."""
        if not isinstance(answer, dict):
            return
        device_keys = answer.get("device_keys")
        statements: list[Statement] = []
        for user_id, device_ids in asked.items():
            devices = device_keys.get(user_id) if isinstance(device_keys, dict) else None
            if isinstance(devices, dict):
                result["device_keys"][user_id] = {
                    d: k for d, k in devices.items()
                    if valid_device_keys(k, user_id, d) and (not device_ids or d in device_ids)}
            signatures = await self._store.get_signatures(user_id, requester_id)
            for key_type in FEDERATED_KEY_TYPES:
                by_user = answer.get(f"{key_type}_keys")
                key = by_user.get(user_id) if isinstance(by_user, dict) else None
                if not valid_cross_signing_key(key, user_id, key_type):
                    continue
                # Kept so a local user's signature of this master key can be checked.
                statements.append(self._store.put_cross_signing_key(user_id, key_type, key))
                key = dict(key)
                merge_signatures(key, signatures.get(public_key_of(key) or "", []))
                result[f"{key_type}_keys"][user_id] = key
        if statements:
            await self._store.write(statements)

    async def claim(self, server: str, wanted: Mapping[str, Mapping[str, str]],
                    timeout_s: float) -> dict[str, dict[str, Any]]:
        """One-time (or fallback) keys of users of ``server``, claimed there."""
        answer = await self._client.request(server, "POST", f"{V1}/user/keys/claim",
                                            json={"one_time_keys": wanted},
                                            timeout_s=timeout_s)
        claimed = answer.get("one_time_keys") if isinstance(answer, dict) else None
        out: dict[str, dict[str, Any]] = {}
        for user_id, devices in wanted.items():
            got = claimed.get(user_id) if isinstance(claimed, dict) else None
            if not isinstance(got, dict):
                continue
            keys = {d: k for d, k in got.items() if d in devices and isinstance(k, dict)}
            if keys:
                out[user_id] = keys
        return out

    # -- resync --

    async def resync(self, user_id: str, *, timeout_s: float | None = None) -> None:
        """Replace the cached list with the user's server's ``/user/devices`` answer."""
        async with self._locks.hold(user_id):
            await self._resync(user_id, timeout_s)

    async def _resync(self, user_id: str, timeout_s: float | None) -> None:
        server = server_of(user_id)
        assert server is not None
        answer = await self._client.request(
            server, "GET", f"{V1}/user/devices/{quote(user_id, safe='')}", timeout_s=timeout_s)
        if not isinstance(answer, dict) or answer.get("user_id") != user_id:
            raise ValueError(f"{server} answered /user/devices for someone else")
        stream_id = answer.get("stream_id")
        if not isinstance(stream_id, int) or isinstance(stream_id, bool):
            stream_id = 0
        before = await self._snapshot(user_id)
        statements = [*self._store.forget_remote_statements(user_id),
                      self._store.set_remote_list(user_id, stream_id, False)]
        devices = answer.get("devices")
        for device in devices if isinstance(devices, list) else []:
            device_id = device.get("device_id") if isinstance(device, dict) else None
            if not isinstance(device_id, str):
                continue
            keys = device.get("keys")
            name = device.get("device_display_name")
            statements.append(self._store.put_remote_device(
                user_id, device_id, keys if valid_device_keys(keys, user_id, device_id) else None,
                name if isinstance(name, str) else None))
        statements.append(self._store.delete_cross_signing_keys(user_id, FEDERATED_KEY_TYPES))
        for key_type in FEDERATED_KEY_TYPES:
            key = answer.get(f"{key_type}_key")
            if valid_cross_signing_key(key, user_id, key_type):
                statements.append(self._store.put_cross_signing_key(user_id, key_type, key))
        await self._store.write(statements)
        self._sequence(user_id, reset=stream_id)
        if before is not None and before != await self._snapshot(user_id):
            await self._changes.write(user_id, [])  # what local clients saw is outdated

    async def _snapshot(self, user_id: str) -> tuple[list[Any], dict[str, Any]] | None:
        """What the cache says about the user (None: not cached), to tell if a resync
        changed anything."""
        if await self._store.get_remote_list(user_id) is None:
            return None
        cross = await self._store.get_cross_signing_keys(user_id)
        return (await self._store.list_remote_devices(user_id),
                {t: cross.get(t) for t in FEDERATED_KEY_TYPES})

    def _sequence(self, user_id: str, *, reset: int | None = None,
                  stream_id: int = 0) -> _Sequence:
        seq = self._sequences.get(user_id)
        if seq is None or reset is not None or len(seq.applied) > _STREAM_IDS_KEPT:
            seq = _Sequence(reset if reset is not None else stream_id)
        self._sequences[user_id] = seq
        self._sequences.move_to_end(user_id)
        while len(self._sequences) > _SEQUENCES_KEPT:
            self._sequences.popitem(last=False)
        return seq

    def _resync_later(self, user_id: str) -> None:
        """Resync in the background (an EDU handler must not wait on another server); one
        at a time per user."""
        if user_id in self._resyncing:
            return
        self._resyncing.add(user_id)
        task = asyncio.get_running_loop().create_task(self._background_resync(user_id),
                                                      name=f"device-list-resync-{user_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _background_resync(self, user_id: str) -> None:
        try:
            await self.resync(user_id)
        except Exception as e:  # stays stale: the next query tries again
            log.info("device list resync for %s failed: %s", user_id, e)
        finally:
            self._resyncing.discard(user_id)

    # -- EDUs --

    def handlers(self) -> dict[str, Callable[[str, Any], Awaitable[None]]]:
        """The inbound handlers, by EDU type, for ``TransactionReceiver.edu_handlers``."""
        return {DEVICE_LIST_UPDATE: self.on_device_list_update,
                SIGNING_KEY_UPDATE: self.on_signing_key_update}

    async def on_device_list_update(self, origin: str, content: Any) -> None:
        """Apply an ``m.device_list_update`` in sequence, or resync on a gap. Only the
        user's own server may speak for them."""
        update = _parse_update(content)
        if update is None:
            log.info("ignoring a malformed m.device_list_update from %s", origin)
            return
        user_id, device_id, stream_id, prev_ids = update
        if server_of(user_id) != origin:
            log.warning("%s sent a device list update for %s; ignored", origin, user_id)
            return
        async with self._locks.hold(user_id):
            row = await self._store.get_remote_list(user_id)
            if row is None:
                # Not cached: nothing to update, but local clients may hold an older copy.
                if await self.tracked(user_id):
                    await self._changes.write(user_id, [])
                return
            cached, stale = row
            seq = self._sequence(user_id, stream_id=cached)
            if stale:
                await self._changes.write(user_id, [])
                self._resync_later(user_id)
                return
            if stream_id < cached or (stream_id, device_id) in seq.applied:
                return  # already reflected in the cache
            if not prev_ids or any(p not in seq.known for p in prev_ids):
                log.info("gap in %s's device list updates (have %s, got prev_id %s):"
                         " resyncing", user_id, sorted(seq.known)[-3:], prev_ids)
                await self._changes.write(user_id, [self._store.mark_remote_stale(user_id)])
                self._resync_later(user_id)
                return
            if content.get("deleted") is True:
                change = self._store.delete_remote_device(user_id, device_id)
            else:
                keys, name = content.get("keys"), content.get("device_display_name")
                change = self._store.put_remote_device(
                    user_id, device_id,
                    keys if valid_device_keys(keys, user_id, device_id) else None,
                    name if isinstance(name, str) else None)
            await self._changes.write(user_id, [
                change, self._store.set_remote_list(user_id, max(cached, stream_id), False)])
            seq.known.add(stream_id)
            seq.applied.add((stream_id, device_id))

    async def on_signing_key_update(self, origin: str, content: Any) -> None:
        """Store a tracked remote user's new master / self-signing key."""
        user_id = content.get("user_id") if isinstance(content, dict) else None
        if not isinstance(user_id, str) or server_of(user_id) != origin:
            log.warning("%s sent a signing key update for %r; ignored", origin, user_id)
            return
        assert isinstance(content, dict)
        statements = [
            self._store.put_cross_signing_key(user_id, key_type, content[f"{key_type}_key"])
            for key_type in FEDERATED_KEY_TYPES
            if valid_cross_signing_key(content.get(f"{key_type}_key"), user_id, key_type)]
        if not statements:
            return
        async with self._locks.hold(user_id):
            if await self._store.get_remote_list(user_id) is None \
                    and not await self.tracked(user_id):
                return
            await self._changes.write(user_id, statements)

    # -- who stays tracked --

    def on_persisted(self, pdu: PDU, stream: int) -> None:
        """Timeline callback: after a leave or ban, forget cached lists of remote users who
        no longer share a room with a local user (their server stops sending updates, so the
        copy would silently go stale)."""
        if pdu.type != "m.room.member" or not pdu.state_key \
                or pdu.membership not in ("leave", "ban"):
            return
        self._left.put_nowait((pdu.room_id, pdu.state_key))
        if self._left_worker is None or self._left_worker.done():
            self._left_worker = asyncio.get_running_loop().create_task(
                self._forget_untracked(), name="device-lists-untrack")

    async def _forget_untracked(self) -> None:
        while not self._left.empty():
            room_id, user_id = self._left.get_nowait()
            try:
                if server_of(user_id) == self._server_name:
                    candidates = await self._store.cached_room_members(room_id)
                else:
                    candidates = [user_id]
                for candidate in candidates:
                    async with self._locks.hold(candidate):
                        if await self._store.get_remote_list(candidate) is not None \
                                and not await self.tracked(candidate):
                            await self._store.write(
                                self._store.forget_remote_statements(candidate))
                            self._sequences.pop(candidate, None)
            except Exception:
                log.exception("checking device list tracking after %s left %s", user_id,
                              room_id)

    async def close(self) -> None:
        """Stop background resyncs (at shutdown)."""
        tasks = [*self._tasks, *([self._left_worker] if self._left_worker else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _parse_update(content: Any) -> tuple[str, str, int, list[int]] | None:
    """(user_id, device_id, stream_id, prev_ids) of a well-formed m.device_list_update."""
    if not isinstance(content, dict):
        return None
    user_id, device_id = content.get("user_id"), content.get("device_id")
    stream_id, prev_ids = content.get("stream_id"), content.get("prev_id", [])
    if not isinstance(user_id, str) or not isinstance(device_id, str) \
            or not isinstance(stream_id, int) or isinstance(stream_id, bool):
        return None
    if prev_ids is None:
        prev_ids = []
    if not isinstance(prev_ids, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) for p in prev_ids):
        return None
    return user_id, device_id, stream_id, prev_ids
