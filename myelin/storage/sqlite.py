"""SQLite implementation of :mod:`myelin.storage.database` on stdlib ``sqlite3``.

Why this shape: SQLite allows one writer at a time, and each commit (taking the write lock,
appending a commit frame to the WAL) costs far more than the small statements it usually covers.
So ONE writer thread owns the only read-write connection and *group commits*: it opens a
transaction, runs every job already queued (each in its own SAVEPOINT so a failing job only
undoes itself), commits once, and only then reports results. Concurrent request handlers thus
share commits instead of queueing for the write lock.

Reads go to a few reader threads with ``query_only`` connections; in WAL mode they read the last
committed snapshot and never wait for the writer.

An ``async with db.transaction()`` is one writer job: the writer opens its savepoint and then runs
the statements the coroutine sends, one by one, until it says commit or rollback. While that
coroutine awaits something else, no other write can run, so keep transactions short and free of
network I/O.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from myelin.storage.database import (
    IntegrityError,
    Row,
    Statement,
    check_no_open_transaction,
    enter_transaction,
    leave_transaction,
)
from myelin.storage.statement_groups import group_statements

__all__ = ["SqliteDatabase", "SqliteTransaction", "rewrite_placeholders"]

_log = logging.getLogger(__name__)

BATCH_LIMIT = 100
"""Most jobs folded into one commit: bounds how long early jobs in a burst wait for theirs."""
BUSY_TIMEOUT_MS = 5000
READER_CACHE_KIB = 256  # page cache of each read-only connection (see _connect)

_LOST = "SQLite rolled the transaction back after an earlier error; this write was not committed"


# Columns declared BOOLEAN come back as bool, as on PostgreSQL, so stores need no per-engine code.
# (Registered process-wide by sqlite3's design; it only affects PARSE_DECLTYPES connections.)
sqlite3.register_converter("BOOLEAN", lambda value: value not in (b"0", b""))

_TOKENS = re.compile(r"'[^']*'|\"[^\"]*\"|--[^\n]*|/\*.*?\*/|\$(\d+)", re.DOTALL)


@functools.lru_cache(maxsize=4096)
def rewrite_placeholders(sql: str) -> str:
    """Turn PostgreSQL ``$N`` placeholders into SQLite ``?N``, leaving quoted text and comments.

    Cached per SQL text: stores reuse a handful of constant statements millions of times.
    """
    return _TOKENS.sub(lambda m: f"?{m.group(1)}" if m.group(1) else m.group(0), sql)


def _run(conn: sqlite3.Connection, kind: str, sql: str, args: Any) -> Any:
    """Run one statement of the given kind, always finishing the cursor.

    Finishing matters: an unexhausted SELECT keeps its read snapshot (blocking checkpoints) and
    rows of ``INSERT ... RETURNING`` must be stepped through before ``rowcount`` is final.
    """
    if kind == "batch":
        for statement in args:
            _run(conn, "executemany" if statement.many else "execute", statement.sql,
                 statement.args)
        return None
    sql = rewrite_placeholders(sql)
    if kind == "executemany":
        conn.executemany(sql, args).close()
        return None
    cur = conn.execute(sql, args)
    try:
        if kind == "execute":
            cur.fetchall()
            return max(cur.rowcount, 0)
        if kind == "fetch":
            return cur.fetchall()
        row = cur.fetchone()
        if kind == "fetchrow" or row is None:
            return row
        return row[0]
    finally:
        cur.close()


def _resolve(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], result: Any = None,
             error: BaseException | None = None) -> None:
    """Hand a result from a worker thread to the future's event loop."""

    def deliver() -> None:
        if fut.done():  # the awaiting task was cancelled
            return
        if error is None:
            fut.set_result(result)
        else:
            fut.set_exception(error)

    with suppress(RuntimeError):  # loop already closed: nobody is left to tell
        loop.call_soon_threadsafe(deliver)


