"""Durable idempotency records in one SQLite file: safe across processes on one machine.

* Standard library :mod:`sqlite3`, WAL journal. ``durability`` says what a returned write
  survives (docs/idempotency.md states it per mode):

  - ``"process"`` (default): ``synchronous=NORMAL``. A write is in the WAL file (the operating
    system's cache) before the call returns: it survives the process being killed at any point.
    A power cut or kernel crash can lose the last writes; a lost record is then recovered as a
    lost store is (the derived key makes the provider replay within its key lifetime, and
    ``check_new_references`` looks an older reference up).
  - ``"power"``: every write that leaves a record ``PENDING`` (a reservation, a renewed or
    re-sent key: what must precede a send) is synced to disk (``fsync``) before it returns, so
    no key is ever sent that a power cut could erase. Outcome writes (``SUCCEEDED``,
    ``FAILED``, ``UNKNOWN``) and deletions are not waited for: the next synced write (or
    checkpoint) makes them durable. A power cut can lose an outcome, never a key: the record
    then reads ``PENDING`` and the next call re-sends the same key, which the provider replays.

* Async callers hand their operations to one writer thread per store, which runs everything
  queued at that moment in one ``BEGIN IMMEDIATE`` transaction with one commit (group commit:
  at high concurrency one sync covers many payments) and wakes each event loop once per batch.
  The ``*_sync`` methods are the same operations, one transaction each, on the caller's thread.
* Concurrent processes wait on SQLite's lock for up to ``timeout`` seconds. Reserve is an
  ``INSERT ... ON CONFLICT DO NOTHING`` plus a read, so two processes reserving the same
  reference both get the one record that won.
* A process that forks gets its own connection (and writer thread) on first use in the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, cast

from egress.errors import ConfigurationError
from egress.payments.idempotency import IdempotencyRecord, RecordState

__all__ = ["DEFAULT_DURABILITY", "DEFAULT_SQLITE_TIMEOUT", "Durability", "SqliteIdempotencyStore"]

T = TypeVar("T")
#: What a returned write survives: the process being killed, or also a power cut.
Durability = Literal["process", "power"]
DEFAULT_DURABILITY: Final[Durability] = "process"
_SYNC_LEVELS: Final = frozenset({"process", "power"})

#: Seconds a statement waits for another process's write lock before failing.
DEFAULT_SQLITE_TIMEOUT: Final = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS egress_idempotency (
    scope       TEXT    NOT NULL,
    operation   TEXT    NOT NULL,
    reference   TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    generation  INTEGER NOT NULL,
    fingerprint TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    created_at  REAL    NOT NULL,
    updated_at  REAL    NOT NULL,
    result_id   TEXT,
    PRIMARY KEY (scope, operation, reference)
);
CREATE INDEX IF NOT EXISTS egress_idempotency_doubt ON egress_idempotency (updated_at)
    WHERE state = 'unknown';
"""

# No index on updated_at: every write would update it too (a third page in each commit, about
# a sixth of the store's instructions per payment), and only purge(), a rare maintenance call,
# reads by it; it scans instead. Files made by earlier versions keep theirs, harmlessly.

_COLUMNS = ("scope, operation, reference, key, generation, fingerprint, state, created_at, "
            "updated_at, result_id")


def _row(record: IdempotencyRecord) -> tuple[object, ...]:
    return (record.scope, record.operation, record.reference, record.key, record.generation,
            record.fingerprint, record.state.value, record.created_at, record.updated_at,
            record.result_id)


def _record(row: tuple[Any, ...]) -> IdempotencyRecord:
    (scope, operation, reference, key, generation, fingerprint, state, created_at, updated_at,
     result_id) = row
    return IdempotencyRecord(
        scope=str(scope), operation=str(operation), reference=str(reference), key=str(key),
        generation=int(generation),
        fingerprint=str(fingerprint), state=RecordState(state),
        created_at=float(created_at), updated_at=float(updated_at),
        result_id=None if result_id is None else str(result_id))


class _Job:
    """One operation queued for the writer thread, and where its answer goes."""

    __slots__ = ("durable", "future", "loop", "run")

    def __init__(self, run: Callable[[sqlite3.Connection], Any], durable: bool,
                 loop: asyncio.AbstractEventLoop | None,
                 future: asyncio.Future[Any] | None) -> None:
        self.run = run
        self.durable = durable
        self.loop = loop
        self.future = future


