"""Idempotency records in this process's memory: fast, and lost when the process ends.

Fine for tests and for a single process that may lose its keys on a restart (derived keys still
protect the same reference for the provider's key lifetime; see ``docs/idempotency.md``). Use
:class:`~egress.stores.idempotency_sqlite.SqliteIdempotencyStore` when records must survive.
"""

from __future__ import annotations

import threading

from egress.payments.idempotency import IdempotencyRecord

__all__ = ["MemoryIdempotencyStore"]

_Ident = tuple[str, str, str]


class MemoryIdempotencyStore:
    """A dict behind a lock. Satisfies :class:`~egress.payments.IdempotencyStore`."""

    def __init__(self) -> None:
        self._records: dict[_Ident, IdempotencyRecord] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryIdempotencyStore({len(self._records)} records)"

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[IdempotencyRecord]:
        """Every record, for tests and inspection."""
        with self._lock:
            return list(self._records.values())

    async def reserve(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        with self._lock:
            current = self._records.get(record.ident)
            if current is not None:
                return current, False
            self._records[record.ident] = record
            return record, True

    async def get(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        return self._records.get((scope, operation, reference))

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        with self._lock:
            current = self._records.get(record.ident)
            if current is None or current.key != expected_key:
                return False
            self._records[record.ident] = record
            return True

    async def delete(self, scope: str, operation: str, reference: str, *,
                     expected_key: str | None = None) -> bool:
        ident = (scope, operation, reference)
        with self._lock:
            current = self._records.get(ident)
            if current is None or (expected_key is not None and current.key != expected_key):
                return False
            del self._records[ident]
            return True

    async def purge(self, older_than: float) -> int:
        with self._lock:
            old = [k for k, r in self._records.items() if r.updated_at < older_than]
            for ident in old:
                del self._records[ident]
            return len(old)
