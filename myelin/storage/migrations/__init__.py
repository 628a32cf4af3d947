"""Schema migrations: numbered SQL files in this package, applied in order, each atomically.

Files are named ``NNNN_name.sql`` and shared by both engines. Where the dialects cannot agree,
``NNNN_name.sqlite.sql`` / ``NNNN_name.postgres.sql`` replace the shared file for that engine
(a number may also have only the two engine-specific files). They ship as package data and are
read with :mod:`importlib.resources`, so migrating works from a wheel or zip as well as a
checkout.

Applied migrations are recorded in ``schema_version``, written in the same transaction as the
migration itself: a crash mid-migration leaves the database at the previous version, never
half-upgraded. A database recording a version newer than any file here was written by a newer
Myelin, and running old code against it could corrupt data, so :func:`migrate` refuses.

SQLite databases have a single owning process, so no cross-process lock is taken there;
PostgreSQL ones may be shared by several workers starting together, so :func:`migrate` holds an
advisory lock for the whole run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable

from myelin.storage.database import Database

__all__ = [
    "Migration",
    "SchemaTooNewError",
    "available_migrations",
    "load_migrations",
    "migrate",
    "schema_version",
]

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgres))?\.sql$")
_ENGINE_SUFFIX = {"sqlite": "sqlite", "postgresql": "postgres"}
# An arbitrary fixed 64-bit key ("myelin" in ASCII) identifying the migration advisory lock.
_PG_LOCK_KEY = 0x6D79656C696E
_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_ts BIGINT  NOT NULL
)
"""
_INSERT_VERSION = "INSERT INTO schema_version (version, name, applied_ts) VALUES ($1, $2, $3)"


class SchemaTooNewError(RuntimeError):
    """The database schema is newer than every migration this Myelin knows."""


@dataclass(frozen=True)
class Migration:
    """One migration number: its name and SQL per engine suffix (``""`` = shared)."""

    number: int
    name: str
    scripts: dict[str, str] = field(default_factory=dict)

    def script_for(self, engine: str) -> str:
        """The SQL to run on ``engine``: its own override if any, else the shared file."""
        suffix = _ENGINE_SUFFIX[engine]
        if suffix in self.scripts:
            return self.scripts[suffix]
        if "" in self.scripts:
            return self.scripts[""]
        raise ValueError(f"migration {self.number:04d}_{self.name} has no script for {engine}")


def load_migrations(root: Traversable | None = None) -> list[Migration]:
    """Read every migration file under ``root`` (default: this package), sorted by number."""
    root = root if root is not None else files(__name__)
    found: dict[int, Migration] = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".sql") or not entry.is_file():
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:  # a typo here would otherwise silently skip a migration
            raise ValueError(f"badly named migration file {entry.name!r}: want NNNN_name.sql")
        number, name, suffix = int(match[1]), match[2], match[3] or ""
        migration = found.setdefault(number, Migration(number, name))
        if migration.name != name:
            raise ValueError(
                f"migration number {number:04d} is used by both {migration.name!r} and {name!r}"
            )
        migration.scripts[suffix] = entry.read_text(encoding="utf-8")
    return [found[n] for n in sorted(found)]


def available_migrations() -> list[tuple[int, str]]:
    """``(number, name)`` of every migration shipped with this Myelin, in order."""
    return [(m.number, m.name) for m in load_migrations()]


async def schema_version(db: Database) -> int:
    """Highest migration recorded in the database; 0 for a fresh database."""
    if db.engine == "sqlite":
        exists = await db.fetchval(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        )
    else:
        exists = await db.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await db.fetchval("SELECT MAX(version) FROM schema_version") or 0)


def _pending(recorded: set[int], migrations: Sequence[Migration]) -> list[Migration]:
    newest = max((m.number for m in migrations), default=0)
    if recorded and max(recorded) > newest:
        raise SchemaTooNewError(
            f"the database is at schema version {max(recorded)} but this Myelin only knows "
            f"migrations up to {newest}: it was written by a newer Myelin. Upgrade Myelin (or "
            f"restore a backup taken before the upgrade) instead of running this version."
        )
    return [m for m in migrations if m.number not in recorded]


def _now_ms() -> int:
    return int(time.time() * 1000)


async def migrate(db: Database, *, migrations: Sequence[Migration] | None = None) -> list[int]:
    """Apply every pending migration in number order; return the numbers applied.

    ``migrations`` defaults to the files shipped in this package (tests pass their own).
    Raises :class:`SchemaTooNewError` before touching anything if the database is too new.
    """
    todo = load_migrations() if migrations is None else sorted(migrations, key=lambda m: m.number)
    if db.engine == "sqlite":
        return await _migrate_sqlite(db, todo)
    if db.engine == "postgresql":
        return await _migrate_postgres(db, todo)
    raise ValueError(f"cannot migrate engine {db.engine!r}")


async def _migrate_sqlite(db: Database, migrations: Sequence[Migration]) -> list[int]:
    from myelin.storage.sqlite import SqliteDatabase

    assert isinstance(db, SqliteDatabase)
    await db.execute(_CREATE_TABLE)
    recorded = {int(r[0]) for r in await db.fetch("SELECT version FROM schema_version")}
    applied = []
    for m in _pending(recorded, migrations):
        # executescript cannot bind parameters, so the version row is inlined; the name is
        # restricted to [a-z0-9_] by _FILE_NAME (and quotes are doubled anyway).
        name = m.name.replace("'", "''")
        record = (
            "INSERT INTO schema_version (version, name, applied_ts) "
            f"VALUES ({int(m.number)}, '{name}', {_now_ms()});"
        )
        await db.execute_script(f"{m.script_for('sqlite')}\n;\n{record}")
        applied.append(m.number)
    return applied


async def _migrate_postgres(db: Database, migrations: Sequence[Migration]) -> list[int]:
    from myelin.storage.postgres import PostgresDatabase

    assert isinstance(db, PostgresDatabase)
    async with db.acquire() as conn:
        # Session-level lock on the very connection doing the work; the pool's reset on
        # release also drops it should unlocking below fail.
        await conn.execute("SELECT pg_advisory_lock($1)", _PG_LOCK_KEY)
        try:
            await conn.execute(_CREATE_TABLE)
            rows = await conn.fetch("SELECT version FROM schema_version")
            applied = []
            for m in _pending({int(r[0]) for r in rows}, migrations):
                async with conn.transaction():
                    await conn.execute(m.script_for("postgresql"))
                    await conn.execute(_INSERT_VERSION, m.number, m.name, _now_ms())
                applied.append(m.number)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _PG_LOCK_KEY)