async def _await_mapped(fut: asyncio.Future[Any]) -> Any:
    try:
        return await fut
    except sqlite3.IntegrityError as e:
        raise IntegrityError(str(e)) from e


def _savepoint_rollback(conn: sqlite3.Connection, name: str) -> None:
    # Fails only if SQLite already rolled back the whole transaction; callers check for that.
    with suppress(sqlite3.Error):
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")


def _in_savepoint(conn: sqlite3.Connection, name: str, kind: str, sql: str, args: Any) -> Any:
    conn.execute(f"SAVEPOINT {name}")
    try:
        result = _run(conn, kind, sql, args)
    except BaseException:
        _savepoint_rollback(conn, name)
        raise
    conn.execute(f"RELEASE {name}")
    return result


class _Signal:
    """A future plus its loop, so a worker thread can answer it; alone it means "stop"."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[Any] = self.loop.create_future()


class _Job(_Signal):
    """One unit of writer work: a statement or a migration script (``kind``)."""

    def __init__(self, kind: str, sql: str = "", args: Any = ()) -> None:
        super().__init__()
        self.kind, self.sql, self.args = kind, sql, args


class _TxnJob(_Job):
    """A whole ``db.transaction()`` block; ``future`` resolves once its batch has committed."""

    def __init__(self) -> None:
        super().__init__("txn")
        self.started: asyncio.Future[None] = self.loop.create_future()
        self.commands: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
        isolation_level=None,  # we issue BEGIN/SAVEPOINT ourselves
        check_same_thread=False,  # opened by the writer, then handed to its reader thread
        detect_types=sqlite3.PARSE_DECLTYPES,
        cached_statements=256,
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    if readonly:
        conn.execute("PRAGMA query_only = ON")  # an accidental write via db.fetch fails loudly
        # 256 KiB, not SQLite's 2 MiB: in WAL mode a reader's page cache is dropped at the
        # start of every read transaction after another connection committed, which the
        # group-committing writer does all the time, so a big reader cache mostly holds
        # stale pages (measured: 4.5 MiB less resident memory after the benchmark run, the
        # same /messages speed; the OS page cache serves the re-reads).
        conn.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class _QueryMethods:
    """The Queryable methods, routed to ``_read`` / ``_write`` by the concrete class."""

    async def _read(self, kind: str, sql: str, args: Any) -> Any:
        raise NotImplementedError

    async def _write(self, kind: str, sql: str, args: Any) -> Any:
        raise NotImplementedError

    async def execute(self, sql: str, *args: Any) -> int:
        return int(await self._write("execute", sql, args))

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        # Materialised here: a generator must not be advanced from the writer thread.
        await self._write("executemany", sql, [tuple(a) for a in args])

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._read("fetch", sql, args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await self._read("fetchrow", sql, args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._read("fetchval", sql, args)


class SqliteTransaction(_QueryMethods):
    """Statements of one open transaction, reads included, executed in order by the writer."""

    def __init__(self, job: _TxnJob) -> None:
        self._job = job
        self._open = True

    async def _write(self, kind: str, sql: str, args: Any) -> Any:
        if not self._open:
            raise RuntimeError("transaction used after its 'async with' block ended")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._job.commands.put((kind, sql, args, fut))
        return await _await_mapped(fut)

    _read = _write


class SqliteDatabase(_QueryMethods):
    """A SQLite database file served by one group-committing writer thread and reader threads.

    ``commit_count`` / ``write_job_count`` count COMMITs and write jobs, so tests (and metrics)
    can see how well group commit batches.
    """

    engine = "sqlite"

    def __init__(self, path: Path, readers: int) -> None:
        self.path = path
        self.commit_count = 0
        self.write_job_count = 0
        self._readers = readers
        self._jobs: queue.SimpleQueue[_Signal] = queue.SimpleQueue()  # writes; bare = stop
        self._reads: queue.SimpleQueue[_Signal] = queue.SimpleQueue()  # reads; bare = stop
        self._threads: list[threading.Thread] = []
        self._closed = False

    @classmethod
    async def open(cls, path: Path, *, readers: int = 4) -> SqliteDatabase:
        """Open (creating file and parent folder if needed) and start the worker threads."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = cls(path, max(1, readers))
        ready = _Signal()
        # Daemon threads: a forgotten close() must not hang interpreter exit (SQLite recovers
        # the WAL on next open; only a clean close removes it).
        db._threads.append(threading.Thread(target=db._writer_main, args=(ready,), daemon=True))
        db._threads[0].start()
        for conn in await ready.future:
            db._threads.append(threading.Thread(target=db._reader_main, args=(conn,), daemon=True))
            db._threads[-1].start()
        return db

    # ----------------------------------------------------------------- public API (event loop)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("database is closed")

    async def _write(self, kind: str, sql: str, args: Any) -> Any:
        self._check_open()
        check_no_open_transaction(self, kind)
        job = _Job(kind, sql, args)
        self._jobs.put(job)
        return await _await_mapped(job.future)

    async def _read(self, kind: str, sql: str, args: Any) -> Any:
        self._check_open()
        job = _Job(kind, sql, args)
        self._reads.put(job)
        return await _await_mapped(job.future)

    async def write_batch(self, statements: Sequence[Statement]) -> None:
        """One writer job (its own savepoint inside a group commit) for all ``statements``."""
        frozen = [Statement(s.sql, [tuple(a) for a in s.args] if s.many else tuple(s.args),
                            s.many) for s in group_statements(statements)]
        await self._write("batch", "", frozen)

    async def execute_script(self, script: str) -> None:
        """Run a multi-statement script atomically (``BEGIN ... COMMIT``) on the writer.

        For migrations: the script must not contain its own BEGIN/COMMIT, and takes no
        parameters (``executescript`` cannot bind any).
        """
        await self._write("script", script, ())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        """One writer job spanning the block; ``__aexit__`` waits for the real COMMIT."""
        self._check_open()
        marker = enter_transaction(self)
        try:
            job = _TxnJob()
            self._jobs.put(job)
            try:
                await job.started
            except BaseException:
                job.commands.put(("rollback",))  # harmless if the writer never got that far
                raise
            txn = SqliteTransaction(job)
            try:
                yield txn
            except BaseException:
                txn._open = False
                job.commands.put(("rollback",))
                raise
            txn._open = False
            job.commands.put(("commit",))
            await _await_mapped(job.future)  # if cancelled here, the commit still happens
        finally:
            leave_transaction(marker)

    async def close(self) -> None:
        """Drain queued reads and writes, close readers then the writer, stop all threads.

        The writer closes last so its clean close checkpoints and deletes the ``-wal`` file.
        """
        if self._closed:
            return
        self._closed = True
        stops = [_Signal() for _ in range(self._readers)]
        for stop in stops:
            self._reads.put(stop)
        await asyncio.gather(*(s.future for s in stops))
        writer_stop = _Signal()
        self._jobs.put(writer_stop)
        await writer_stop.future
        for t in self._threads:
            t.join(timeout=5)

    # ----------------------------------------------------------------- worker threads

    def _reader_main(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                req = self._reads.get()
                if not isinstance(req, _Job):  # a bare signal: stop
                    conn.close()
                    _resolve(req.loop, req.future)
                    return
                try:
                    result = _run(conn, req.kind, req.sql, req.args)
                except Exception as e:
                    _resolve(req.loop, req.future, error=e)
                else:
                    _resolve(req.loop, req.future, result)
        finally:
            with suppress(sqlite3.Error):
                conn.close()

    def _writer_main(self, ready: _Signal) -> None:
        try:
            conn = _connect(self.path, readonly=False)
            readers = [_connect(self.path, readonly=True) for _ in range(self._readers)]
        except Exception as e:
            _resolve(ready.loop, ready.future, error=e)
            return
        _resolve(ready.loop, ready.future, readers)
        pending: _Signal | None = None
        try:
            while True:
                job = self._jobs.get() if pending is None else pending
                pending = None
                if not isinstance(job, _Job):  # a bare signal: stop
                    conn.close()
                    _resolve(job.loop, job.future)
                    return
                if job.kind == "script":
                    self._run_script(conn, job)
                else:
                    pending = self._run_batch(conn, job)
        except BaseException:  # a bug: say so loudly rather than let every caller hang quietly
            _log.exception("SQLite writer thread for %s crashed", self.path)
            raise
        finally:
            with suppress(sqlite3.Error):
                conn.close()

    def _run_script(self, conn: sqlite3.Connection, job: _Job) -> None:
        self.write_job_count += 1
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{job.sql}\n;\nCOMMIT;")
        except Exception as e:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            _resolve(job.loop, job.future, error=e)
        else:
            self.commit_count += 1
            _resolve(job.loop, job.future)

    def _run_batch(self, conn: sqlite3.Connection, first: _Job) -> _Signal | None:
        """Group commit: run ``first`` and whatever is already queued, then COMMIT once.

        Returns a job taken off the queue that must run outside this batch (stop or script).
        """
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            # A transaction's coroutine is waiting on ``started``, anything else on ``future``.
            waiting = first.started if isinstance(first, _TxnJob) else first.future
            _resolve(first.loop, waiting, error=e)
            return None
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        leftover: _Signal | None = None
        job = first
        while True:
            self.write_job_count += 1
            if isinstance(job, _TxnJob):
                outcome = self._run_txn(conn, job)
            else:
                outcome = self._run_job(conn, job)
            if outcome is not None:
                outcomes.append(outcome)
            if not conn.in_transaction or len(outcomes) >= BATCH_LIMIT:
                break
            try:
                nxt = self._jobs.get_nowait()
            except queue.Empty:
                break
            if not isinstance(nxt, _Job) or nxt.kind == "script":
                leftover = nxt
                break
            job = nxt
        batch_error: BaseException | None = None
        if not conn.in_transaction:
            batch_error = sqlite3.OperationalError(_LOST)
        else:
            try:
                conn.execute("COMMIT")
                self.commit_count += 1
            except sqlite3.Error as e:
                batch_error = e
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
        for done, result, error in outcomes:
            _resolve(done.loop, done.future, result, error or batch_error)
        return leftover

    def _run_job(self, conn: sqlite3.Connection, job: _Job) -> tuple[_Job, Any, Exception | None]:
        try:
            return job, _in_savepoint(conn, "job", job.kind, job.sql, job.args), None
        except Exception as e:
            return job, None, e

    def _run_txn(self, conn: sqlite3.Connection, job: _TxnJob) -> tuple[_Job, Any, Any] | None:
        """Serve one ``db.transaction()`` block; ``None`` means nothing awaits an outcome."""
        conn.execute("SAVEPOINT txn")  # cannot fail: we are inside our own BEGIN IMMEDIATE
        _resolve(job.loop, job.started)
        while True:
            cmd = job.commands.get()
            if cmd[0] == "rollback":
                _savepoint_rollback(conn, "txn")
                return None
            if cmd[0] == "commit":
                try:
                    conn.execute("RELEASE txn")
                except sqlite3.Error as e:
                    _savepoint_rollback(conn, "txn")
                    return job, None, e
                return job, None, None
            kind, sql, args, fut = cmd
            if not conn.in_transaction:
                _resolve(job.loop, fut, error=sqlite3.OperationalError(_LOST))
                continue
            try:
                if kind == "executemany":  # all rows or none, as outside a transaction
                    result = _in_savepoint(conn, "many", kind, sql, args)
                else:
                    result = _run(conn, kind, sql, args)
            except Exception as e:
                _resolve(job.loop, fut, error=e)
            else:
                _resolve(job.loop, fut, result)

