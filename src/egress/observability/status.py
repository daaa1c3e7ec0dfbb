"""``egress.status()``: a snapshot of every named breaker, limiter, budget and bulkhead, and of
the idempotency records in doubt.

Named policies keep their state in a store (the process-wide ``MEMORY_STORE`` by default, which
is where the HTTP clients' default breakers live); this reads it without changing anything.
Unnamed policies (``store=None``, or a bulkhead without a name) are private to their pipeline and
are not listed. Reading never raises: a state that cannot be read is listed with ``"error"``.

Idempotency records in doubt (``UNKNOWN``: a payment's outcome was not known and it has not been
reconciled yet) are read from the idempotency stores passed as ``idempotency=`` (the memory and
SQLite stores answer ``in_doubt_sync(limit)`` from an index): the count, and the ``limit``
oldest, each as operation, reference (masked, cut to 64 characters), key generation and age.
Never a key, a fingerprint or a result id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from egress._clock import SYSTEM_CLOCK, Clock
from egress.events import sink_failures
from egress.observability._redact import redact_text
from egress.stores.memory import MEMORY_STORE, MemoryStore

__all__ = ["DEFAULT_DOUBT_LIMIT", "DoubtQuery", "Status", "status"]

#: At most this many records in doubt are listed per store (all are counted).
DEFAULT_DOUBT_LIMIT = 20


@runtime_checkable
class DoubtQuery(Protocol):
    """An idempotency store that can list its records in doubt cheaply."""

    def in_doubt_sync(self, limit: int) -> tuple[int, list[Any]]: ...


@dataclass(frozen=True, slots=True)
class Status:
    """What :func:`status` found; :meth:`as_dict` is JSON-ready."""

    breakers: list[dict[str, Any]] = field(default_factory=list)
    limiters: list[dict[str, Any]] = field(default_factory=list)
    budgets: list[dict[str, Any]] = field(default_factory=list)
    bulkheads: list[dict[str, Any]] = field(default_factory=list)
    sink_failures: dict[str, int] = field(default_factory=dict)
    #: ``{"count": n, "records": [...]}``: idempotency records in doubt, over every store read.
    in_doubt: dict[str, Any] = field(default_factory=lambda: {"count": 0, "records": []})

    def as_dict(self) -> dict[str, Any]:
        return {"breakers": self.breakers, "limiters": self.limiters, "budgets": self.budgets,
                "bulkheads": self.bulkheads, "sink_failures": self.sink_failures,
                "in_doubt": self.in_doubt}


def _breaker(name: str, state: Any, now: float) -> dict[str, Any]:
    snap = state.snapshot(now)
    return {"name": name, "state": getattr(snap.state, "value", str(snap.state)),
            "failure_rate": snap.failure_rate, "slow_call_rate": snap.slow_call_rate,
            "calls": snap.calls, "failed_calls": snap.failed_calls,
            "not_permitted_calls": snap.not_permitted_calls, "retry_after": snap.retry_after,
            "consecutive_opens": snap.consecutive_opens}


def _limiter(name: str, state: Any, now: float) -> dict[str, Any]:
    rate, burst = state.settings
    read = getattr(state, "snapshot", None)  # a shared (Redis) state may not keep a backlog
    facts = read(now) if read is not None else {"paused_for": state.paused_for(now),
                                                 "backlog": None}
    return {"name": name, "rate": rate, "burst": burst, **facts}


def _bulkhead(name: str, state: Any, now: float) -> dict[str, Any]:
    return {"name": name, "max_concurrent": state.max_concurrent, "max_queue": state.max_queue,
            **state.snapshot(now)}


def _budget(name: str, state: Any, now: float) -> dict[str, Any]:
    return {"name": name, **state.snapshot(now)}


_READERS = (
    ("circuit_breaker", "breakers", _breaker),
    ("rate_limiter", "limiters", _limiter),
    ("retry_budget", "budgets", _budget),
    ("bulkhead", "bulkheads", _bulkhead),
)


def status(stores: Iterable[MemoryStore] = (MEMORY_STORE,), *,
           idempotency: Iterable[object] = (), doubt_limit: int = DEFAULT_DOUBT_LIMIT,
           clock: Clock = SYSTEM_CLOCK) -> Status:
    """A snapshot of every named policy state in ``stores`` (read with ``clock``), and of the
    records in doubt in the ``idempotency`` stores (at most ``doubt_limit`` listed per store)."""
    found = Status(sink_failures=sink_failures())
    now = clock.now()
    for store in stores:
        for (kind, name), state in sorted(store.items(), key=lambda item: item[0]):
            for prefix, bucket, read in _READERS:
                if kind.startswith(prefix):
                    try:
                        entry = read(name, state, now)
                    except Exception as exc:  # a status page must never break on one state
                        entry = {"name": name, "error": type(exc).__name__}
                    entry["kind"] = kind
                    getattr(found, bucket).append(entry)
                    break
    wall = clock.wall()
    for records in idempotency:
        _doubts(found.in_doubt, records, max(0, doubt_limit), wall)
    return found


def _doubts(into: dict[str, Any], store: object, limit: int, wall: float) -> None:
    name = type(store).__name__
    if not isinstance(store, DoubtQuery):
        into.setdefault("errors", []).append({"store": name, "error": "no in_doubt_sync"})
        return
    try:
        count, records = store.in_doubt_sync(limit)
    except Exception as exc:  # a status page must never break on one store
        into.setdefault("errors", []).append({"store": name, "error": type(exc).__name__})
        return
    into["count"] += count
    for record in records[:limit]:
        into["records"].append({
            "store": name, "operation": redact_text(str(record.operation))[:64],
            "reference": redact_text(str(record.reference))[:64],
            "generation": record.generation,
            "age": round(max(0.0, wall - record.updated_at), 3)})
