"""Media metadata (tables ``media``, ``media_thumbnails``, ``url_previews``).

The bytes are not here: each row names its blob by SHA-256, and the blob store keeps one file
per distinct content. A blob may be deleted only once no row of either table names it, which
``blob_in_use`` answers.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import orjson

from myelin.storage.database import Database, IntegrityError, Row

_MEDIA_COLUMNS = (
    "origin, media_id, user_id, content_type, upload_name, size, sha256, created_ts,"
    " uploaded_ts, expires_ts, last_access_ts, authenticated"
)


@dataclass(frozen=True, slots=True)
class MediaRecord:
    origin: str
    media_id: str
    user_id: str | None
    content_type: str | None
    upload_name: str | None
    size: int | None
    sha256: str | None
    created_ts: int
    uploaded_ts: int | None  # None: reserved with /create, bytes not uploaded yet
    expires_ts: int | None
    last_access_ts: int
    authenticated: bool

    @property
    def pending(self) -> bool:
        return self.uploaded_ts is None


@dataclass(frozen=True, slots=True)
class ThumbnailRecord:
    width: int  # the size asked for (or configured), not the image's
    height: int
    method: str
    animated: bool
    content_type: str
    out_width: int
    out_height: int
    size: int
    sha256: str
    configured: bool


def _media(row: Row) -> MediaRecord:
    return MediaRecord(
        row["origin"], row["media_id"], row["user_id"], row["content_type"], row["upload_name"],
        None if row["size"] is None else int(row["size"]), row["sha256"], int(row["created_ts"]),
        None if row["uploaded_ts"] is None else int(row["uploaded_ts"]),
        None if row["expires_ts"] is None else int(row["expires_ts"]),
        int(row["last_access_ts"]), bool(row["authenticated"]),
    )


class MediaStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- media rows ------------------------------------------------------------------------

    async def add_uploaded(self, origin: str, media_id: str, *, user_id: str | None,
                           content_type: str, upload_name: str | None, size: int, sha256: str,
                           now_ms: int, authenticated: bool) -> None:
        """A complete upload (or a remote file just cached). IntegrityError if the ID exists."""
        await self._db.execute(
            f"INSERT INTO media ({_MEDIA_COLUMNS}) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $8, NULL, $8, $9)",
            origin, media_id, user_id, content_type, upload_name, size, sha256, now_ms,
            authenticated,
        )

    async def reserve(self, origin: str, media_id: str, *, user_id: str, now_ms: int,
                      expires_ts: int, authenticated: bool) -> None:
        await self._db.execute(
            f"INSERT INTO media ({_MEDIA_COLUMNS}) VALUES"
            " ($1, $2, $3, NULL, NULL, NULL, NULL, $4, NULL, $5, $4, $6)",
            origin, media_id, user_id, now_ms, expires_ts, authenticated,
        )

    async def complete_reserved(self, origin: str, media_id: str, *, content_type: str,
                                upload_name: str | None, size: int, sha256: str,
                                now_ms: int) -> bool:
        """Fill in a reservation; False if it was filled (or expired and purged) meanwhile."""
        changed = await self._db.execute(
            "UPDATE media SET content_type = $3, upload_name = $4, size = $5, sha256 = $6,"
            " uploaded_ts = $7, expires_ts = NULL, last_access_ts = $7"
            " WHERE origin = $1 AND media_id = $2 AND uploaded_ts IS NULL",
            origin, media_id, content_type, upload_name, size, sha256, now_ms,
        )
        return changed == 1

    async def get(self, origin: str, media_id: str) -> MediaRecord | None:
        row = await self._db.fetchrow(
            f"SELECT {_MEDIA_COLUMNS} FROM media WHERE origin = $1 AND media_id = $2",
            origin, media_id,
        )
        return None if row is None else _media(row)

    async def touch(self, origin: str, media_id: str, now_ms: int) -> None:
        await self._db.execute(
            "UPDATE media SET last_access_ts = $3 WHERE origin = $1 AND media_id = $2",
            origin, media_id, now_ms,
        )

    async def stored_bytes(self, user_id: str) -> int:
        """What counts against a user's quota: everything they uploaded and is still kept."""
        total = await self._db.fetchval(
            "SELECT COALESCE(SUM(size), 0) FROM media WHERE user_id = $1", user_id
        )
        return int(total)

    async def pending_count(self, user_id: str, now_ms: int) -> int:
        count = await self._db.fetchval(
            "SELECT COUNT(*) FROM media WHERE user_id = $1 AND uploaded_ts IS NULL"
            " AND expires_ts > $2",
            user_id, now_ms,
        )
        return int(count)

    # -- thumbnails ------------------------------------------------------------------------

    async def thumbnails(self, origin: str, media_id: str) -> list[ThumbnailRecord]:
        rows = await self._db.fetch(
            "SELECT width, height, method, animated, content_type, out_width, out_height, size,"
            " sha256, configured FROM media_thumbnails WHERE origin = $1 AND media_id = $2",
            origin, media_id,
        )
        return [ThumbnailRecord(int(r["width"]), int(r["height"]), r["method"],
                                bool(r["animated"]), r["content_type"], int(r["out_width"]),
                                int(r["out_height"]), int(r["size"]), r["sha256"],
                                bool(r["configured"])) for r in rows]

    async def add_thumbnail(self, origin: str, media_id: str, thumb: ThumbnailRecord) -> None:
        """Record a thumbnail; a concurrent identical one already recorded is fine."""
        with contextlib.suppress(IntegrityError):
            await self._db.execute(
                "INSERT INTO media_thumbnails (origin, media_id, width, height, method, animated,"
                " content_type, out_width, out_height, size, sha256, configured)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                origin, media_id, thumb.width, thumb.height, thumb.method, thumb.animated,
                thumb.content_type, thumb.out_width, thumb.out_height, thumb.size, thumb.sha256,
                thumb.configured,
            )

    # -- deletion --------------------------------------------------------------------------

    async def expired_pending(self, now_ms: int, limit: int) -> list[tuple[str, str]]:
        rows = await self._db.fetch(
            "SELECT origin, media_id FROM media WHERE uploaded_ts IS NULL AND expires_ts <= $1"
            " LIMIT $2", now_ms, limit,
        )
        return [(r["origin"], r["media_id"]) for r in rows]

    async def not_accessed_since(self, *, local_origin: str, local: bool, before_ms: int,
                                 limit: int) -> list[tuple[str, str]]:
        """Uploaded media last downloaded before ``before_ms``: local, or cached remote."""
        where = "origin = $1" if local else "origin <> $1"
        rows = await self._db.fetch(
            f"SELECT origin, media_id FROM media WHERE {where} AND uploaded_ts IS NOT NULL"
            " AND last_access_ts < $2 LIMIT $3", local_origin, before_ms, limit,
        )
        return [(r["origin"], r["media_id"]) for r in rows]

    async def delete(self, origin: str, media_id: str) -> set[str]:
        """Delete a media row and its thumbnails; returns the blobs they named."""
        blobs: set[str] = set()
        async with self._db.transaction() as txn:
            for row in await txn.fetch(
                "SELECT sha256 FROM media WHERE origin = $1 AND media_id = $2"
                " AND sha256 IS NOT NULL UNION SELECT sha256 FROM media_thumbnails"
                " WHERE origin = $1 AND media_id = $2", origin, media_id,
            ):
                blobs.add(row["sha256"])
            await txn.execute("DELETE FROM media_thumbnails WHERE origin = $1 AND media_id = $2",
                              origin, media_id)
            await txn.execute("DELETE FROM media WHERE origin = $1 AND media_id = $2",
                              origin, media_id)
        return blobs

    async def blob_in_use(self, sha256: str) -> bool:
        row = await self._db.fetchrow(
            "SELECT 1 FROM media WHERE sha256 = $1 UNION ALL"
            " SELECT 1 FROM media_thumbnails WHERE sha256 = $1 LIMIT 1", sha256,
        )
        return row is not None

    async def all_blobs(self) -> set[str]:
        rows = await self._db.fetch(
            "SELECT sha256 FROM media WHERE sha256 IS NOT NULL"
            " UNION SELECT sha256 FROM media_thumbnails"
        )
        return {r["sha256"] for r in rows}

    # -- URL previews ----------------------------------------------------------------------

    async def cached_preview(self, url: str, now_ms: int) -> dict[str, Any] | None:
        row = await self._db.fetchrow(
            "SELECT og_json FROM url_previews WHERE url = $1 AND expires_ts > $2", url, now_ms
        )
        return None if row is None else dict(orjson.loads(row["og_json"]))

    async def cache_preview(self, url: str, og: dict[str, Any], now_ms: int,
                            expires_ts: int) -> None:
        await self._db.execute(
            "INSERT INTO url_previews (url, fetched_ts, expires_ts, og_json)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (url) DO UPDATE SET"
            " fetched_ts = excluded.fetched_ts, expires_ts = excluded.expires_ts,"
            " og_json = excluded.og_json",
            url, now_ms, expires_ts, orjson.dumps(og).decode(),
        )

    async def purge_previews(self, now_ms: int) -> int:
        return await self._db.execute("DELETE FROM url_previews WHERE expires_ts <= $1", now_ms)
