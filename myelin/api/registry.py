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
    key_backup,
    keys,
    login,
    media,
    media_legacy,
    membership,
    notifications,
    presence,
    profile,
    push_rules,
    pushers,
    receipts,
    register,
    relations,
    reporting,
    room_events,
    rooms,
    search,
    spaces,
    sync,
    tags,
    to_device,
    user_directory,
    voip,
)
from myelin.api.federation import discovery as federation_discovery
from myelin.api.federation import events as federation_events
from myelin.api.federation import keys as federation_keys
from myelin.api.federation import media as federation_media
from myelin.api.federation import membership as federation_membership
from myelin.api.federation import query as federation_query
from myelin.api.federation import user_keys as federation_user_keys
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
    relations,
    search,
    directory,
    spaces,
    account_data,
    tags,
    presence,
    push_rules,
    pushers,
    notifications,
    receipts,
    admin_register,
    profile,
    user_directory,
    reporting,
    voip,
    to_device,
    key_backup,
    keys,
    media,
    media_legacy,
    federation_discovery,
    federation_keys,
    federation_query,
    federation_membership,
    federation_events,
    federation_media,
    federation_user_keys,
)


def all_endpoints() -> list[Endpoint]:
    return [endpoint for module in _MODULES for endpoint in module.routes.endpoints]


FEDERATION_PREFIXES = ("/_matrix/federation/", "/_matrix/key/", "/health")


def federation_endpoints() -> list[Endpoint]:
    """What the separate federation listener serves: the server-server and key APIs only, so
    a port opened to other servers exposes no client endpoint."""
    return [endpoint for endpoint in all_endpoints()
            if all(path.startswith(FEDERATION_PREFIXES) for path in endpoint.paths)]
