"""Other servers' signing keys: find them, trust them only once verified, check signatures.

Server-server API, "Retrieving server keys", and rooms/fragments/v5-signing-requirements.md. A
key is looked up in memory, then the database, then fetched from the server itself
(``GET /_matrix/key/v2/server``), then from the configured notaries (``POST
/_matrix/key/v2/query``). Every response is verified before anything in it is used or stored:
it must name the server we asked about, be signed by every ed25519 key it lists in
``verify_keys`` ("Digital signatures for this object signed using the ``verify_keys``"), and,
when a notary relayed it, also by that notary with a key we were configured to trust.

Validity. ``valid_at_ms`` says what a key is needed for:

* ``None``: a request being received now (X-Matrix). Only ``verify_keys`` count ("valid for
  signing federation requests"), and only while their validity lasts.
* an integer T: an object made at T (an event's ``origin_server_ts`` in room versions that
  enforce key validity). A current key counts if its validity lasts until T; an old key (from
  ``old_verify_keys``, "only valid for signing events") if T is before its ``expired_ts``.
* ``0``: validity ignored, as room versions 1-4 require ("This field MUST be ignored").

A current key's validity is "the lesser of valid_until_ts and 7 days into the future" from when
we fetched it. A cached key not valid long enough is refetched; a server whose fetch failed is
not asked again for ``negative_cache_ms`` (a dead or hostile server would otherwise be hammered
once per incoming event), and concurrent lookups for one server share one fetch.

This module also answers as a notary (``notary_response``) and builds our own key response.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.signing

from myelin.core.room_versions import EventIdFormat, RoomVersion
from myelin.core.signing import (
    SignatureError,
    decode_base64,
    sign_json,
    verify_event_signature,
    verify_json,
)
from myelin.core.x_matrix import is_valid_key_id
from myelin.errors import MatrixError, bad_json
from myelin.ids import is_valid_server_name
from myelin.signing_key import SigningKey
from myelin.storage.stores.server_keys import ServerKeyStore

__all__ = ["DEFAULT_KEY_VALIDITY_MS", "Fetch", "KeyNotFound", "Keyring"]

log = logging.getLogger("myelin.federation.keyring")

Fetch = Callable[[str, str, str, Any | None], Awaitable[Any]]
"""(server_name, method, path, JSON body or None) -> parsed JSON response; raises on failure."""

DEFAULT_KEY_VALIDITY_MS = 24 * 3600 * 1000
# keys.yaml, valid_until_ts: "the lesser of this field and 7 days into the future".
MAX_KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000
_MAX_CACHED_SERVERS = 10_000
MAX_NOTARY_SERVERS = 200  # servers in one /key/v2/query request
MAX_NOTARY_KEY_IDS = 50  # key IDs asked of one server in it
_SERVER_KEY_PATH = "/_matrix/key/v2/server"
_QUERY_PATH = "/_matrix/key/v2/query"


class KeyNotFound(Exception):
    """No verified key with that ID, usable at the time asked, could be obtained."""


@dataclass(frozen=True, slots=True)
class _Key:
    verify_key: nacl.signing.VerifyKey
    valid_until_ts: int  # effective: already capped at fetched_ts + 7 days
    expired_ts: int | None  # None: listed in verify_keys; else an old_verify_key

    def usable(self, valid_at_ms: int | None, now_ms: int) -> bool:
        if valid_at_ms is None:
            return self.expired_ts is None and self.valid_until_ts >= now_ms
        if self.expired_ts is not None:
            return valid_at_ms < self.expired_ts
        return self.valid_until_ts >= valid_at_ms


@dataclass(frozen=True, slots=True)
class _Need:
    """What a fetch round is for: these keys, usable as ``valid_at_ms`` says."""

    key_ids: tuple[str, ...]
    valid_at_ms: int | None


class Keyring:
    def __init__(
        self,
        store: ServerKeyStore,
        signing_key: SigningKey,
        server_name: str,
        fetch: Fetch,
        trusted_notaries: Sequence[tuple[str, Mapping[str, str]]] = (),
        *,
        old_verify_keys: Mapping[str, tuple[str, int]] | None = None,
        key_validity_ms: int = DEFAULT_KEY_VALIDITY_MS,
        clock: Callable[[], float] = time.time,
        fetch_timeout_s: float = 30.0,
        negative_cache_ms: int = 60_000,
        max_concurrent_notary_fetches: int = 10,
    ) -> None:
        """``trusted_notaries``: (server name, {key ID: unpadded base64 verify key}) each;
        ``old_verify_keys``: our own retired keys, {key ID: (base64 verify key, expired_ts)}."""
        self._store = store
        self._signing_key = signing_key
        self._server_name = server_name
        self._fetch = fetch
        self._notaries = [
            (name, {kid: _verify_key(b64) for kid, b64 in keys.items()})
            for name, keys in trusted_notaries
        ]
        self._old_keys = {
            kid: (b64, _verify_key(b64), expired_ts)
            for kid, (b64, expired_ts) in (old_verify_keys or {}).items()
        }
        self._key_validity_ms = key_validity_ms
        self._clock = clock
        self._fetch_timeout_s = fetch_timeout_s
        self._negative_cache_ms = negative_cache_ms
        self._notary_fetches = asyncio.Semaphore(max_concurrent_notary_fetches)
        self._cache: OrderedDict[str, dict[str, _Key]] = OrderedDict()
        self._failed_until: dict[tuple[str, bool], int] = {}
        self._inflight: dict[tuple[str, bool], asyncio.Task[None]] = {}

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- looking keys up ------------------------------------------------------------------

    async def get_verify_key(
        self, server_name: str, key_id: str, *, valid_at_ms: int | None
    ) -> nacl.signing.VerifyKey:
        """The verify key ``key_id`` of ``server_name``, usable as ``valid_at_ms`` asks (see
        the module docstring); ``KeyNotFound`` when no source yields one."""
        if server_name == self._server_name:
            return self._own_key(key_id, valid_at_ms)
        if not is_valid_key_id(key_id):
            raise KeyNotFound(f"{key_id!r} is not an ed25519 key ID")
        if not is_valid_server_name(server_name):
            raise KeyNotFound(f"{server_name!r} is not a valid server name")
        keys = await self._keys_of(server_name)
        key = keys.get(key_id)
        if key is not None and key.usable(valid_at_ms, self._now_ms()):
            return key.verify_key
        if key is None or key.expired_ts is None:  # an expired old key stays expired
            await self._refresh(server_name, _Need((key_id,), valid_at_ms), via_notaries=True)
            key = (await self._keys_of(server_name)).get(key_id)
            if key is not None and key.usable(valid_at_ms, self._now_ms()):
                return key.verify_key
        if key is None:
            recent = self._failed_until.get((server_name, True), 0) > self._now_ms()
            raise KeyNotFound(f"no key {key_id} of {server_name} could be obtained"
                              + (" (fetching recently failed; not retried yet)" if recent else ""))
        when = "now" if valid_at_ms is None else f"at {valid_at_ms}"
        if key.expired_ts is not None:
            raise KeyNotFound(f"key {key_id} of {server_name} is an old key (expired at "
                              f"{key.expired_ts}), not usable {when}")
        raise KeyNotFound(f"key {key_id} of {server_name} is valid only until "
                          f"{key.valid_until_ts}, not {when}")

    def _own_key(self, key_id: str, valid_at_ms: int | None) -> nacl.signing.VerifyKey:
        if key_id == self._signing_key.key_id:
            return self._signing_key.signing_key.verify_key
        old = self._old_keys.get(key_id)
        if old is not None and valid_at_ms is not None and valid_at_ms < old[2]:
            return old[1]
        raise KeyNotFound(f"this server has no key {key_id} usable for that")

    async def _keys_of(self, server_name: str) -> dict[str, _Key]:
        """Memory, else the database (kept for the most recently used servers)."""
        keys = self._cache.get(server_name)
        if keys is None:
            keys = await self._load(server_name)
        else:
            self._cache.move_to_end(server_name)
        return keys

    async def _load(self, server_name: str) -> dict[str, _Key]:
        keys = {
            kid: _Key(_verify_key(rec.verify_key),
                      min(rec.valid_until_ts, rec.fetched_ts + MAX_KEY_VALIDITY_MS),
                      rec.expired_ts)
            for kid, rec in (await self._store.get_keys(server_name)).items()
        }
        self._cache[server_name] = keys
        self._cache.move_to_end(server_name)
        while len(self._cache) > _MAX_CACHED_SERVERS:
            self._cache.popitem(last=False)
        return keys

    # -- fetching -------------------------------------------------------------------------

    async def _refresh(self, server_name: str, need: _Need, *, via_notaries: bool) -> None:
        """Run (or join the running) fetch round for ``server_name``, unless a round that
        could not meet its need ended within ``negative_cache_ms``. Joiners of a round
        started for another need re-check the cache for their own afterwards."""
        flight = (server_name, via_notaries)
        task = self._inflight.get(flight)
        if task is None:
            if self._failed_until.get(flight, 0) > self._now_ms():
                return
            task = asyncio.ensure_future(self._round(flight, need))
            self._inflight[flight] = task
        await asyncio.shield(task)

    async def _round(self, flight: tuple[str, bool], need: _Need) -> None:
        server_name, via_notaries = flight
        try:
            satisfied = await self._fetch_direct(server_name) and await self._has(
                server_name, need)
            for notary, notary_keys in self._notaries if via_notaries else ():
                if satisfied:
                    break
                if notary != server_name:
                    await self._fetch_via_notary(server_name, need, notary, notary_keys)
                    satisfied = await self._has(server_name, need)
            if not satisfied:
                self._remember_failure(flight)
        finally:
            self._inflight.pop(flight, None)

    async def _has(self, server_name: str, need: _Need) -> bool:
        keys = await self._keys_of(server_name)
        now = self._now_ms()
        return all(k in keys and keys[k].usable(need.valid_at_ms, now) for k in need.key_ids)

    def _remember_failure(self, flight: tuple[str, bool]) -> None:
        """Negative cache, per server and kind of round: our notary endpoint, which anyone may
        call, cannot stop lookups of keys for verifying that server's requests and events."""
        now = self._now_ms()
        if len(self._failed_until) >= _MAX_CACHED_SERVERS:
            self._failed_until = {f: t for f, t in self._failed_until.items() if t > now}
        self._failed_until[flight] = now + self._negative_cache_ms

    async def _call(self, server_name: str, method: str, path: str, body: Any | None) -> Any:
        async with asyncio.timeout(self._fetch_timeout_s):
            return await self._fetch(server_name, method, path, body)

    async def _fetch_direct(self, server_name: str) -> bool:
        """Server-server API, "Publishing Keys": ask the server itself."""
        try:
            response = await self._call(server_name, "GET", _SERVER_KEY_PATH, None)
            await self._accept(response, server_name, from_server=server_name)
        except Exception as e:
            log.info("fetching the keys of %s from it failed: %s", server_name, e)
            return False
        return True

    async def _fetch_via_notary(self, server_name: str, need: _Need, notary: str,
                                notary_keys: Mapping[str, nacl.signing.VerifyKey]) -> None:
        """"Querying Keys Through Another Server"; the v5 signing requirements say servers
        "MUST set the minimum_valid_until_ts property" here."""
        minimum = need.valid_at_ms or self._now_ms()
        criteria = {k: {"minimum_valid_until_ts": minimum} for k in need.key_ids}
        try:
            answer = await self._call(notary, "POST", _QUERY_PATH,
                                      {"server_keys": {server_name: criteria}})
            items = answer["server_keys"]
            if not isinstance(items, list):
                raise ValueError("server_keys is not a list")
        except Exception as e:
            log.info("asking notary %s for the keys of %s failed: %s", notary, server_name, e)
            return
        for item in items:
            if isinstance(item, dict) and item.get("server_name") == server_name:
                try:
                    await self._accept(item, server_name, from_server=notary,
                                       notary_keys=notary_keys)
                except ValueError as e:  # SignatureError included
                    log.warning("notary %s sent unusable keys for %s: %s", notary,
                                server_name, e)

    async def _accept(self, response: Any, server_name: str, *, from_server: str,
                      notary_keys: Mapping[str, nacl.signing.VerifyKey] | None = None) -> None:
        """Verify a key response (see the module docstring), then store and cache it."""
        _check_key_response(response, server_name)
        if notary_keys is not None:
            _check_signed_by(response, from_server, notary_keys)
        await self._store.store_response(response, from_server=from_server,
                                         fetched_ts=self._now_ms())
        await self._load(server_name)

    # -- checking signatures --------------------------------------------------------------

    async def verify_json_for_server(self, server_name: str, obj: Mapping[str, Any], *,
                                     valid_at_ms: int | None) -> None:
        """Appendices, "Checking for a Signature", for every ed25519 signature of
        ``server_name`` whose key we can obtain: each must verify, and at least one must exist
        (SignatureError / KeyNotFound otherwise)."""

        def check(key_id: str, key: nacl.signing.VerifyKey) -> None:
            verify_json(obj, server_name, key_id, key)

        await self._verify_signatures(server_name, obj, valid_at_ms, check)

    async def verify_event_signatures(self, pdu_json: Mapping[str, Any],
                                      room_version: RoomVersion) -> None:
        """Server-server API, "Validating hashes and signatures on received events" (the
        signature part; the content hash is the caller's next step). Signatures are checked
        on the redacted event, from:

        * the sender's server, unless the event is an invite from a third-party invite (its
          sender matches the 3pid invite, but it may come from another server);
        * room versions 1-2: also the server in the event ID, when it differs;
        * room versions with restricted joins: the server of
          ``content.join_authorised_via_users_server`` of a membership event (auth rules,
          "If the event is not validly signed by the homeserver of the user ID denoted by
          the key, reject"), which the auth rules cannot check themselves.

        Key validity counts from ``origin_server_ts`` only where the room version enforces it.
        """
        content = pdu_json.get("content")
        content = content if isinstance(content, dict) else {}
        is_member = pdu_json.get("type") == "m.room.member"
        servers: list[str] = []
        if not (is_member and content.get("membership") == "invite"
                and "third_party_invite" in content):
            servers.append(_domain(pdu_json.get("sender"), "sender"))
        if room_version.event_id_format is EventIdFormat.SERVER_GENERATED:
            servers.append(_domain(pdu_json.get("event_id"), "event_id"))
        if room_version.restricted_join_rule and is_member \
                and "join_authorised_via_users_server" in content:
            servers.append(_domain(content["join_authorised_via_users_server"],
                                   "join_authorised_via_users_server"))
        valid_at_ms = 0
        if room_version.enforce_key_validity:
            ts = pdu_json.get("origin_server_ts")
            if not isinstance(ts, int) or isinstance(ts, bool):
                raise SignatureError("the event has no integer origin_server_ts")
            valid_at_ms = ts
        for server_name in dict.fromkeys(servers):

            def check(key_id: str, key: nacl.signing.VerifyKey, server: str = server_name) -> None:
                verify_event_signature(pdu_json, room_version, server, key_id, key)

            await self._verify_signatures(server_name, pdu_json, valid_at_ms, check)

    async def _verify_signatures(self, server_name: str, obj: Mapping[str, Any],
                                 valid_at_ms: int | None,
                                 check: Callable[[str, nacl.signing.VerifyKey], None]) -> None:
        # Appendices, "Checking for a Signature", steps 1-3: the entity's entry, ed25519 only,
        # keys looked up; server-server API: "If a signature is from an unknown or expired
        # key, it is skipped", but all from known keys must be valid.
        signatures = obj.get("signatures")
        ours = signatures.get(server_name) if isinstance(signatures, dict) else None
        if not isinstance(ours, dict) or not ours:
            raise SignatureError(f"not signed by {server_name}")
        key_ids = sorted(k for k in ours if isinstance(k, str) and k.startswith("ed25519:"))
        if not key_ids:
            raise SignatureError(f"no ed25519 signature from {server_name}")
        verified = 0
        unavailable: list[str] = []
        for key_id in key_ids:
            try:
                key = await self.get_verify_key(server_name, key_id, valid_at_ms=valid_at_ms)
            except KeyNotFound as e:
                unavailable.append(str(e))
                continue
            check(key_id, key)  # steps 4-7; SignatureError propagates
            verified += 1
        if not verified:
            raise KeyNotFound(f"no usable key for the signatures of {server_name}: "
                              + "; ".join(unavailable))

    # -- what we publish ------------------------------------------------------------------

    def own_key_response(self, valid_for_ms: int | None = None) -> dict[str, Any]:
        """Our signed ``GET /_matrix/key/v2/server`` response ("Publishing Keys"). Servers
        "should avoid returning responses that expire in less than an hour"; the default
        validity is ``key_validity_ms``."""
        valid_for = self._key_validity_ms if valid_for_ms is None else valid_for_ms
        key = self._signing_key
        response = {
            "server_name": self._server_name,
            "verify_keys": {key.key_id: {"key": key.verify_key_base64}},
            "old_verify_keys": {
                kid: {"key": b64, "expired_ts": expired_ts}
                for kid, (b64, _, expired_ts) in self._old_keys.items()
            },
            "valid_until_ts": self._now_ms() + valid_for,
        }
        return sign_json(response, self._server_name, key.signing_key, key.key_id)

    async def notary_response(self, server_keys: Any, *,
                              minimum_valid_until_ts: int | None = None) -> dict[str, Any]:
        """Answer ``/_matrix/key/v2/query`` as a notary: ``server_keys`` is the request's
        ``{server: {key ID: {"minimum_valid_until_ts": ts}}}`` (an empty key map: all keys);
        ``minimum_valid_until_ts`` the default criterion (GET's query parameter).

        keys_server.yaml: a notary should "cache a response for half of its lifetime" and,
        when the server does not answer, "continue to return the last response". So we ask
        the server only when what we hold is missing, past half its lifetime, or not valid
        until the asked time, and return what we hold either way, each response signed by us.
        """
        if not isinstance(server_keys, dict) or not all(
                isinstance(v, dict) and all(isinstance(c, dict) for c in v.values())
                for v in server_keys.values()):
            raise bad_json("server_keys must map server names to {key ID: criteria} objects")
        # One request must not make us fetch from any number of servers (a notary is open to
        # anyone): as many as a room's servers would need is plenty.
        if len(server_keys) > MAX_NOTARY_SERVERS or any(
                len(v) > MAX_NOTARY_KEY_IDS for v in server_keys.values()):
            raise MatrixError(400, "M_INVALID_PARAM",
                              f"At most {MAX_NOTARY_SERVERS} servers and "
                              f"{MAX_NOTARY_KEY_IDS} key IDs per server in one query")
        # "If not supplied, the notary server MUST use the current time."
        default = self._now_ms() if minimum_valid_until_ts is None else minimum_valid_until_ts

        def minimum(criteria: dict[str, Any]) -> int:
            asked = [c.get("minimum_valid_until_ts") for c in criteria.values()]
            return max([a if isinstance(a, int) else default for a in asked] or [default])

        results = await asyncio.gather(*(
            self._notary_server(server, list(criteria), minimum(criteria))
            for server, criteria in server_keys.items()))
        return {"server_keys": [response for found in results for response in found]}

    async def _notary_server(self, server_name: str, key_ids: list[str],
                             minimum: int) -> list[dict[str, Any]]:
        if server_name == self._server_name:
            return [self.own_key_response()]
        if not is_valid_server_name(server_name):
            return []
        held = await self._store.get_keys(server_name)
        now = self._now_ms()
        current = [r for r in held.values() if r.expired_ts is None]
        freshest = max(current, key=lambda r: r.valid_until_ts, default=None)
        if (freshest is None or any(k not in held for k in key_ids)
                or freshest.valid_until_ts < minimum
                or now >= (freshest.fetched_ts + freshest.valid_until_ts) // 2):
            async with self._notary_fetches:
                await self._refresh(server_name, _Need(tuple(key_ids), 0), via_notaries=False)
        key = self._signing_key
        return [sign_json(response, self._server_name, key.signing_key, key.key_id,
                          strict=False)
                for response in await self._store.responses(server_name, key_ids)]


# -- verifying key responses --------------------------------------------------------------


def _verify_key(b64: str) -> nacl.signing.VerifyKey:
    raw = decode_base64(b64)
    if len(raw) != 32:
        raise ValueError(f"an ed25519 verify key is 32 bytes, got {len(raw)}")
    return nacl.signing.VerifyKey(raw)


def _check_key_response(response: Any, server_name: str) -> None:
    """keys.yaml: required server_name, verify_keys, signatures, valid_until_ts; the response
    must be about the server asked for and signed by all of its ed25519 ``verify_keys``."""
    if not isinstance(response, dict):
        raise ValueError("the key response is not a JSON object")
    if response.get("server_name") != server_name:
        raise ValueError(f"the key response is for {response.get('server_name')!r}, "
                         f"not {server_name!r}")
    valid_until = response.get("valid_until_ts")
    if not isinstance(valid_until, int) or isinstance(valid_until, bool):
        raise ValueError("valid_until_ts is missing or not an integer")
    verify_keys = response.get("verify_keys")
    old_keys = response.get("old_verify_keys", {})
    if not isinstance(verify_keys, dict) or not isinstance(old_keys, dict):
        raise ValueError("verify_keys / old_verify_keys are not objects")
    own: dict[str, nacl.signing.VerifyKey] = {}
    for group in (verify_keys, old_keys):
        for key_id, entry in group.items():
            if not key_id.startswith("ed25519:"):
                continue  # an algorithm we do not understand
            if not is_valid_key_id(key_id) or not isinstance(entry, dict) \
                    or not isinstance(entry.get("key"), str):
                raise ValueError(f"malformed key entry {key_id!r}")
            key = _verify_key(entry["key"])
            if group is verify_keys:
                own[key_id] = key
            elif not isinstance(entry.get("expired_ts"), int):
                raise ValueError(f"old key {key_id!r} has no integer expired_ts")
    if not own:
        raise ValueError("the key response lists no ed25519 verify key")
    for key_id, key in own.items():
        verify_json(response, server_name, key_id, key, strict=True)


def _check_signed_by(response: Mapping[str, Any], notary: str,
                     notary_keys: Mapping[str, nacl.signing.VerifyKey]) -> None:
    """A relayed response must carry a valid signature of the notary by a trusted key."""
    signatures = response.get("signatures")
    theirs = signatures.get(notary) if isinstance(signatures, dict) else None
    present = [kid for kid in notary_keys if isinstance(theirs, dict) and kid in theirs]
    if not present:
        raise SignatureError(f"not signed by notary {notary} with a trusted key")
    for key_id in present:
        verify_json(response, notary, key_id, notary_keys[key_id], strict=True)


def _domain(identifier: Any, field: str) -> str:
    """The server name of a user or (room v1-v2) event ID: everything after the first ':'."""
    server = identifier.partition(":")[2] if isinstance(identifier, str) else ""
    if not is_valid_server_name(server):
        raise SignatureError(f"the event's {field} {identifier!r} names no valid server")
    return server
