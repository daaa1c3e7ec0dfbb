"""A helper run in child processes by test_idempotency_stores (must be importable by spawn)."""

from __future__ import annotations

from egress.payments.idempotency import IdempotencyRecord
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore


def reserve_many(path: str, worker: int, references: list[str]) -> list[str]:
    """Reserve every reference; return the ones this worker inserted."""
    store = SqliteIdempotencyStore(path)
    won = []
    for reference in references:
        record = IdempotencyRecord.new("s", "create", reference, f"fp-{worker}", 1000.0 + worker)
        stored, inserted = store.reserve_sync(record)
        assert stored.reference == reference
        if inserted:
            won.append(reference)
    store.close()
    return won
