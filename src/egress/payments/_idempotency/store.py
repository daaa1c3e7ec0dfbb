"""The port where idempotency records live (memory, SQLite, Redis adapters implement it)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from egress.payments._idempotency.record import IdempotencyRecord

__all__ = ["IdempotencyStore"]


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where idempotency records live: memory, SQLite (durable, one machine), later Redis.

    Every method is atomic. Records are identified by ``(scope, operation, reference)``.
    """

    async def reserve(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        """Insert ``record`` unless one with its identity exists.

        Returns the record now stored and whether it was inserted. Durable stores return only
        once the record is on disk.
        """
        ...

    async def get(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        ...

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        """Overwrite the stored record with ``record`` if the stored key is ``expected_key``.

        Returns ``False`` (changing nothing) when the record is gone or has another key: some
        other worker renewed it first.
        """
        ...

    async def delete(self, scope: str, operation: str, reference: str, *,
                     expected_key: str | None = None) -> bool:
        ...

    async def purge(self, older_than: float) -> int:
        """Delete records last updated before ``older_than`` (wall seconds); returns how many."""
        ...