_STOP: Final = _Job(lambda conn: None, False, None, None)
_CHECKPOINT: Final = _Job(lambda conn: None, False, None, None)
#: Commits made on the event loop's thread between two checkpoints run by the writer thread.
_CHECKPOINT_EVERY: Final = 500
#: The most operations one group commit takes: bounds how long one transaction holds the lock.
_MAX_BATCH: Final = 256


class SqliteIdempotencyStore:
    """Idempotency records in the SQLite file at ``path`` (created if missing).

    ==============  ===========  ======================================================
    setting         default      meaning
    ==============  ===========  ======================================================
    ``path``        (required)   the database file; ``":memory:"`` for a private one
    ``timeout``     10.0         seconds to wait for another process's write lock
    ``durability``  ``process``  ``"process"``: every write survives the process being
                                 killed; ``"power"``: a key is also synced to disk
                                 (``fsync``) before it is sent (see the module doc)
    ==============  ===========  ======================================================
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 timeout: float = DEFAULT_SQLITE_TIMEOUT,
                 durability: Durability = DEFAULT_DURABILITY) -> None:
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise ConfigurationError(f"SqliteIdempotencyStore: timeout must be > 0, "
                                     f"got {timeout!r}")
        if durability not in _SYNC_LEVELS:
            raise ConfigurationError("SqliteIdempotencyStore: durability must be 'process' or "
                                     f"'power', got {durability!r}")
        self.path = str(path) if str(path) == ":memory:" else str(Path(path))
        self.timeout = float(timeout)
        self.durability: Durability = durability
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._synchronous = ""  # the connection's current PRAGMA synchronous
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_pid = -1
        self._writer_lock = threading.Lock()
        # The fast path: a second connection used on the caller's thread when the database is
        # free (see _here), under the same lock as the writer's, so that the two never wait on
        # each other in SQLite's busy handler (which sleeps in steps of milliseconds). Not for
        # ":memory:", where a second connection is another database.
        self._here_conn: sqlite3.Connection | None = None
        self._here_pid = -1
        self._here_commits = 0
        self._fast = self.path != ":memory:"
        # Keys reserved here and not yet settled: more than one means other payments are in
        # flight, and the writer thread's group commit is cheaper than a commit per operation.
        self._open = 0
        try:
            with self._lock:
                self._connection()
        except sqlite3.Error as exc:
            raise ConfigurationError(
                f"SqliteIdempotencyStore: cannot open the database at path {self.path!r} "
                f"({type(exc).__name__})") from exc

    def __repr__(self) -> str:
        return f"SqliteIdempotencyStore({self.path!r}, durability={self.durability!r})"

    def _connection(self) -> sqlite3.Connection:
        # Caller holds self._lock.
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            self._conn, self._pid, self._synchronous = conn, os.getpid(), ""
        return self._conn

    def close(self) -> None:
        """Finish queued operations, stop the writer thread, close the connection."""
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if (writer is not None and writer.is_alive() and self._writer_pid == os.getpid()
                and writer is not threading.current_thread()):
            self._jobs.put(_STOP)
            writer.join()
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
        with self._lock:
            if self._here_conn is not None and self._here_pid == os.getpid():
                self._here_conn.close()
            self._here_conn = None

    def __enter__(self) -> SqliteIdempotencyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------------------

    def _transact(self, jobs: list[_Job]) -> list[tuple[Any, BaseException | None]]:
        """Run ``jobs`` in one transaction, one commit; each gets its result or its error.

        Results are handed out only after the commit returned: no caller learns of a write
        before it is as durable as its mode promises. If the batch fails, each job is run again
        alone, so that an error reaches only the job that caused it.
        """
        with self._lock:
            conn = self._connection()
            level = "FULL" if (self.durability == "power"
                               and any(job.durable for job in jobs)) else "NORMAL"
            if level != self._synchronous:
                conn.execute(f"PRAGMA synchronous={level}")
                self._synchronous = level
            try:
                conn.execute("BEGIN IMMEDIATE")
                results = [job.run(conn) for job in jobs]
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if not isinstance(exc, Exception):
                    raise
                if len(jobs) == 1:
                    return [(None, exc)]
            else:
                return [(result, None) for result in results]
        return [self._transact([job])[0] for job in jobs]

    def _run_sync(self, run: Callable[[sqlite3.Connection], T], durable: bool) -> T:
        ((result, error),) = self._transact([_Job(run, durable, None, None)])
        if error is not None:
            raise error
        return cast(T, result)

    def _here(self, run: Callable[[sqlite3.Connection], T], durable: bool,
              writes: bool = True) -> tuple[bool, T | None]:
        """Run one operation on the caller's thread when that cannot wait: ``(True, result)``,
        or ``(False, None)`` to hand it to the writer thread.

        Taken when nothing need be synced (``durability="process"``, or an outcome write), no
        other payment of this store is in flight (else group commit is cheaper), and the
        database's write lock is free at this instant: the connection has no busy timeout,
        so a lock held by another process or by the writer thread sends the operation to the
        writer (which waits up to ``timeout``) instead of blocking the event loop. A commit
        then costs a ``write`` to the WAL and no thread hop. Checkpoints, which sync, are left
        to the writer thread.
        """
        if (not self._fast or (durable and self.durability == "power")
                or (writes and self._open > 1)
                or not self._lock.acquire(blocking=False)):
            return False, None
        try:
            conn = self._here_conn
            if conn is None or self._here_pid != os.getpid():
                conn = sqlite3.connect(self.path, timeout=0, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA wal_autocheckpoint=0")
                self._here_conn, self._here_pid = conn, os.getpid()
            if not writes:
                try:
                    return True, run(conn)
                except sqlite3.OperationalError:
                    return False, None
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # locked: the writer thread will wait for it
                return False, None
            try:
                result = run(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            self._here_commits += 1
            if self._here_commits % _CHECKPOINT_EVERY == 0:
                self._start_writer()
                self._jobs.put(_CHECKPOINT)
            return True, result
        finally:
            self._lock.release()

    async def _run(self, run: Callable[[sqlite3.Connection], T], durable: bool,
                   writes: bool = True) -> T:
        done, result = self._here(run, durable, writes)
        if done:
            return cast(T, result)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        writer = self._writer
        if writer is None or self._writer_pid != os.getpid() or not writer.is_alive():
            self._start_writer()
        self._jobs.put(_Job(run, durable, loop, future))
        return await future

    def _start_writer(self) -> None:
        with self._writer_lock:
            writer = self._writer
            if writer is not None and self._writer_pid == os.getpid() and writer.is_alive():
                return
            # First use, after close(), or in a forked child (the parent's thread is not here).
            jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
            self._jobs = jobs
            self._writer = threading.Thread(target=self._write_loop, args=(jobs,), daemon=True,
                                            name="egress-sqlite-writer")
            self._writer_pid = os.getpid()
            self._writer.start()

    def _write_loop(self, jobs: queue.SimpleQueue[_Job]) -> None:
        while True:
            batch = [jobs.get()]
            # Let the callers' threads run once before draining the queue: the jobs they are
            # about to queue join this commit instead of each waking this thread again.
            time.sleep(0)
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(jobs.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            checkpoint = _CHECKPOINT in batch
            batch = [job for job in batch if job is not _STOP and job is not _CHECKPOINT]
            if batch:
                answers: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, Any]]] = {}
                for job, (result, error) in zip(batch, self._transact(batch), strict=True):
                    if job.loop is not None:
                        answers.setdefault(job.loop, []).append((job.future, result, error))
                for loop, settled in answers.items():
                    with contextlib.suppress(RuntimeError):  # that loop is closed: no one waits
                        loop.call_soon_threadsafe(_deliver, settled)
            if checkpoint:
                with self._lock, contextlib.suppress(sqlite3.Error):
                    self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")
            if stop:
                return

    # -- sync operations (each one transaction) ------------------------------------------------

    def reserve_sync(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        return self._run_sync(partial(_reserve, record), True)

    def get_sync(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        with self._lock:
            return _get(self._connection(), (scope, operation, reference))

    def replace_sync(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        return self._run_sync(partial(_replace, record, expected_key),
                              record.state is RecordState.PENDING)

    def delete_sync(self, scope: str, operation: str, reference: str, *,
                    expected_key: str | None = None) -> bool:
        return self._run_sync(partial(_delete, (scope, operation, reference), expected_key),
                              False)

    def purge_sync(self, older_than: float) -> int:
        return self._run_sync(partial(_purge, older_than), False)

    def in_doubt_sync(self, limit: int) -> tuple[int, list[IdempotencyRecord]]:
        """How many records are UNKNOWN (in doubt, not reconciled), and the ``limit`` oldest
        (both from the partial index on those records)."""
        with self._lock:
            db = self._connection()
            (count,) = db.execute("SELECT count(*) FROM egress_idempotency "
                                  "WHERE state = 'unknown'").fetchone()
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM egress_idempotency WHERE state = 'unknown' "  # noqa: S608
                "ORDER BY updated_at LIMIT ?", (limit,)).fetchall()
        return int(count), [_record(row) for row in rows]

    def records_sync(self) -> list[IdempotencyRecord]:
        """Every record, for tests and inspection."""
        with self._lock:
            rows = self._connection().execute(
                f"SELECT {_COLUMNS} FROM egress_idempotency ORDER BY created_at"  # noqa: S608
            ).fetchall()
        return [_record(row) for row in rows]

    # -- async operations: the same, through the writer thread ---------------------------------

    async def reserve(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        stored, inserted = await self._run(partial(_reserve, record), True)
        self._open += inserted
        return stored, inserted

    async def get(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        return await self._run(partial(_get, ident=(scope, operation, reference)), False,
                               writes=False)

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        pending = record.state is RecordState.PENDING
        replaced = await self._run(partial(_replace, record, expected_key), pending)
        if replaced and not pending:
            self._settled()
        return replaced

    def _settled(self) -> None:
        # A count for choosing a path, never for correctness: a miscount only picks the other.
        self._open = max(self._open - 1, 0)

    async def delete(self, scope: str, operation: str, reference: str, *,
                     expected_key: str | None = None) -> bool:
        deleted = await self._run(partial(_delete, (scope, operation, reference), expected_key),
                                  False)
        if deleted:
            self._settled()
        return deleted

    async def purge(self, older_than: float) -> int:
        return await self._run(partial(_purge, older_than), False)


def _deliver(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """On the caller's event loop: hand each waiting call its answer (one wake-up per batch)."""
    for future, result, error in settled:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


