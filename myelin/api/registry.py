"""Every endpoint the server serves: the one list the router is built from.

A new API module adds its ``routes`` here; nothing else needs to know it exists.
"""

from __future__ import annotations

from myelin.api import health
from myelin.api.admin import register as admin_register
from myelin.api.client import (
    account,
    account_data,
    capabilities,
    devices,
    directory,
    discovery,
    filters,
    history,
    login,
    membership,
    register,
    room_events,
    rooms,
    sync,
)
from myelin.api.federation import discovery as federation_discovery
from myelin.api.http.endpoint import Endpoint

_MODULES = (
    health,
    discovery,
    login,
    register,
    account,
    devices,
    capabilities,
    filters,
    rooms,
    membership,
    room_events,
    sync,
    history,
    directory,
    account_data,
    admin_register,
    federation_discovery,
)


def all_endpoints() -> list[Endpoint]:
    return [endpoint for module in _MODULES for endpoint in module.routes.endpoints]
