"""Asking other servers about their users and aliases (server-server API, "Querying for
information"), for the client endpoints that name a remote profile or alias."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from myelin.errors import MatrixError, not_found
from myelin.services.directory import PublicRoomsQuery
from myelin.services.federation.client import FederationClient, FederationError


class RemoteQueries:
    def __init__(self, client: FederationClient) -> None:
        self._client = client

    async def _query(self, server: str, kind: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            answer = await self._client.request(server, "GET",
                                                f"/_matrix/federation/v1/query/{kind}",
                                                query=params, timeout_s=20)
        except FederationError as e:
            if e.status in (400, 404):
                raise MatrixError(e.status, e.errcode or "M_NOT_FOUND",
                                  f"{server}: {e}") from None
            raise MatrixError(502, "M_UNKNOWN", f"Could not ask {server}: {e}") from None
        if not isinstance(answer, dict):
            raise MatrixError(502, "M_UNKNOWN", f"{server} answered with no object")
        return answer

    async def profile(self, user_id: str, field: str | None = None) -> dict[str, Any]:
        server = user_id.split(":", 1)[1]
        params = {"user_id": user_id, **({"field": field} if field else {})}
        answer = await self._query(server, "profile", params)
        profile = {k: v for k, v in answer.items() if isinstance(k, str)}
        if field is not None:
            if field not in profile:
                raise not_found(f"The profile has no {field!r}")
            return {field: profile[field]}
        return profile

    async def alias(self, alias: str) -> dict[str, Any]:
        server = alias.split(":", 1)[1]
        answer = await self._query(server, "directory", {"room_alias": alias})
        room_id, servers = answer.get("room_id"), answer.get("servers")
        if not isinstance(room_id, str):
            raise MatrixError(502, "M_UNKNOWN", f"{server} gave no room ID for {alias}")
        return {"room_id": room_id,
                "servers": [s for s in servers if isinstance(s, str)]
                if isinstance(servers, list) else [server]}

    async def public_rooms(self, query: PublicRoomsQuery) -> dict[str, Any]:
        """Server-server API, "Published Room Directory": POST when filtering, as the
        client asked, else GET."""
        assert query.server is not None
        path = "/_matrix/federation/v1/publicRooms"
        try:
            if query.search_term is not None or query.room_types is not None:
                body: dict[str, Any] = {"include_all_networks": query.include_all_networks}
                if query.limit is not None:
                    body["limit"] = query.limit
                if query.since is not None:
                    body["since"] = query.since
                search: dict[str, Any] = {}
                if query.search_term is not None:
                    search["generic_search_term"] = query.search_term
                if query.room_types is not None:
                    search["room_types"] = list(query.room_types)
                body["filter"] = search
                if query.third_party_instance_id is not None:
                    body["third_party_instance_id"] = query.third_party_instance_id
                answer = await self._client.request(query.server, "POST", path, json=body,
                                                    timeout_s=30)
            else:
                params = {"include_all_networks": str(query.include_all_networks).lower()}
                if query.limit is not None:
                    params["limit"] = str(query.limit)
                if query.since is not None:
                    params["since"] = query.since
                if query.third_party_instance_id is not None:
                    params["third_party_instance_id"] = query.third_party_instance_id
                answer = await self._client.request(query.server, "GET", path, query=params,
                                                    timeout_s=30)
        except FederationError as e:
            raise MatrixError(502, "M_UNKNOWN",
                              f"Failed to fetch the room list of {query.server}: {e}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("chunk"), list):
            raise MatrixError(502, "M_UNKNOWN", f"{query.server} sent no room list")
        return answer

    async def hierarchy(self, room_id: str, servers: list[str],
                        suggested_only: bool) -> dict[str, Any] | None:
        """Server-server API, "Spaces": the first of ``servers`` that describes the room."""
        for server in dict.fromkeys(servers):
            try:
                answer = await self._client.request(
                    server, "GET", f"/_matrix/federation/v1/hierarchy/{quote(room_id, safe='')}",
                    query={"suggested_only": str(suggested_only).lower()}, timeout_s=20)
            except FederationError:
                continue
            if isinstance(answer, dict):
                return answer
        return None