# -- the statements (run inside a transaction, on the store's connection) ------------------------

_SELECT: Final = (f"SELECT {_COLUMNS} FROM egress_idempotency "  # noqa: S608 (constant)
                  "WHERE scope = ? AND operation = ? AND reference = ?")
_INSERT: Final = (f"INSERT INTO egress_idempotency ({_COLUMNS}) "  # noqa: S608
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
_UPDATE: Final = ("UPDATE egress_idempotency SET key = ?, generation = ?, fingerprint = ?, "
                  "state = ?, created_at = ?, updated_at = ?, result_id = ? "
                  "WHERE scope = ? AND operation = ? AND reference = ? AND key = ?")


def _reserve(record: IdempotencyRecord,
             conn: sqlite3.Connection) -> tuple[IdempotencyRecord, bool]:
    inserted = conn.execute(_INSERT, _row(record)).rowcount == 1
    if inserted:
        return record, True
    return _record(conn.execute(_SELECT, record.ident).fetchone()), False


def _get(conn: sqlite3.Connection, ident: tuple[str, str, str]) -> IdempotencyRecord | None:
    row = conn.execute(_SELECT, ident).fetchone()
    return None if row is None else _record(row)


def _replace(record: IdempotencyRecord, expected_key: str, conn: sqlite3.Connection) -> bool:
    cursor = conn.execute(_UPDATE, (
        record.key, record.generation, record.fingerprint, record.state.value,
        record.created_at, record.updated_at, record.result_id, *record.ident, expected_key))
    return cursor.rowcount == 1


def _delete(ident: tuple[str, str, str], expected_key: str | None,
            conn: sqlite3.Connection) -> bool:
    sql = "DELETE FROM egress_idempotency WHERE scope = ? AND operation = ? AND reference = ?"
    params: tuple[object, ...] = ident
    if expected_key is not None:
        sql += " AND key = ?"
        params = (*ident, expected_key)
    return conn.execute(sql, params).rowcount == 1


def _purge(older_than: float, conn: sqlite3.Connection) -> int:
    return conn.execute("DELETE FROM egress_idempotency WHERE updated_at < ?",
                        (older_than,)).rowcount
