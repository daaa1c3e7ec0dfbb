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

* One connection per store (per process), used under one lock. A write alone is one
  autocommit statement: SQLite commits it before the statement returns.
* A lone payment's writes that need no sync run on the caller's thread when the lock is free at
  that instant (never waiting for it). Otherwise async callers hand their operations to one
  writer thread per store, which runs everything queued at that moment in one ``BEGIN
  IMMEDIATE`` transaction with one commit (group commit: at high concurrency one sync covers
  many payments) and wakes each event loop once per batch. The ``*_sync`` methods are the same
  operations, one transaction each, on the caller's thread.
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
from typing import Any, Final, Literal, cast

from egress.errors import ConfigurationError
from egress.payments.idempotency import IdempotencyRecord, RecordState

__all__ = ["DEFAULT_DURABILITY", "DEFAULT_SQLITE_TIMEOUT", "Durability", "SqliteIdempotencyStore"]

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

#: This process's id, refreshed in a forked child (``os.register_at_fork``): the connections
#: compare it instead of calling ``os.getpid()`` (a system call) on every operation.
_PID = os.getpid()


def _forked() -> None:
    global _PID  # one module-wide fact: which process this is
    _PID = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)

_COLUMNS = ("scope, operation, reference, key, generation, fingerprint, state, created_at, "
            "updated_at, result_id")


def _row(record: IdempotencyRecord) -> tuple[object, ...]:
    # state._value_, the member's value as a plain attribute: ``.value`` is a descriptor that
    # runs two Python-level calls on 3.11, and this runs on every reservation.
    return (record.scope, record.operation, record.reference, record.key, record.generation,
            record.fingerprint, record.state._value_, record.created_at, record.updated_at,
            record.result_id)


def _record(row: tuple[Any, ...]) -> IdempotencyRecord:
    (scope, operation, reference, key, generation, fingerprint, state, created_at, updated_at,
     result_id) = row
    return IdempotencyRecord(
        scope=str(scope), operation=str(operation), reference=str(reference), key=str(key),
        generation=int(generation),
        fingerprint=str(fingerprint), state=_STATES[state],
        created_at=float(created_at), updated_at=float(updated_at),
        result_id=None if result_id is None else str(result_id))


_STATES: Final = {state.value: state for state in RecordState}

#: One store operation: ``op(*args, cursor)`` runs its statements on ``cursor``. Alone (the
#: connection in autocommit) it must be atomic by itself: one statement, or its own transaction.
_Op = Callable[..., Any]


class _Job:
    """One operation queued for the writer thread, and where its answer goes."""

    __slots__ = ("args", "durable", "future", "loop", "op")

    def __init__(self, op: _Op, args: tuple[Any, ...], durable: bool,
                 loop: asyncio.AbstractEventLoop | None,
                 future: asyncio.Future[Any] | None) -> None:
        self.op = op
        self.args = args
        self.durable = durable
        self.loop = loop
        self.future = future

    def run(self, cur: sqlite3.Cursor) -> Any:
        return self.op(*self.args, cur)


def _nothing(cur: sqlite3.Cursor) -> None:
    return None


