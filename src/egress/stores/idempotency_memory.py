"""Idempotency records in this process's memory: fast, and lost when the process ends.

Fine for tests and for a single process that may lose its keys on a restart (derived keys still
protect the same reference for the provider's key lifetime; see ``docs/idempotency.md``). Use
:class:`~egress.stores.idempotency_sqlite.SqliteIdempotencyStore` when records must survive.

Bounded: a record may be dropped only when it is *settled* (SUCCEEDED or FAILED: the provider
answered) and its last change is older than ``retention`` (at least the provider's key lifetime).
PENDING and UNKNOWN records (in doubt) are never dropped, whatever their age. Time is the records'
own (the newest ``updated_at`` written, from the keeper's clock), so the store needs no clock of
its own and cannot disagree with the keeper's. Sweeps are amortized (when the count doubles since
the last one) and forced at ``max_records``; a store full of records that may not go refuses new
reservations (nothing is sent) instead of forgetting one.
"""

from __future__ import annotations

import threading

from egress.errors import ConfigurationError, ProviderUnavailable
from egress.payments._drive import drive
from egress.payments.idempotency import PROVIDER_KEY_LIFETIME, IdempotencyRecord, RecordState

__all__ = ["MemoryIdempotencyStore"]

_Ident = tuple[str, str, str]
_SETTLED = frozenset({RecordState.SUCCEEDED, RecordState.FAILED})
#: About 450 B a record: some 110 MB, a day of ~2.9 payments a second.
DEFAULT_MAX_RECORDS = 250_000
_FIRST_SWEEP = 1024  # no sweep below this many records: tiny stores never pay for one


class MemoryIdempotencyStore:
    """A bounded dict behind a lock. Satisfies :class:`~egress.payments.IdempotencyStore`.

    ``max_records``: the hard cap; ``retention``: how long a settled record is kept after its last
    change (never less than :data:`~egress.payments.PROVIDER_KEY_LIFETIME`).
    """

    def __init__(self, *, max_records: int = DEFAULT_MAX_RECORDS,
                 retention: float = PROVIDER_KEY_LIFETIME) -> None:
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise ConfigurationError("MemoryIdempotencyStore: max_records must be an int >= 1")
        if (isinstance(retention, bool) or not isinstance(retention, int | float)
                or not retention >= PROVIDER_KEY_LIFETIME):
            raise ConfigurationError(
                f"MemoryIdempotencyStore: retention must be >= the provider's key lifetime "
                f"({PROVIDER_KEY_LIFETIME:.0f} s)")
        self.max_records = max_records
        self.retention = float(retention)
        self._records: dict[_Ident, IdempotencyRecord] = {}
        self._doubt: set[_Ident] = set()  # UNKNOWN records, kept as they change: status() reads it
        self._lock = threading.Lock()
        self._latest = float("-inf")  # the newest updated_at written: the store's "now"
        self._next_sweep = min(_FIRST_SWEEP, max_records)
        self._swept_at = float("-inf")  # the "now" of the last sweep

    def _sweep(self) -> int:
        """Drop settled records older than the retention (lock held). Returns how many."""
        horizon = self._latest - self.retention
        old = [ident for ident, r in self._records.items()
               if r.state in _SETTLED and r.updated_at < horizon]
        for ident in old:
            del self._records[ident]
        self._swept_at = self._latest
        self._next_sweep = min(max(_FIRST_SWEEP, 2 * len(self._records)), self.max_records)
        return len(old)

    def _make_room(self) -> None:
        """Before an insert (lock held): sweep when due; refuse when full of records that stay."""
        count = len(self._records)
        if count < self._next_sweep:
            return
        if count < self.max_records or self._latest >= self._swept_at + 1.0:
            self._sweep()  # at the cap, at most once per second of record time
        if len(self._records) >= self.max_records:
            raise ProviderUnavailable(
                f"MemoryIdempotencyStore is full: {len(self._records)} records are in doubt or "
                f"younger than the retention, and none may be forgotten; nothing was sent "
                f"(raise max_records or use SqliteIdempotencyStore)")

    def __repr__(self) -> str:
        return f"MemoryIdempotencyStore({len(self._records)} records)"

    def __len__(self) -> int:
        return len(self._records)

    def in_doubt_sync(self, limit: int) -> tuple[int, list[IdempotencyRecord]]:
        """How many records are UNKNOWN (in doubt, not reconciled), and the ``limit`` oldest."""
        with self._lock:
            found = [self._records[ident] for ident in self._doubt]
        found.sort(key=lambda r: r.updated_at)
        return len(found), found[:limit]

    def records(self) -> list[IdempotencyRecord]:
        """Every record, for tests and inspection."""
        with self._lock:
            return list(self._records.values())

    # reserve and replace run once or twice per payment: the identity is built inline, and
    # the doubt set is touched only when a record enters or leaves UNKNOWN.
    async def reserve(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        ident = (record.scope, record.operation, record.reference)
        with self._lock:
            records = self._records
            current = records.get(ident)
            if current is not None:
                return current, False
            self._latest = max(self._latest, record.updated_at)
            if len(records) >= self._next_sweep:
                self._make_room()
            records[ident] = record  # a new identity: not in the doubt set (sweeps keep those)
            if record.state is RecordState.UNKNOWN:
                self._doubt.add(ident)
            return record, True

    async def get(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        return self._records.get((scope, operation, reference))

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        ident = (record.scope, record.operation, record.reference)
        with self._lock:
            current = self._records.get(ident)
            if current is None or current.key != expected_key:
                return False
            self._latest = max(self._latest, record.updated_at)
            self._records[ident] = record
            if record.state is RecordState.UNKNOWN:
                self._doubt.add(ident)
            elif current.state is RecordState.UNKNOWN:
                self._doubt.discard(ident)
            return True

    async def delete(self, scope: str, operation: str, reference: str, *,
                     expected_key: str | None = None) -> bool:
        ident = (scope, operation, reference)
        with self._lock:
            current = self._records.get(ident)
            if current is None or (expected_key is not None and current.key != expected_key):
                return False
            del self._records[ident]
            self._doubt.discard(ident)
            return True

    async def purge(self, older_than: float) -> int:
        with self._lock:
            old = [k for k, r in self._records.items() if r.updated_at < older_than]
            for ident in old:
                del self._records[ident]
                self._doubt.discard(ident)
            return len(old)

    # -- the sync face: the async methods above never suspend, so each runs to completion here

    def reserve_sync(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        return drive(self.reserve(record))

    def get_sync(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        return drive(self.get(scope, operation, reference))

    def replace_sync(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        return drive(self.replace(record, expected_key=expected_key))

    def delete_sync(self, scope: str, operation: str, reference: str, *,
                    expected_key: str | None = None) -> bool:
        return drive(self.delete(scope, operation, reference, expected_key=expected_key))

    def purge_sync(self, older_than: float) -> int:
        return drive(self.purge(older_than))
