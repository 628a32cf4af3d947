"""Account management that needs the user to prove it is them again: password change,
deactivation and deleting devices (client-server API, "Account management", "Device
management"), each behind user-interactive auth with the account's password.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from myelin.errors import forbidden, not_found
from myelin.services.auth import AuthService, Requester
from myelin.services.uia import UiaService, UiaSession
from myelin.storage.stores.devices import DeviceRecord, DeviceStore

STAGE_PASSWORD = "m.login.password"


class AccountService:
    def __init__(self, auth: AuthService, uia: UiaService, devices: DeviceStore,
                 server_name: str) -> None:
        self._auth = auth
        self._uia = uia
        self._devices = devices
        self._server_name = server_name

    async def _reauthenticate(self, requester: Requester, auth: Mapping[str, Any] | None,
                              endpoint: str) -> UiaSession:
        async def check_password(stage: Mapping[str, Any], _: UiaSession) -> None:
            identifier = stage.get("identifier") or {}
            user = identifier.get("user") if isinstance(identifier, dict) else None
            user = user if user is not None else stage.get("user")  # deprecated form
            if isinstance(user, str) and not user.startswith("@"):
                user = f"@{user.lower()}:{self._server_name}"
            password = stage.get("password")
            if user != requester.user_id or not isinstance(password, str) \
                    or not await self._auth.check_user_password(requester.user_id, password):
                raise forbidden("Invalid password")

        return await self._uia.authenticate(
            auth, endpoint=endpoint, user_id=requester.user_id, flows=[[STAGE_PASSWORD]],
            checkers={STAGE_PASSWORD: check_password},
        )

    async def reauthenticate(self, requester: Requester, auth: Mapping[str, Any] | None,
                             endpoint: str) -> UiaSession:
        """Password UIA for another service's endpoint (cross-signing key upload); call
        ``finish_uia`` once the guarded change is done."""
        return await self._reauthenticate(requester, auth, endpoint)

    def finish_uia(self, session: UiaSession) -> None:
        self._uia.finish(session)

    async def change_password(self, requester: Requester, auth: Mapping[str, Any] | None,
                              new_password: str, *, logout_devices: bool) -> None:
        session = await self._reauthenticate(requester, auth, "account/password")
        await self._auth.set_password(requester.user_id, new_password)
        if logout_devices:
            await self._auth.logout_all(requester.user_id, keep_device=requester.device_id)
        self._uia.finish(session)

    async def deactivate(self, requester: Requester, auth: Mapping[str, Any] | None) -> None:
        session = await self._reauthenticate(requester, auth, "account/deactivate")
        await self._auth.deactivate(requester.user_id)
        self._uia.finish(session)

    async def delete_devices(self, requester: Requester, auth: Mapping[str, Any] | None,
                             device_ids: list[str]) -> None:
        session = await self._reauthenticate(requester, auth, "delete_devices")
        existing = {d.device_id for d in await self._devices.list_devices(requester.user_id)}
        self._auth.forget(await self._devices.delete_devices(requester.user_id, device_ids))
        await self._auth.devices_removed(requester.user_id,
                                         [d for d in device_ids if d in existing])
        self._uia.finish(session)

    async def create_login_token(self, requester: Requester,
                                 auth: Mapping[str, Any] | None) -> tuple[str, int]:
        session = await self._reauthenticate(requester, auth, "login/get_token")
        self._uia.finish(session)
        return self._auth.new_login_token(requester.user_id)

    async def list_devices(self, requester: Requester) -> list[DeviceRecord]:
        return await self._devices.list_devices(requester.user_id)

    async def get_device(self, requester: Requester, device_id: str) -> DeviceRecord:
        device = await self._devices.get_device(requester.user_id, device_id)
        if device is None:
            raise not_found("Device not found")
        return device

    async def rename_device(self, requester: Requester, device_id: str, name: str) -> None:
        if not await self._devices.set_display_name(requester.user_id, device_id, name):
            raise not_found("Device not found")