_STOP: Final = _Job(_nothing, (), False, None, None)
_CHECKPOINT: Final = _Job(_nothing, (), False, None, None)
#: SQLite's primary result codes for "another connection holds the lock".
_BUSY: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
#: Commits made on the event loop's thread between two checkpoints run by the writer thread.
_CHECKPOINT_EVERY: Final = 500
#: Seconds after which a reservation never settled no longer counts as a payment in flight:
#: twice the HTTP client's default deadline (60 s), past which no attempt of it is running.
_IN_FLIGHT_FOR: Final = 120.0
_monotonic = time.monotonic
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
        self._cur: sqlite3.Cursor | None = None
        self._pid = -1
        self._synchronous = ""  # the connection's current PRAGMA synchronous
        self._commits = 0
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_pid = -1
        self._writer_lock = threading.Lock()
        # Keys reserved here and not yet settled, and when (monotonic): more than one means
        # other payments are in flight, and the writer thread's group commit is cheaper than a
        # commit per operation. One never settled (its task cancelled mid-send) is forgotten
        # after _IN_FLIGHT_FOR, so that it cannot keep lone payments off the fast path.
        self._open: dict[tuple[str, str, str], float] = {}
        self._swept = 0.0
        try:
            with self._lock:
                self._cursor()
        except sqlite3.Error as exc:
            raise ConfigurationError(
                f"SqliteIdempotencyStore: cannot open the database at path {self.path!r} "
                f"({type(exc).__name__})") from exc

    def __repr__(self) -> str:
        return f"SqliteIdempotencyStore({self.path!r}, durability={self.durability!r})"

    def _cursor(self, level: str = "") -> sqlite3.Cursor:
        """The store's one connection's cursor, set to ``PRAGMA synchronous=level`` if given.

        One connection serves the caller's thread (the fast path, which must never wait for a
        lock) and the writer thread, one at a time under ``self._lock``: so they never wait on
        each other, and they share one page cache (a second connection reads the pages again
        after every write of the other). Its busy handler is off: the fast path fails at once
        on a lock held elsewhere, and the writer thread and sync calls wait in
        :meth:`_patiently` (a PRAGMA to switch it costs about as much as a write). Checkpoints
        run only where waiting is fine (the writer thread, a sync call), never in a commit on
        the event loop's thread: ``wal_autocheckpoint=0``, see :meth:`_committed`.
        """
        # Caller holds self._lock.
        cur = self._cur
        if cur is None or self._pid != _PID:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.executescript(_SCHEMA)
            conn.execute("PRAGMA busy_timeout=0")
            # One cursor reused for every operation (a new one per statement costs a little
            # each time). Its SELECTs are always read to the end (fetchall), which resets the
            # statement: no read transaction is left open between operations.
            cur = conn.cursor()
            self._conn, self._cur, self._pid = conn, cur, _PID
            self._synchronous = ""
        if level and level != self._synchronous:
            cur.execute(f"PRAGMA synchronous={level}")
            self._synchronous = level
        return cur

    def _connection(self) -> sqlite3.Connection:
        # Caller holds self._lock.
        self._cursor()
        return cast(sqlite3.Connection, self._conn)

    def _patiently(self, call: Callable[[], Any]) -> Any:
        """``call()``, again while another connection holds SQLite's lock, for up to
        ``timeout`` seconds (in growing pauses, as SQLite's own busy handler would). A statement
        that fails on the lock is rolled back whole, so calling again is safe."""
        deadline, pause = 0.0, 0.001
        while True:
            try:
                return call()
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF not in _BUSY:
                    raise
                _rollback(cast(sqlite3.Connection, self._conn))
                now = time.monotonic()
                deadline = deadline or now + self.timeout
                if now >= deadline:
                    raise
                time.sleep(min(pause, deadline - now))
                pause = min(pause * 2, 0.05)

    def _committed(self, count: int = 1) -> bool:
        """Count commits; whether a checkpoint is due (every _CHECKPOINT_EVERY)."""
        before, self._commits = self._commits, self._commits + count
        return before // _CHECKPOINT_EVERY != self._commits // _CHECKPOINT_EVERY

    def _checkpoint(self, cur: sqlite3.Cursor) -> None:
        # Caller holds self._lock. PASSIVE: copies what no reader still needs, never waits.
        with contextlib.suppress(sqlite3.Error):
            cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self) -> None:
        """Finish queued operations, stop the writer thread, close the connection."""
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if (writer is not None and writer.is_alive() and self._writer_pid == _PID
                and writer is not threading.current_thread()):
            self._jobs.put(_STOP)
            writer.join()
        with self._lock:
            if self._conn is not None and self._pid == _PID:
                self._conn.close()
            self._conn = self._cur = None

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

        A job alone runs in autocommit: its one statement is its own transaction (or it opens
        one), the same atomic, equally durable commit as ``BEGIN IMMEDIATE`` ... ``COMMIT``
        around it, in one call into SQLite instead of three.
        """
        with self._lock:
            cur = self._cursor("FULL" if (
                self.durability == "power" and any(job.durable for job in jobs)) else "NORMAL")
            try:
                if len(jobs) == 1:
                    result = self._patiently(partial(jobs[0].run, cur))
                    if self._committed():
                        self._checkpoint(cur)
                    return [(result, None)]
                self._patiently(partial(cur.execute, "BEGIN IMMEDIATE"))
                results = [job.run(cur) for job in jobs]
                cur.execute("COMMIT")
                if self._committed():
                    self._checkpoint(cur)
            except BaseException as exc:
                _rollback(cur.connection)
                if not isinstance(exc, Exception):
                    raise
                if len(jobs) == 1:
                    return [(None, exc)]
            else:
                return [(result, None) for result in results]
        return [self._transact([job])[0] for job in jobs]

    def _run_sync(self, op: _Op, args: tuple[Any, ...], durable: bool) -> Any:
        ((result, error),) = self._transact([_Job(op, args, durable, None, None)])
        if error is not None:
            raise error
        return result

    def _here(self, op: _Op, args: tuple[Any, ...], durable: bool,
              writes: bool = True) -> tuple[bool, Any]:
        """Run one operation on the caller's thread when that cannot wait: ``(True, result)``,
        or ``(False, None)`` to hand it to the writer thread.

        Taken when nothing need be synced (``durability="process"``, or an outcome write), no
        other payment of this store is in flight (else group commit is cheaper), and the
        database's write lock is free at this instant: the connection has no busy timeout,
        so a lock held by another process or by the writer thread sends the operation to the
        writer (which waits up to ``timeout``) instead of blocking the event loop. A commit
        then costs a ``write`` to the WAL and no thread hop. The operation runs in autocommit
        (one statement, one commit: see :meth:`_transact`). Checkpoints, which sync, are left
        to the writer thread.
        """
        if ((durable and self.durability == "power")
                or (writes and len(self._open) > 1 and self._crowded())
                or not self._lock.acquire(blocking=False)):
            return False, None
        try:
            cur = self._cur
            if (cur is None or self._pid != _PID
                    or (writes and self._synchronous != "NORMAL")):  # a read needs no level
                cur = self._cursor("NORMAL" if writes else "")
            try:
                result = op(*args, cur)
            except BaseException as exc:
                _rollback(cur.connection)
                if (isinstance(exc, sqlite3.OperationalError)
                        and exc.sqlite_errorcode & 0xFF in _BUSY):
                    # Locked by another connection: nothing was written (a statement that
                    # fails is rolled back whole); the writer thread waits for the lock.
                    return False, None
                raise
            if writes and self._committed():
                self._start_writer()
                self._jobs.put(_CHECKPOINT)
            return True, result
        finally:
            self._lock.release()

    def _crowded(self) -> bool:
        """Whether other payments are in flight, once reservations abandoned long ago are
        forgotten (swept at most once a second). A count for choosing a path, never for
        correctness: a miscount only picks the other."""
        now = _monotonic()
        if now - self._swept >= 1.0:
            self._swept = now
            stale = now - _IN_FLIGHT_FOR
            for ident, since in list(self._open.items()):  # list(): one atomic copy
                if since < stale:
                    self._open.pop(ident, None)
        return len(self._open) > 1

    async def _run(self, op: _Op, args: tuple[Any, ...], durable: bool,
                   writes: bool = True) -> Any:
        done, result = self._here(op, args, durable, writes)
        if done:
            return result
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        writer = self._writer
        if writer is None or self._writer_pid != _PID or not writer.is_alive():
            self._start_writer()
        self._jobs.put(_Job(op, args, durable, loop, future))
        return await future

    def _start_writer(self) -> None:
        with self._writer_lock:
            writer = self._writer
            if writer is not None and self._writer_pid == _PID and writer.is_alive():
                return
            # First use, after close(), or in a forked child (the parent's thread is not here).
            jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
            self._jobs = jobs
            self._writer = threading.Thread(target=self._write_loop, args=(jobs,), daemon=True,
                                            name="egress-sqlite-writer")
            self._writer_pid = _PID
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
                    self._checkpoint(self._cursor())
            if stop:
                return

    # -- sync operations (each one transaction) ------------------------------------------------

    def reserve_sync(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        return cast(tuple[IdempotencyRecord, bool], self._run_sync(_reserve, (record,), True))

    def get_sync(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        with self._lock:
            found: IdempotencyRecord | None = self._patiently(
                partial(_get, (scope, operation, reference), self._cursor()))
            return found

    def replace_sync(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        return bool(self._run_sync(_replace, (record, expected_key),
                                   record.state is RecordState.PENDING))

    def delete_sync(self, scope: str, operation: str, reference: str, *,
                    expected_key: str | None = None) -> bool:
        return bool(self._run_sync(_delete, ((scope, operation, reference), expected_key),
                                   False))

    def purge_sync(self, older_than: float) -> int:
        return int(self._run_sync(_purge, (older_than,), False))

    def in_doubt_sync(self, limit: int) -> tuple[int, list[IdempotencyRecord]]:
        """How many records are UNKNOWN (in doubt, not reconciled), and the ``limit`` oldest
        (both from the partial index on those records)."""
        with self._lock:
            count, rows = self._patiently(partial(_in_doubt, limit, self._cursor()))
        return count, [_record(row) for row in rows]

    def records_sync(self) -> list[IdempotencyRecord]:
        """Every record, for tests and inspection."""
        with self._lock:
            rows = self._patiently(partial(_all, self._cursor()))
        return [_record(row) for row in rows]

    # -- async operations: the same, through the writer thread ---------------------------------

    async def reserve(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        stored, inserted = await self._run(_reserve, (record,), True)
        if inserted:
            self._open[record.ident] = _monotonic()
        return stored, inserted

    async def get(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        found: IdempotencyRecord | None = await self._run(
            _get, ((scope, operation, reference),), False, writes=False)
        return found

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        pending = record.state is RecordState.PENDING
        replaced: bool = await self._run(_replace, (record, expected_key), pending)
        if replaced and not pending:
            self._open.pop(record.ident, None)
        return replaced

    async def delete(self, scope: str, operation: str, reference: str, *,
                     expected_key: str | None = None) -> bool:
        deleted: bool = await self._run(_delete, ((scope, operation, reference), expected_key),
                                        False)
        if deleted:
            self._open.pop((scope, operation, reference), None)
        return deleted

    async def purge(self, older_than: float) -> int:
        purged: int = await self._run(_purge, (older_than,), False)
        return purged


def _deliver(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """On the caller's event loop: hand each waiting call its answer (one wake-up per batch)."""
    for future, result, error in settled:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


