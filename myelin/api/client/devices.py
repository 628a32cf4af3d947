"""Client-server API, "Device management"."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest
from myelin.storage.stores.devices import DeviceRecord

routes = Routes()


def device_json(device: DeviceRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"device_id": device.device_id}
    if device.display_name is not None:
        out["display_name"] = device.display_name
    if device.last_seen_ts is not None:
        out["last_seen_ts"] = device.last_seen_ts
    if device.last_seen_ip is not None:
        out["last_seen_ip"] = device.last_seen_ip
    return out


class AuthOnlyBody(msgspec.Struct):
    auth: dict[str, Any] | None = None


class RenameBody(msgspec.Struct):
    display_name: str | None = None


class DeleteDevicesBody(msgspec.Struct):
    devices: list[str]
    auth: dict[str, Any] | None = None


@routes.client("GET", "/devices")
async def list_devices(request: MatrixRequest) -> dict[str, Any]:
    devices = await request.services.accounts.list_devices(request.user)
    return {"devices": [device_json(d) for d in devices]}


@routes.client("GET", "/devices/{deviceId}")
async def get_device(request: MatrixRequest) -> dict[str, Any]:
    return device_json(
        await request.services.accounts.get_device(request.user, request.params["deviceId"]))


@routes.client("PUT", "/devices/{deviceId}", body=RenameBody)
async def rename_device(request: MatrixRequest) -> dict[str, Any]:
    body: RenameBody = request.body
    device_id = request.params["deviceId"]
    if body.display_name is None:  # nothing to change, but the device must exist
        await request.services.accounts.get_device(request.user, device_id)
    else:
        await request.services.accounts.rename_device(request.user, device_id, body.display_name)
    return {}


@routes.client("DELETE", "/devices/{deviceId}", body=AuthOnlyBody, body_optional=True)
async def delete_device(request: MatrixRequest) -> dict[str, Any]:
    body: AuthOnlyBody = request.body
    await request.services.accounts.delete_devices(request.user, body.auth,
                                                   [request.params["deviceId"]])
    return {}


@routes.client("POST", "/delete_devices", body=DeleteDevicesBody)
async def delete_devices(request: MatrixRequest) -> dict[str, Any]:
    body: DeleteDevicesBody = request.body
    await request.services.accounts.delete_devices(request.user, body.auth, body.devices)
    return {}
