"""End-to-end encryption key distribution (client-server API, module "End-to-End Encryption",
"Key management API" and "Tracking the device list for a user"): device keys, one-time and
fallback keys, key queries and claims, and the device-list change stream /sync reads.

Cross-signing keys and signatures are in ``cross_signing.py``; both share ``KeyChanges`` for
announcing changes in the shared durable stream.

Users of other servers are handled over federation (``services/federation/devices.py``):
queries and claims for them go to their servers, all servers in parallel under one timeout, an
unreachable one listed in ``failures``; changes of local users' devices are published to the
servers sharing a room with them. The ``federation_*`` methods answer other servers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import nacl.signing

from myelin.core.signing import SignatureError, decode_base64, verify_json
from myelin.errors import MatrixError, bad_json, invalid_param
from myelin.services.e2e_key_counts import E2eKeyCounts, KeyCounts
from myelin.services.notifier import Notifier
from myelin.services.stream_changes import StreamChanges
from myelin.storage.database import Statement
from myelin.storage.sequences import StreamPositions
from myelin.storage.stores.e2e_keys import E2eKeyStore
from myelin.storage.stores.state import StateStore

if TYPE_CHECKING:
    from myelin.services.federation.devices import DeviceListPublisher, RemoteDeviceLists

CROSS_SIGNING_TYPES = ("master", "self_signing", "user_signing")
DEFAULT_REMOTE_TIMEOUT_MS = 10_000  # the client-server spec's default for /keys/query, claim

log = logging.getLogger("myelin.e2e")
T = TypeVar("T")


def server_of(user_id: str) -> str | None:
    """The server part of a user ID; None if it is not one."""
    if not isinstance(user_id, str) or not user_id.startswith("@"):
        return None
    _, sep, server = user_id.partition(":")
    return server if sep and server else None


def remote_timeout_s(timeout_ms: int | None) -> float:
    """The client's ``timeout`` for remote servers (ms), defaulted and kept within reason."""
    if not timeout_ms or timeout_ms < 0:
        timeout_ms = DEFAULT_REMOTE_TIMEOUT_MS
    return min(timeout_ms, 60_000) / 1000


async def per_server(calls: Mapping[str, Callable[[], Awaitable[T]]], timeout_s: float
                     ) -> tuple[dict[str, T], dict[str, dict[str, Any]]]:
    """Run one call per server in parallel, each under the same deadline; return the answers
    and, for servers that failed or were too slow, the ``failures`` entries clients expect
    (a slow server must not hold up the answer about everyone else)."""

    async def one(server: str, call: Callable[[], Awaitable[T]]
                  ) -> tuple[str, T | None, dict[str, Any] | None]:
        try:
            return server, await asyncio.wait_for(call(), timeout_s), None
        except TimeoutError:
            return server, None, {"status": 504, "message": "Timed out"}
        except Exception as e:  # FederationError, or an answer we could not use
            status = getattr(e, "status", 0) or 503
            log.info("key request to %s failed: %s", server, e)
            return server, None, {"status": status, "message": str(e) or type(e).__name__}

    answers: dict[str, T] = {}
    failures: dict[str, dict[str, Any]] = {}
    for server, answer, failure in await asyncio.gather(
            *(one(s, c) for s, c in calls.items())):
        if failure is not None:
            failures[server] = failure
        else:
            answers[server] = answer  # type: ignore[assignment]
    return answers, failures


def invalid_signature(message: str = "Invalid signature") -> MatrixError:
    return MatrixError(400, "M_INVALID_SIGNATURE", message)


def verify_key_from_base64(public_key: str) -> nacl.signing.VerifyKey:
    try:
        raw = decode_base64(public_key)
        return nacl.signing.VerifyKey(raw)
    except (ValueError, TypeError) as e:  # nacl raises ValueError subclasses on a bad length
        raise bad_json(f"Invalid ed25519 public key: {e}") from None


def check_signature(obj: Mapping[str, Any], user_id: str, key_id: str,
                    public_key: str) -> None:
    """Raise M_INVALID_SIGNATURE unless ``obj`` is signed by ``user_id``'s ``key_id``."""
    try:
        verify_json(obj, user_id, key_id, verify_key_from_base64(public_key))
    except SignatureError as e:
        raise invalid_signature(str(e)) from None


