"""The engine-neutral database interface every store codes against.

Stores write SQL once, in PostgreSQL dialect with ``$1, $2`` placeholders, and run it on either
engine through the small async API below. Keeping the surface this narrow (execute / executemany /
fetch / fetchrow / fetchval, plus transactions) is what lets the SQLite and PostgreSQL
implementations stay honest twins: anything a store needs beyond it is a sign the SQL should
change, not the interface.

Semantics shared by both engines:

* On a ``Database``, ``fetch*`` are reads and ``execute``/``executemany`` are writes, each write in
  its own transaction (``executemany`` is atomic: all rows or none).
* ``async with db.transaction() as txn:`` runs every statement issued on ``txn`` (reads too) in
  one transaction, in order. Leaving the block normally commits (and ``__aexit__`` returns only
  once the commit is durable); an exception rolls back and propagates.
* Unique / foreign-key / not-null / check violations raise :class:`IntegrityError`, chained to the
  driver's own exception, so stores catch one type whatever the engine.
* Calling a write (or opening a second transaction) on ``db`` while a transaction on the same
  ``db`` is open in the current task raises ``RuntimeError``: on SQLite it would deadlock the
  single writer thread, and failing identically on PostgreSQL keeps such bugs from hiding there.

Where the engines differ (documented rather than papered over):

* After a statement inside a transaction raises ``IntegrityError``, the SQLite transaction stays
  usable (SQLite undoes just that statement), while on PostgreSQL the transaction is aborted and
  every further statement fails until the block exits. Portable code therefore treats an
  ``IntegrityError`` inside a transaction as fatal to it and lets it propagate (or checks first).
* SQLite returns columns declared ``BOOLEAN`` as ``bool`` (as PostgreSQL does), but computed
  boolean expressions (``SELECT a > b``) come back as ``0``/``1``.
* ``Database.fetch*`` run on read-only connections on SQLite; a write smuggled into a read (e.g.
  ``INSERT ... RETURNING`` via ``db.fetchval``) fails there, so run such statements on a ``txn``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "Database",
    "DatabaseUnavailableError",
    "IntegrityError",
    "Queryable",
    "Row",
    "Statement",
    "Transaction",
    "connect_database",
]

Row = Any
"""A result row: ``row["column"]``, ``row[index]``, ``row.keys()``, ``dict(row)`` all work.

It is the driver's own row type (``sqlite3.Row`` / ``asyncpg.Record``) to avoid a copy per row.
"""


class IntegrityError(Exception):
    """A constraint (unique, foreign key, not null, check) rejected a statement.

    Raised by both engines with the driver's exception as ``__cause__``, so a store can write
    ``except IntegrityError`` once instead of importing both drivers.
    """


class DatabaseUnavailableError(Exception):
    """The database could not be opened: wrong DSN, server down, unwritable file.

    Start-up reports it in one line; the message never contains the DSN's password.
    """


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a :meth:`Database.write_batch`; ``many`` runs it once per row of
    ``args`` (like ``executemany``)."""

    sql: str
    args: Sequence[Any] = ()
    many: bool = False


class Queryable(Protocol):
    """Anything SQL can be run on: a whole database or one open transaction."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; return the number of rows it affected (0 for DDL)."""
        ...

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per argument tuple, atomically."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Return every row of a query."""
        ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """Return the first row of a query, or ``None`` when it has none."""
        ...

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """Return the first column of the first row, or ``None`` when there is no row."""
        ...


class Transaction(Queryable, Protocol):
    """An open transaction; only valid inside its ``async with`` block."""


