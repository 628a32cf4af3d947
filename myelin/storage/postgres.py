"""PostgreSQL implementation of :mod:`myelin.storage.database` on an asyncpg pool.

PostgreSQL already does what the SQLite module has to build by hand (concurrent writers, MVCC
readers), so this is a thin adapter: it maps asyncpg's status strings to row counts, its
constraint errors to :class:`~myelin.storage.database.IntegrityError`, and applies the same
transaction-misuse guard as SQLite so code that would deadlock there fails here too.

Unlike SQLite, a statement that fails inside a transaction aborts the whole transaction: every
later statement raises ``asyncpg.InFailedSQLTransactionError`` until the block exits. Callers
are expected to let the transaction abort rather than wrap statements in savepoints.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import asyncpg

from myelin.storage.database import (
    IntegrityError,
    Row,
    Statement,
    check_no_open_transaction,
    enter_transaction,
    leave_transaction,
)
from myelin.storage.statement_groups import group_statements

__all__ = ["PostgresDatabase", "PostgresTransaction", "rowcount_from_status"]

_CLOSE_TIMEOUT_S = 10.0


def rowcount_from_status(status: str) -> int:
    """Rows affected according to a command tag: ``"INSERT 0 1"`` -> 1, ``"CREATE TABLE"`` -> 0."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


@contextmanager
def _map_errors() -> Iterator[None]:
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as e:
        raise IntegrityError(str(e)) from e


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's release hook: nothing beyond asyncpg's own rollback (see ``open``)."""


class PostgresTransaction:
    """Statements of one open transaction, all on the one connection that holds it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._open = True

    def _connection(self) -> asyncpg.Connection:
        if not self._open:
            raise RuntimeError("transaction used after its 'async with' block ended")
        return self._conn

    async def execute(self, sql: str, *args: Any) -> int:
        conn = self._connection()
        with _map_errors():
            return rowcount_from_status(await conn.execute(sql, *args))

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        conn = self._connection()
        with _map_errors():
            await conn.executemany(sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        conn = self._connection()
        with _map_errors():
            return list(await conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        conn = self._connection()
        with _map_errors():
            return await conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        conn = self._connection()
        with _map_errors():
            return await conn.fetchval(sql, *args)


class PostgresDatabase:
    """An asyncpg pool behind the engine-neutral Database interface."""

    engine = "postgresql"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._closed = False

    @classmethod
    async def open(cls, dsn: str, *, pool_size: int = 10) -> PostgresDatabase:
        """Create the pool; a small ``min_size`` keeps idle servers from hogging connections.

        asyncpg's default release runs ``RESET ALL; UNLISTEN *; CLOSE ALL; ...`` on every
        connection handed back: one more round trip per pooled query, doubling the cost of a
        read. Our statements leave no session state (no SET, LISTEN, cursors or session
        locks), so release only ends a stray transaction (asyncpg always does); the raw
        connections of :meth:`acquire`, which may hold session state, are reset in full."""
        pool = await asyncpg.create_pool(dsn, min_size=min(2, pool_size), max_size=pool_size,
                                         reset=_keep_session)
        return cls(pool)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("database is closed")

    def _write_guard(self, operation: str) -> None:
        self._check_open()
        check_no_open_transaction(self, operation)

    async def execute(self, sql: str, *args: Any) -> int:
        self._write_guard("execute")
        with _map_errors():
            return rowcount_from_status(await self._pool.execute(sql, *args))

    async def write_batch(self, statements: Sequence[Statement]) -> None:
        self._write_guard("write_batch")
        with _map_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                for statement in group_statements(statements):  # a round trip each
                    if statement.many:
                        await conn.executemany(statement.sql, statement.args)
                    else:
                        await conn.execute(statement.sql, *statement.args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        self._write_guard("executemany")
        with _map_errors():  # asyncpg wraps executemany in a transaction: all rows or none
            await self._pool.executemany(sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        self._check_open()
        with _map_errors():
            return list(await self._pool.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        self._check_open()
        with _map_errors():
            return await self._pool.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self._check_open()
        with _map_errors():
            return await self._pool.fetchval(sql, *args)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """A raw pooled connection, for engine-specific work such as migrations."""
        self._check_open()
        async with self._pool.acquire() as conn:
            try:
                yield conn
            finally:
                if not conn.is_closed():
                    await conn.reset()  # session locks, settings: see open()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        """Hold one pooled connection for the block, in a ``conn.transaction()``."""
        self._check_open()
        marker = enter_transaction(self)
        try:
            async with self._pool.acquire() as conn:
                tr = conn.transaction()
                await tr.start()
                txn = PostgresTransaction(conn)
                try:
                    yield txn
                except BaseException:
                    txn._open = False
                    # A broken connection cannot roll back; the original error matters more.
                    with suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                        await tr.rollback()
                    raise
                txn._open = False
                with _map_errors():  # deferred constraints are checked at COMMIT
                    await tr.commit()
        finally:
            leave_transaction(marker)

    async def close(self) -> None:
        """Close the pool, waiting briefly for connections still in use before cutting them."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self._pool.close(), _CLOSE_TIMEOUT_S)
        except TimeoutError:
            self._pool.terminate()
