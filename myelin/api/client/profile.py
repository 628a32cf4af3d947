"""Client-server API, "Profiles" (profile.yaml): the whole profile and single fields.

Reading needs no access token (the endpoints declare no ``security``), as Synapse serves them.
Writes change only the requester's own profile and are rate-limited like messages: a new
display name or avatar sends a member event into every joined room.
"""

from __future__ import annotations

from typing import Any

from myelin.api.http.endpoint import Auth, Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


@routes.client("GET", "/profile/{userId}", auth=Auth.NONE)
async def get_profile(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.profiles.get_profile(request.params["userId"])


@routes.client("GET", "/profile/{userId}/{keyName}", auth=Auth.NONE)
async def get_field(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.profiles.get_field(request.params["userId"],
                                                     request.params["keyName"])


@routes.client("PUT", "/profile/{userId}/{keyName}", body=dict, rate_limit="message")
async def set_field(request: MatrixRequest) -> dict[str, Any]:
    await request.services.profiles.set_field(request.user, request.params["userId"],
                                              request.params["keyName"], request.body)
    return {}


@routes.client("DELETE", "/profile/{userId}/{keyName}", rate_limit="message")
async def delete_field(request: MatrixRequest) -> dict[str, Any]:
    await request.services.profiles.delete_field(request.user, request.params["userId"],
                                                 request.params["keyName"])
    return {}