class Database(Queryable, Protocol):
    """A connection pool to one database, plus how to open transactions on it."""

    engine: str
    """``"sqlite"`` or ``"postgresql"``: for the rare query that must differ per engine."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """Open a transaction: commit on normal exit, roll back on exception."""
        ...

    async def write_batch(self, statements: Sequence[Statement]) -> None:
        """Run writes that need no results in one transaction, all or nothing.

        Cheaper than a ``transaction()`` block for the hot write paths: on SQLite the whole
        batch is one job for the writer thread (one hand-off instead of one per statement)
        and is group-committed with other writers.
        """
        ...

    async def close(self) -> None:
        """Finish pending writes and release every connection. Idempotent."""
        ...


class _OpenTransaction:
    """Marks one open transaction of one database in the current (and child) task contexts."""

    __slots__ = ("active", "owner")

    def __init__(self, owner: object) -> None:
        self.owner = owner
        self.active = True


# A tuple (immutable) so a child task that copied the context can never mutate the parent's view;
# ``active`` flips to False on exit so a child outliving the transaction is not falsely blocked.
_open_transactions: ContextVar[tuple[_OpenTransaction, ...]] = ContextVar(
    "myelin_open_transactions", default=()
)


def check_no_open_transaction(owner: object, operation: str) -> None:
    """Raise ``RuntimeError`` if this task is inside an open transaction of ``owner``.

    Engine implementations call this before writes and before opening a transaction. On SQLite
    the writer thread is busy serving the open transaction, so a write queued behind it from the
    same task would wait forever; raising on every engine makes the bug visible in any test run.
    """
    for marker in _open_transactions.get():
        if marker.active and marker.owner is owner:
            raise RuntimeError(
                f"db.{operation}() called while a transaction on the same database is open in "
                f"this task (or a task started from it). Use the transaction object instead "
                f"(txn.{operation}(...)), or run it after the 'async with db.transaction()' "
                f"block: on SQLite this call would deadlock the single writer thread."
            )


def enter_transaction(owner: object) -> _OpenTransaction:
    """Record that the current task opened a transaction on ``owner`` (refusing nesting)."""
    check_no_open_transaction(owner, "transaction")
    marker = _OpenTransaction(owner)
    _open_transactions.set((*_open_transactions.get(), marker))
    return marker


def leave_transaction(marker: _OpenTransaction) -> None:
    """Undo :func:`enter_transaction`; safe to call more than once."""
    marker.active = False
    current = _open_transactions.get()
    if marker in current:
        _open_transactions.set(tuple(m for m in current if m is not marker))


async def connect_database(
    *,
    engine: str,
    sqlite_path: Path | None = None,
    postgres_dsn: str | None = None,
    pool_size: int = 10,
) -> Database:
    """Open a database for ``engine`` (``"sqlite"`` or ``"postgresql"``).

    The factory imports the engine module lazily so a SQLite deployment never needs asyncpg
    importable and vice versa. It does not run migrations: call
    :func:`myelin.storage.migrations.migrate` afterwards.

    ``pool_size`` is the asyncpg pool's maximum size; for SQLite it caps the reader threads
    (at most 4: WAL readers are cheap but more threads than that buy nothing for a homeserver).
    """
    if pool_size < 1:
        raise ValueError("pool_size must be at least 1")
    if engine == "sqlite":
        if sqlite_path is None:
            raise ValueError("engine 'sqlite' needs sqlite_path")
        from myelin.storage.sqlite import SqliteDatabase

        try:
            return await SqliteDatabase.open(Path(sqlite_path), readers=min(pool_size, 4))
        except (OSError, sqlite3.Error) as e:
            raise DatabaseUnavailableError(f"cannot open SQLite database {sqlite_path}: {e}") from e
    if engine in ("postgresql", "postgres"):
        if not postgres_dsn:
            raise ValueError("engine 'postgresql' needs postgres_dsn")
        from myelin.storage.postgres import PostgresDatabase

        try:
            return await PostgresDatabase.open(postgres_dsn, pool_size=pool_size)
        except Exception as e:  # asyncpg's errors share no base class with OSError
            raise DatabaseUnavailableError(
                f"cannot connect to PostgreSQL at {_without_password(postgres_dsn)}: {e}"
            ) from e
    raise ValueError(f"unknown database engine {engine!r}: expected 'sqlite' or 'postgresql'")


def _without_password(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
