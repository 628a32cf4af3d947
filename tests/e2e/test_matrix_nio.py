"""A real Matrix client library (matrix-nio) logs in, asks who it is and logs out."""

from __future__ import annotations

import nio

from harness import RunningServer


async def test_nio_login_whoami_logout(homeserver: RunningServer, tmp_path) -> None:
    await homeserver.services.auth.register("niouser", "pw")
    client = nio.AsyncClient(homeserver.url, "@niouser:test.local", store_path=str(tmp_path))
    try:
        login = await client.login("pw", device_name="nio test")
        assert isinstance(login, nio.LoginResponse), login
        assert login.user_id == "@niouser:test.local"
        who = await client.whoami()
        assert isinstance(who, nio.WhoamiResponse), who
        assert who.user_id == "@niouser:test.local" and who.device_id == login.device_id
        stranger = nio.AsyncClient(homeserver.url, "@niouser:test.local")
        try:
            bad = await stranger.login("wrong")
        finally:
            await stranger.close()
        assert isinstance(bad, nio.LoginError) and bad.status_code == "M_FORBIDDEN"
        out = await client.logout()
        assert isinstance(out, nio.LogoutResponse), out
    finally:
        await client.close()


async def test_nio_registers_with_dummy_auth(start_server, tmp_path) -> None:
    server = await start_server(registration={"enabled": True})
    client = nio.AsyncClient(server.url, store_path=str(tmp_path))
    try:
        resp = await client.register("newbie", "pw", device_name="nio")
        assert isinstance(resp, nio.RegisterResponse), resp
        assert resp.user_id == "@newbie:test.local"
        who = await client.whoami()
        assert isinstance(who, nio.WhoamiResponse) and who.user_id == "@newbie:test.local"
    finally:
        await client.close()
