"""GET /voip/turnServer over real HTTP: coturn REST credentials, fixed ones, none, guests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from myelin.config import ConfigError, parse_config

from harness import Client, RunningServer
from harness import logged_in_user as user
from server_fixtures import ServerFactory

TURN = "/_matrix/client/v3/voip/turnServer"
URIS = ["turn:turn.test.local:3478?transport=udp", "turns:turn.test.local:5349?transport=tcp"]


async def guest_client(server: RunningServer) -> Client:
    resp = await server.client.post("/_matrix/client/v3/register?kind=guest", {})
    assert resp.status == 200, resp
    guest = Client(server.url, server.client.session)
    guest.token = resp.json["access_token"]
    return guest


async def test_not_configured(homeserver: RunningServer) -> None:
    alice = await user(homeserver, "alice")
    resp = await alice.get(TURN)
    assert resp.status == 200 and resp.json == {}
    assert (await homeserver.client.get(TURN)).status == 401


async def test_shared_secret_credentials(start_server: ServerFactory) -> None:
    server = await start_server(voip={"turn_uris": URIS, "turn_shared_secret": "s3cret",
                                      "turn_user_lifetime_s": 600})
    alice = await user(server, "alice")
    before = int(time.time())
    resp = await alice.get(TURN)
    after = int(time.time())
    assert resp.status == 200
    body = resp.json
    assert body["uris"] == URIS and body["ttl"] == 600
    expiry, _, user_id = body["username"].partition(":")
    assert user_id == "@alice:test.local"
    assert before + 600 <= int(expiry) <= after + 600
    digest = hmac.new(b"s3cret", body["username"].encode(), hashlib.sha1).digest()
    assert body["password"] == base64.b64encode(digest).decode()
    assert (await alice.get("/_matrix/client/r0/voip/turnServer")).status == 200


async def test_fixed_credentials(start_server: ServerFactory) -> None:
    server = await start_server(voip={"turn_uris": URIS[:1], "turn_username": "u",
                                      "turn_password": "p"})
    alice = await user(server, "alice")
    assert (await alice.get(TURN)).json == {"username": "u", "password": "p",
                                            "uris": URIS[:1], "ttl": 3600}


async def test_uris_without_credentials(start_server: ServerFactory) -> None:
    server = await start_server(voip={"turn_uris": URIS})
    alice = await user(server, "alice")
    assert (await alice.get(TURN)).json == {}


async def test_secret_without_uris(start_server: ServerFactory) -> None:
    server = await start_server(voip={"turn_shared_secret": "s"})
    alice = await user(server, "alice")
    assert (await alice.get(TURN)).json == {}


@pytest.mark.parametrize("allowed", [True, False])
async def test_guests(start_server: ServerFactory, allowed: bool) -> None:
    server = await start_server(registration={"allow_guests": True}, voip={
        "turn_uris": URIS, "turn_shared_secret": "s", "turn_allow_guests": allowed})
    guest = await guest_client(server)
    resp = await guest.get(TURN)
    if allowed:
        assert resp.status == 200 and resp.json["uris"] == URIS
    else:
        assert resp.status == 403 and resp.json["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"


def test_config_checks_turn_uris() -> None:
    assert parse_config({"voip": {"turn_uris": URIS}}).voip.turn_uris == tuple(URIS)
    with pytest.raises(ConfigError, match=r"voip\.turn_uris"):
        parse_config({"voip": {"turn_uris": ["stun:stun.test.local"]}})
    with pytest.raises(ConfigError, match=r"voip\.turn_user_lifetime_s"):
        parse_config({"voip": {"turn_user_lifetime_s": 0}})