def merge_signatures(obj: dict[str, Any], extra: Sequence[tuple[str, str, str]]) -> None:
    """Add stored (signer user, signer key ID, signature) triples to ``obj["signatures"]``."""
    if not extra:
        return
    signatures = {u: dict(s) for u, s in (obj.get("signatures") or {}).items()
                  if isinstance(s, dict)}
    for signer, key_id, signature in extra:
        signatures.setdefault(signer, {})[key_id] = signature
    obj["signatures"] = signatures


def without_signatures(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


class KeyChanges:
    """Writes that change someone's keys take a position in the shared durable stream, commit
    with the change marker, and wake the /sync long-polls that should hear about it."""

    def __init__(self, store: E2eKeyStore, state_store: StateStore, stream: StreamPositions,
                 notifier: Notifier) -> None:
        self._store = store
        self._state = state_store
        self._stream = stream
        self._notifier = notifier
        # Where change markers were written, so /sync can skip a window that holds none.
        self.changes = StreamChanges(stream.current)

    async def write(self, user_id: str, statements: list[Statement], *,
                    announce: bool = True, private_targets: Sequence[str] = ()) -> None:
        """Run ``statements`` atomically; with ``announce`` mark ``user_id``'s keys changed for
        everyone sharing a room; ``private_targets`` are users only ``user_id`` hears about."""
        if not announce and not private_targets:
            await self._store.write(statements)
            return
        position = self._stream.allocate()
        self.changes.mark(position)
        try:
            batch = list(statements)
            if announce:
                batch.append(self._store.mark_changed(user_id, position))
            if private_targets:
                batch.append(self._store.mark_changed_for(user_id, private_targets, position))
            await self._store.write(batch)
        finally:
            self._stream.finish(position)
        rooms = await self._state.list_rooms_for_user(user_id, "join") if announce else []
        self._notifier.announce(self._stream.current, rooms=rooms, users=[user_id])


class E2eKeyService:
    def __init__(self, store: E2eKeyStore, changes: KeyChanges, server_name: str, *,
                 membership_changes: StreamChanges | None = None) -> None:
        """``membership_changes``: where room memberships changed
        (``Timeline.membership_changes``); None: assume one always did."""
        self._store = store
        self._changes = changes
        self._server_name = server_name
        self._membership_changes = membership_changes
        self._key_counts = E2eKeyCounts(store)
        # Set by the composition root when federating. Without a publisher nobody else is
        # told of changes; without remote lists, remote users are left out of queries.
        self.publisher: DeviceListPublisher | None = None
        self.remote: RemoteDeviceLists | None = None

    async def devices_removed(self, user_id: str, device_ids: list[str]) -> None:
        """Deleted devices take their keys with them, and everyone sharing a room hears of
        the change (their clients stop encrypting for those devices)."""
        async with self._key_counts.writing(user_id, device_ids):
            await self._changes.write(user_id,
                                      self._store.delete_device_statements(user_id, device_ids))
        if self.publisher is not None:
            await self.publisher.devices_changed(user_id, device_ids)

    async def device_renamed(self, user_id: str, device_id: str) -> None:
        """A device's display name changed: other servers may show it (if names are shared),
        so they hear of it like of any other change to the device."""
        if self.publisher is not None and self.publisher.share_device_names:
            await self._changes.write(user_id, [])
            await self.publisher.devices_changed(user_id, [device_id])

    # -- POST /keys/upload --

    async def upload(self, user_id: str, device_id: str, device_keys: Any,
                     one_time_keys: Any, fallback_keys: Any) -> dict[str, int]:
        """Validate everything first, then store it all in one batch (or nothing)."""
        statements: list[Statement] = []
        keys_changed = False
        if device_keys is not None:
            checked = self._check_device_keys(user_id, device_id, device_keys)
            existing = await self._store.get_device_keys(user_id, device_id)
            if existing is not None and existing.get("keys") != checked["keys"]:
                # Synapse refuses this as well: a device's identity keys never change.
                raise invalid_param(f"Device keys for {device_id} already exist and differ")
            if existing is None or without_signatures(existing) != without_signatures(checked) \
                    or existing.get("signatures") != checked.get("signatures"):
                statements.append(self._store.put_device_keys(user_id, device_id, checked))
                keys_changed = True
        if one_time_keys is not None:
            new = self._parse_keys(one_time_keys, "one_time_keys")
            stored = await self._store.get_one_time_keys(user_id, device_id)
            fresh: list[tuple[str, str, Any]] = []
            for (algorithm, key_id), key in new.items():
                old = stored.get((algorithm, key_id), _MISSING)
                if old is _MISSING:
                    fresh.append((algorithm, key_id, key))
                elif old != key:
                    raise invalid_param(f"One time key {algorithm}:{key_id} already exists")
            if fresh:
                statements.append(self._store.add_one_time_keys(user_id, device_id, fresh))
        if fallback_keys is not None:
            new = self._parse_keys(fallback_keys, "fallback_keys")
            algorithms = [algorithm for algorithm, _ in new]
            if len(set(algorithms)) != len(algorithms):
                raise bad_json("Only one fallback key per algorithm may be uploaded")
            stored_fallback = await self._store.get_fallback_keys(user_id, device_id)
            for (algorithm, key_id), key in new.items():
                current = stored_fallback.get(algorithm)
                if current is not None and current[0] == key_id and current[1] == key:
                    continue  # the same key again: keep its used flag
                statements.append(
                    self._store.put_fallback_key(user_id, device_id, algorithm, key_id, key))
        if statements:
            async with self._key_counts.writing(user_id, [device_id]):
                await self._changes.write(user_id, statements, announce=keys_changed)
        if keys_changed and self.publisher is not None:
            await self.publisher.devices_changed(user_id, [device_id])
        counts, _ = await self._key_counts.get(user_id, device_id)  # the next /sync's too
        return dict(counts)

    def _check_device_keys(self, user_id: str, device_id: str, keys: Any) -> dict[str, Any]:
        if not isinstance(keys, dict):
            raise bad_json("device_keys must be an object")
        if keys.get("user_id") != user_id or keys.get("device_id") != device_id:
            raise invalid_param("user_id and device_id of device_keys must be the requester's")
        algorithms = keys.get("algorithms")
        if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
            raise bad_json("device_keys.algorithms must be a list of strings")
        identity = keys.get("keys")
        if not isinstance(identity, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in identity.items()):
            raise bad_json("device_keys.keys must map key IDs to strings")
        for key_id in identity:
            if key_id.partition(":")[2] != device_id:
                raise invalid_param(f"Key ID {key_id!r} must be <algorithm>:{device_id}")
        ed25519 = identity.get(f"ed25519:{device_id}")
        if ed25519 is None or f"curve25519:{device_id}" not in identity:
            raise invalid_param(f"device_keys.keys needs ed25519:{device_id} and "
                                f"curve25519:{device_id}")
        if not isinstance(keys.get("signatures"), dict):
            raise bad_json("device_keys.signatures must be an object")
        check_signature(keys, user_id, f"ed25519:{device_id}", ed25519)
        return {k: v for k, v in keys.items() if k != "unsigned"}

    @staticmethod
    def _parse_keys(keys: Any, name: str) -> dict[tuple[str, str], Any]:
        if not isinstance(keys, dict):
            raise bad_json(f"{name} must be an object")
        out: dict[tuple[str, str], Any] = {}
        for full_id, key in keys.items():
            algorithm, sep, key_id = full_id.partition(":")
            if not sep or not algorithm or not key_id:
                raise bad_json(f"{name}: key ID {full_id!r} must be <algorithm>:<key_id>")
            if isinstance(key, dict):
                if not isinstance(key.get("key"), str):
                    raise bad_json(f"{name}: {full_id} has no 'key' string")
                if not isinstance(key.get("signatures", {}), dict):
                    raise bad_json(f"{name}: {full_id} has invalid signatures")
            elif not isinstance(key, str):
                raise bad_json(f"{name}: {full_id} must be a string or an object")
            out[(algorithm, key_id)] = key
        return out

    # -- POST /keys/query --

    async def query(self, requester_id: str, device_keys: Mapping[str, Sequence[str]], *,
                    timeout_ms: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {"device_keys": {}, "failures": {}, "master_keys": {},
                                  "self_signing_keys": {}, "user_signing_keys": {}}
        remote: dict[str, dict[str, Sequence[str]]] = {}
        for user_id, device_ids in device_keys.items():
            server = server_of(user_id)
            if server == self._server_name:
                await self._query_local(requester_id, user_id, device_ids, result)
            elif server is not None and self.remote is not None:
                remote.setdefault(server, {})[user_id] = device_ids
        if remote:
            lists = self.remote
            assert lists is not None
            timeout_s = remote_timeout_s(timeout_ms)
            answers, result["failures"] = await per_server({
                server: functools.partial(lists.query, requester_id, server, wanted, timeout_s)
                for server, wanted in remote.items()}, timeout_s)
            for answer in answers.values():
                for field, by_user in answer.items():
                    result[field].update(by_user)
        return result

    async def _query_local(self, requester_id: str, user_id: str, device_ids: Sequence[str],
                           result: dict[str, Any], *, display_names: bool = True) -> None:
        """Add a local user's device and cross-signing keys to ``result``, with the
        signatures ``requester_id`` may see (the owner's, and the requester's own)."""
        signatures = await self._store.get_signatures(user_id, requester_id)
        devices: dict[str, Any] = {}
        for device_id, keys, display_name in await self._store.list_device_keys(
                user_id, device_ids):
            merge_signatures(keys, signatures.get(device_id, []))
            if display_name is not None and display_names:
                keys["unsigned"] = {"device_display_name": display_name}
            devices[device_id] = keys
        result["device_keys"][user_id] = devices
        cross = await self._store.get_cross_signing_keys(user_id)
        for key_type in CROSS_SIGNING_TYPES:
            key = cross.get(key_type)
            if key is None or (key_type == "user_signing" and user_id != requester_id):
                continue
            public = public_key_of(key)
            if public is not None:
                merge_signatures(key, signatures.get(public, []))
            result[f"{key_type}_keys"][user_id] = key

    # -- POST /keys/claim --

    async def claim(self, one_time_keys: Mapping[str, Mapping[str, str]], *,
                    timeout_ms: int | None = None) -> dict[str, Any]:
        claimed: dict[str, dict[str, dict[str, Any]]] = {}
        remote: dict[str, dict[str, Mapping[str, str]]] = {}
        for user_id, devices in one_time_keys.items():
            server = server_of(user_id)
            if server == self._server_name:
                await self._claim_local(user_id, devices, claimed)
            elif server is not None and self.remote is not None:
                remote.setdefault(server, {})[user_id] = devices
        failures: dict[str, dict[str, Any]] = {}
        if remote:
            lists = self.remote
            assert lists is not None
            timeout_s = remote_timeout_s(timeout_ms)
            answers, failures = await per_server({
                server: functools.partial(lists.claim, server, wanted, timeout_s)
                for server, wanted in remote.items()}, timeout_s)
            for answer in answers.values():
                claimed.update(answer)
        return {"one_time_keys": claimed, "failures": failures}

    async def _claim_local(self, user_id: str, devices: Mapping[str, str],
                           claimed: dict[str, dict[str, dict[str, Any]]]) -> None:
        """One-time keys first; a device out of them hands out its fallback key."""
        for device_id, algorithm in devices.items():
            async with self._key_counts.writing(user_id, [device_id]):
                found = await self._store.claim_one_time_key(user_id, device_id, algorithm)
                if found is None:
                    found = await self._store.claim_fallback_key(user_id, device_id, algorithm)
            if found is not None:
                key_id, key = found
                claimed.setdefault(user_id, {}).setdefault(device_id, {})[
                    f"{algorithm}:{key_id}"] = key

    # -- answering other servers --

    async def federation_query(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /_matrix/federation/v1/user/keys/query: local users only; the signatures
        shown are the owners' own, and user-signing keys stay private."""
        device_keys = body.get("device_keys")
        if not isinstance(device_keys, dict) or not all(
                isinstance(v, list) and all(isinstance(d, str) for d in v)
                for v in device_keys.values()):
            raise bad_json("device_keys must map user IDs to lists of device IDs")
        result: dict[str, Any] = {"device_keys": {}, "master_keys": {},
                                  "self_signing_keys": {}, "user_signing_keys": {}}
        for user_id, device_ids in device_keys.items():
            if server_of(user_id) == self._server_name:
                await self._query_local("", user_id, device_ids, result,
                                        display_names=self._share_names)
        del result["user_signing_keys"]
        return result

    async def federation_claim(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /_matrix/federation/v1/user/keys/claim: local users only."""
        one_time_keys = body.get("one_time_keys")
        if not isinstance(one_time_keys, dict) or not all(
                isinstance(v, dict) and all(isinstance(a, str) for a in v.values())
                for v in one_time_keys.values()):
            raise bad_json("one_time_keys must map user IDs to device IDs to algorithms")
        claimed: dict[str, dict[str, dict[str, Any]]] = {}
        for user_id, devices in one_time_keys.items():
            if server_of(user_id) == self._server_name:
                await self._claim_local(user_id, devices, claimed)
        return {"one_time_keys": claimed}

    async def federation_user_devices(self, user_id: str) -> dict[str, Any]:
        """GET /_matrix/federation/v1/user/devices/{userId}: the devices with keys, and the
        stream_id of the last m.device_list_update sent, which later updates continue from.
        The stream_id is read first: a change racing this read is then sent again after it."""
        if server_of(user_id) != self._server_name:
            raise invalid_param("Not a user of this server")
        stream_id = await self._store.outbound_stream_id(user_id)
        signatures = await self._store.get_signatures(user_id, user_id)
        devices: list[dict[str, Any]] = []
        for device_id, keys, display_name in await self._store.list_device_keys(user_id, None):
            merge_signatures(keys, signatures.get(device_id, []))
            device: dict[str, Any] = {"device_id": device_id, "keys": keys}
            if display_name is not None and self._share_names:
                device["device_display_name"] = display_name
            devices.append(device)
        return {"user_id": user_id, "stream_id": stream_id, "devices": devices,
                **await public_cross_signing_keys(self._store, user_id)}

    @property
    def _share_names(self) -> bool:
        return self.publisher is not None and self.publisher.share_device_names

    async def close(self) -> None:
        """Stop background work (device list resyncs) at shutdown."""
        if self.remote is not None:
            await self.remote.close()

    # -- for /sync --

    async def key_counts(self, user_id: str, device_id: str) -> KeyCounts:
        """(one-time key counts per algorithm, unused fallback key types) of the device; the
        caller must not modify them."""
        return await self._key_counts.get(user_id, device_id)

    async def device_list_changes(self, user_id: str, since_stream: int | None,
                                  upto: int) -> tuple[list[str], list[str]]:
        """(changed, left) for /sync's ``device_lists`` and GET /keys/changes.

        changed: users sharing a room with ``user_id`` (or ``user_id`` itself) whose device or
        cross-signing keys changed in (since, upto], users who started sharing a room in that
        window, and users whose master key ``user_id`` signed. left: users who stopped sharing
        every room. An initial sync (``since_stream`` None) reports nothing, as Synapse does.
        """
        if since_stream is None or upto <= since_stream:
            return [], []
        changed: set[str] = set()
        candidates: set[str] = set()
        if self._changes.changes.changed_after(since_stream):
            changed = await self._store.changed_key_owners(user_id, since_stream, upto)
        if self._membership_changes is None or self._membership_changes.changed_after(
                since_stream):  # else nobody joined or left
            changed |= await self._store.newly_shared(user_id, since_stream, upto)
            candidates = await self._store.maybe_left(user_id, since_stream, upto)
        left: set[str] = set()
        if candidates:
            shared = await self._store.users_sharing_rooms(user_id)
            left = candidates - shared - {user_id}
        changed -= left
        return sorted(changed), sorted(left)


async def public_cross_signing_keys(store: E2eKeyStore, user_id: str) -> dict[str, Any]:
    """A local user's ``master_key`` / ``self_signing_key`` as other servers may see them,
    with the user's own signatures (user-signing keys never leave the server)."""
    cross = await store.get_cross_signing_keys(user_id)
    signatures = await store.get_signatures(user_id, user_id)
    out: dict[str, Any] = {}
    for key_type in ("master", "self_signing"):
        key = cross.get(key_type)
        if key is None:
            continue
        public = public_key_of(key)
        if public is not None:
            merge_signatures(key, signatures.get(public, []))
        out[f"{key_type}_key"] = key
    return out


def public_key_of(key: Mapping[str, Any]) -> str | None:
    """The public key of a stored cross-signing key (its single ``ed25519:<pub>`` entry)."""
    keys = key.get("keys")
    if isinstance(keys, dict) and len(keys) == 1:
        value = next(iter(keys.values()))
        return value if isinstance(value, str) else None
    return None


_MISSING = object()