# -- the statements (on the store's connection: inside a batch's transaction, or alone) --------

_SELECT: Final = (f"SELECT {_COLUMNS} FROM egress_idempotency "  # noqa: S608 (constant)
                  "WHERE scope = ? AND operation = ? AND reference = ?")
_INSERT: Final = (f"INSERT INTO egress_idempotency ({_COLUMNS}) "  # noqa: S608
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
_UPDATE: Final = ("UPDATE egress_idempotency SET key = ?, generation = ?, fingerprint = ?, "
                  "state = ?, created_at = ?, updated_at = ?, result_id = ? "
                  "WHERE scope = ? AND operation = ? AND reference = ? AND key = ?")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _reserve(record: IdempotencyRecord,
             cur: sqlite3.Cursor) -> tuple[IdempotencyRecord, bool]:
    if cur.execute(_INSERT, _row(record)).rowcount == 1:
        return record, True
    conn = cur.connection
    if conn.in_transaction:
        return _record(cur.execute(_SELECT, record.ident).fetchall()[0]), False
    # Alone, the record is there (the insert did nothing): insert-or-read again inside one
    # transaction, so that no delete can fall between the insert and the read.
    cur.execute("BEGIN IMMEDIATE")
    try:
        found = _reserve(record, cur)
        cur.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return found


def _get(ident: tuple[str, str, str], cur: sqlite3.Cursor) -> IdempotencyRecord | None:
    rows = cur.execute(_SELECT, ident).fetchall()
    return _record(rows[0]) if rows else None


def _replace(record: IdempotencyRecord, expected_key: str, cur: sqlite3.Cursor) -> bool:
    return cur.execute(_UPDATE, (
        record.key, record.generation, record.fingerprint, record.state._value_,
        record.created_at, record.updated_at, record.result_id, record.scope,
        record.operation, record.reference, expected_key)).rowcount == 1


def _delete(ident: tuple[str, str, str], expected_key: str | None,
            cur: sqlite3.Cursor) -> bool:
    sql = "DELETE FROM egress_idempotency WHERE scope = ? AND operation = ? AND reference = ?"
    params: tuple[object, ...] = ident
    if expected_key is not None:
        sql += " AND key = ?"
        params = (*ident, expected_key)
    return cur.execute(sql, params).rowcount == 1


def _in_doubt(limit: int, cur: sqlite3.Cursor) -> tuple[int, list[tuple[Any, ...]]]:
    # One read transaction for both, so that the count and the rows agree.
    cur.execute("BEGIN")
    try:
        (count,) = cur.execute("SELECT count(*) FROM egress_idempotency "
                               "WHERE state = 'unknown'").fetchall()[0]
        rows = cur.execute(
            f"SELECT {_COLUMNS} FROM egress_idempotency WHERE state = 'unknown' "  # noqa: S608
            "ORDER BY updated_at LIMIT ?", (limit,)).fetchall()
        cur.execute("COMMIT")
    except BaseException:
        _rollback(cur.connection)
        raise
    return int(count), rows


def _all(cur: sqlite3.Cursor) -> list[tuple[Any, ...]]:
    return cur.execute(
        f"SELECT {_COLUMNS} FROM egress_idempotency ORDER BY created_at"  # noqa: S608
    ).fetchall()


def _purge(older_than: float, cur: sqlite3.Cursor) -> int:
    return cur.execute("DELETE FROM egress_idempotency WHERE updated_at < ?",
                       (older_than,)).rowcount
