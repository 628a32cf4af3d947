"""A minimal remote homeserver for federation-ingest: keys, signing, and event building.

It is just enough of the server-server API for a real server to accept our PDUs: an HTTPS
listener (self-signed certificate for the IP-literal server name ``127.0.0.1:PORT``, so the
target finds it with no .well-known or DNS) that publishes our ed25519 key, answers the
target's own transactions and serves our events back (``/event``, ``/get_missing_events``),
plus X-Matrix request signing and PDU hashing, signing and event IDs (room versions 10-12).
It uses the reference libraries (signedjson, canonicaljson, PyNaCl), not Myelin's code, so
a bug in Myelin's event format cannot make its own benchmark look good.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import signedjson.key
import signedjson.sign
from aiohttp import web
from canonicaljson import encode_canonical_json
from yarl import URL

KEEP_TOP = {"event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
            "signatures", "depth", "prev_events", "auth_events", "origin_server_ts"}
KEEP_TOP_V10 = KEEP_TOP | {"origin", "membership", "prev_state"}


def unpadded_b64(data: bytes, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(data).decode().rstrip("=")


def redact(event: dict[str, Any], room_version: str) -> dict[str, Any]:
    """The redaction algorithm, for the event types we build (member joins and messages)."""
    if room_version not in ("10", "11", "12"):
        raise ValueError(f"room version {room_version} is not supported by this tool")
    keep = KEEP_TOP_V10 if room_version == "10" else KEEP_TOP
    out = {k: v for k, v in event.items() if k in keep}
    content = event.get("content", {})
    if event["type"] == "m.room.member":
        out["content"] = {k: v for k, v in content.items()
                          if k in ("membership", "join_authorised_via_users_server")}
    elif event["type"] in ("m.room.message",):
        out["content"] = {}
    else:
        raise ValueError(f"no redaction rules here for {event['type']}")
    return out


class Remote:
    """Our server: name, key, the events we made, and the HTTPS listener."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server_name = f"127.0.0.1:{port}"
        self.key = signedjson.key.generate_signing_key("bench")
        self.key_id = f"ed25519:{self.key.version}"
        self.events: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self._runner: web.AppRunner | None = None

    def finish_event(self, event: dict[str, Any], room_version: str) -> str:
        """Add content hash and signature; return the event ID (reference hash)."""
        event.pop("signatures", None)
        event.pop("unsigned", None)
        event.pop("hashes", None)
        event["hashes"] = {"sha256": unpadded_b64(hashlib.sha256(
            encode_canonical_json(event)).digest())}
        signed = signedjson.sign.sign_json(redact(event, room_version), self.server_name,
                                           self.key)
        event["signatures"] = signed["signatures"]
        reference = redact(event, room_version)
        reference.pop("signatures", None)
        event_id = "$" + unpadded_b64(hashlib.sha256(encode_canonical_json(reference))
                                      .digest(), urlsafe=True)
        self.events[event_id] = event
        self.order.append(event_id)
        return event_id

    def authorization(self, method: str, path: str, destination: str,
                      content: Any = None) -> str:
        request: dict[str, Any] = {"method": method, "uri": path, "origin": self.server_name,
                                   "destination": destination}
        if content is not None:
            request["content"] = content
        signed = signedjson.sign.sign_json(request, self.server_name, self.key)
        sig = signed["signatures"][self.server_name][self.key_id]
        return (f'X-Matrix origin="{self.server_name}",destination="{destination}",'
                f'key="{self.key_id}",sig="{sig}"')

    async def call(self, session: aiohttp.ClientSession, base_url: str, destination: str,
                   method: str, path: str, body: Any = None) -> Any:
        """A signed server-server request to the target (path already percent-encoded)."""
        headers = {"Authorization": self.authorization(method, path, destination, body)}
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        async with session.request(method, URL(base_url + path, encoded=True), data=data,
                                   headers=headers) as resp:
            raw = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path} -> {resp.status}: {raw[:300]!r}")
            return orjson.loads(raw)

    # --- the listener -------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/_matrix/key/v2/server", self._keys)
        app.router.add_get("/_matrix/key/v2/server/{key_id}", self._keys)
        app.router.add_put("/_matrix/federation/v1/send/{txn}", self._transaction)
        app.router.add_get("/_matrix/federation/v1/event/{event_id}", self._event)
        app.router.add_post("/_matrix/federation/v1/get_missing_events/{room}", self._missing)
        app.router.add_get("/_matrix/federation/v1/user/devices/{user}", self._devices)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port,
                          ssl_context=self._tls()).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _tls(self) -> ssl.SSLContext:
        folder = Path(tempfile.mkdtemp(prefix="bench-remote-"))
        cert, key = self_signed_certificate(folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context

    async def _keys(self, _request: web.Request) -> web.Response:
        verify = unpadded_b64(bytes(self.key.verify_key))
        body = signedjson.sign.sign_json({
            "server_name": self.server_name, "old_verify_keys": {},
            "valid_until_ts": int(time.time() * 1000) + 86_400_000,
            "verify_keys": {self.key_id: {"key": verify}}}, self.server_name, self.key)
        return web.json_response(body)

    async def _transaction(self, _request: web.Request) -> web.Response:
        return web.json_response({"pdus": {}})

    async def _event(self, request: web.Request) -> web.Response:
        event = self.events.get(request.match_info["event_id"])
        if event is None:
            return web.json_response({"errcode": "M_NOT_FOUND", "error": "no"}, status=404)
        return web.json_response({"origin": self.server_name, "pdus": [event],
                                  "origin_server_ts": int(time.time() * 1000)})

    async def _missing(self, request: web.Request) -> web.Response:
        body = await request.json()
        earliest = set(body.get("earliest_events", []))
        latest = [e for e in body.get("latest_events", []) if e in self.events]
        limit = int(body.get("limit", 10))
        if not latest:
            return web.json_response({"events": []})
        end = min(self.order.index(e) for e in latest)
        found: list[dict[str, Any]] = []
        for event_id in reversed(self.order[:end]):
            if event_id in earliest or len(found) >= limit:
                break
            found.append(self.events[event_id])
        return web.json_response({"events": list(reversed(found))})

    async def _devices(self, request: web.Request) -> web.Response:
        return web.json_response({"user_id": request.match_info["user"], "stream_id": 0,
                                  "devices": []})


def self_signed_certificate(folder: Path, ip: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for an IP-literal server name (subjectAltName IP), valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def q(value: str) -> str:
    """Percent-encode one path segment (room and user IDs, event IDs)."""
    return quote(value, safe="")
