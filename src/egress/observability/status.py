"""``egress.status()``: a snapshot of every named breaker, limiter, budget and bulkhead.

Named policies keep their state in a store (the process-wide ``MEMORY_STORE`` by default, which
is where the HTTP clients' default breakers live); this reads it without changing anything.
Unnamed policies (``store=None``, or a bulkhead without a name) are private to their pipeline and
are not listed. Reading never raises: a state that cannot be read is listed with ``"error"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from egress._clock import SYSTEM_CLOCK, Clock
from egress.events import sink_failures
from egress.stores.memory import MEMORY_STORE, MemoryStore

__all__ = ["Status", "status"]


@dataclass(frozen=True, slots=True)
class Status:
    """What :func:`status` found; :meth:`as_dict` is JSON-ready."""

    breakers: list[dict[str, Any]] = field(default_factory=list)
    limiters: list[dict[str, Any]] = field(default_factory=list)
    budgets: list[dict[str, Any]] = field(default_factory=list)
    bulkheads: list[dict[str, Any]] = field(default_factory=list)
    sink_failures: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"breakers": self.breakers, "limiters": self.limiters, "budgets": self.budgets,
                "bulkheads": self.bulkheads, "sink_failures": self.sink_failures}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _breaker(name: str, state: Any, now: float) -> dict[str, Any]:
    snap = state.snapshot(now)
    return {"name": name, "state": getattr(snap.state, "value", str(snap.state)),
            "failure_rate": snap.failure_rate, "slow_call_rate": snap.slow_call_rate,
            "calls": snap.calls, "failed_calls": snap.failed_calls,
            "not_permitted_calls": snap.not_permitted_calls, "retry_after": snap.retry_after,
            "consecutive_opens": snap.consecutive_opens}


def _limiter(name: str, state: Any, now: float) -> dict[str, Any]:
    rate, burst = state.settings
    paused_until = getattr(state, "_paused_until", -math.inf)
    tat = getattr(state, "_tat", -math.inf)
    return {"name": name, "rate": rate, "burst": burst,
            "paused_for": max(0.0, paused_until - now) if paused_until > now else 0.0,
            "backlog": _finite(max(0.0, tat - now))}


def _bulkhead(name: str, state: Any, now: float) -> dict[str, Any]:
    return {"name": name, "max_concurrent": state.max_concurrent, "max_queue": state.max_queue,
            "active": getattr(state, "_active", None),
            "queued": len(getattr(state, "_queue", ()))}


def _budget(name: str, state: Any, now: float) -> dict[str, Any]:
    return {"name": name, **state.snapshot(now)}


_READERS = (
    ("circuit_breaker", "breakers", _breaker),
    ("rate_limiter", "limiters", _limiter),
    ("retry_budget", "budgets", _budget),
    ("bulkhead", "bulkheads", _bulkhead),
)


def status(stores: Iterable[MemoryStore] = (MEMORY_STORE,), *,
           clock: Clock = SYSTEM_CLOCK) -> Status:
    """A snapshot of every named policy state in ``stores`` (read with ``clock``)."""
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
    return found
