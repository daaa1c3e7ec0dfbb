"""Durable idempotency records in one SQLite file: safe across processes on one machine.

* Standard library :mod:`sqlite3`, WAL journal, ``synchronous=FULL``: a record is on disk before
  :meth:`reserve` returns, so a key is never sent before it is durable (a power cut included).
* Every write is one ``BEGIN IMMEDIATE`` transaction; concurrent processes wait on SQLite's
  lock for up to ``timeout`` seconds. Reserve is an ``INSERT ... ON CONFLICT DO NOTHING`` plus a
  read, so two processes reserving the same reference both get the one record that won.
* Async callers run each statement in a worker thread (:func:`asyncio.to_thread`); the ``*_sync``
  methods are the same operations for sync code.
* A process that forks gets its own connection on first use in the child.
"""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Final

from egress.errors import ConfigurationError
from egress.payments.idempotency import IdempotencyRecord, RecordState

__all__ = ["DEFAULT_SQLITE_TIMEOUT", "SqliteIdempotencyStore"]

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
CREATE INDEX IF NOT EXISTS egress_idempotency_updated ON egress_idempotency (updated_at);
CREATE INDEX IF NOT EXISTS egress_idempotency_doubt ON egress_idempotency (updated_at)
    WHERE state = 'unknown';
"""

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


class SqliteIdempotencyStore:
    """Idempotency records in the SQLite file at ``path`` (created if missing).

    ==============  ======  ======================================================
    setting         default meaning
    ==============  ======  ======================================================
    ``path``        (req.)  the database file; ``":memory:"`` for a private one
    ``timeout``     10.0    seconds to wait for another process's write lock
    ==============  ======  ======================================================
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 timeout: float = DEFAULT_SQLITE_TIMEOUT) -> None:
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise ConfigurationError(f"SqliteIdempotencyStore: timeout must be > 0, "
                                     f"got {timeout!r}")
        self.path = str(path) if str(path) == ":memory:" else str(Path(path))
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        try:
            self._connection()
        except sqlite3.Error as exc:
            raise ConfigurationError(
                f"SqliteIdempotencyStore: cannot open the database at path {self.path!r} "
                f"({type(exc).__name__})") from exc

    def __repr__(self) -> str:
        return f"SqliteIdempotencyStore({self.path!r})"

    def _connection(self) -> sqlite3.Connection:
        # Caller holds self._lock (or is __init__).
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> SqliteIdempotencyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sync operations (each one transaction) ------------------------------------------------

    def reserve_sync(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(
                    f"INSERT INTO egress_idempotency ({_COLUMNS}) "  # noqa: S608 (constant)
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    _row(record))
                inserted = cursor.rowcount == 1
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM egress_idempotency "  # noqa: S608
                    "WHERE scope = ? AND operation = ? AND reference = ?",
                    record.ident).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return _record(row), inserted

    def get_sync(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        with self._lock:
            row = self._connection().execute(
                f"SELECT {_COLUMNS} FROM egress_idempotency "  # noqa: S608
                "WHERE scope = ? AND operation = ? AND reference = ?",
                (scope, operation, reference)).fetchone()
        return None if row is None else _record(row)

    def replace_sync(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        with self._lock:
            cursor = self._connection().execute(
                "UPDATE egress_idempotency SET key = ?, generation = ?, fingerprint = ?, "
                "state = ?, created_at = ?, updated_at = ?, result_id = ? "
                "WHERE scope = ? AND operation = ? AND reference = ? AND key = ?",
                (record.key, record.generation, record.fingerprint, record.state.value,
                 record.created_at, record.updated_at, record.result_id, *record.ident,
                 expected_key))
            return cursor.rowcount == 1

    def delete_sync(self, scope: str, operation: str, reference: str, *,
                    expected_key: str | None = None) -> bool:
        sql = "DELETE FROM egress_idempotency WHERE scope = ? AND operation = ? AND reference = ?"
        params: tuple[object, ...] = (scope, operation, reference)
        if expected_key is not None:
            sql += " AND key = ?"
            params = (*params, expected_key)
        with self._lock:
            return self._connection().execute(sql, params).rowcount == 1

    def purge_sync(self, older_than: float) -> int:
        with self._lock:
            return self._connection().execute(
                "DELETE FROM egress_idempotency WHERE updated_at < ?", (older_than,)).rowcount

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

    # -- async operations: the same, in a worker thread ---------------------------------------

    async def reserve(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        return await asyncio.to_thread(self.reserve_sync, record)

    async def get(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        return await asyncio.to_thread(self.get_sync, scope, operation, reference)

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        return await asyncio.to_thread(self.replace_sync, record, expected_key=expected_key)

    async def delete(self, scope: str, operation: str, reference: str, *,
                     expected_key: str | None = None) -> bool:
        return await asyncio.to_thread(self.delete_sync, scope, operation, reference,
                                       expected_key=expected_key)

    async def purge(self, older_than: float) -> int:
        return await asyncio.to_thread(self.purge_sync, older_than)
