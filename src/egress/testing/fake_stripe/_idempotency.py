"""Stripe's idempotency layer, as a pure state machine over a clock.

For each ``Idempotency-Key`` the layer remembers the endpoint-and-parameters fingerprint of the
first request and, once the endpoint has run, the answer it gave (status, headers, body: a 500
included). Then, for a later request with the same key:

* first request still running -> :class:`InUse` (409 ``idempotency_key_in_use``; nothing saved);
* different endpoint or parameters -> :class:`Mismatch` (400 ``idempotency_error``);
* otherwise -> :class:`Replay` of the saved answer (sent with ``Idempotent-Replayed: true``).

If the endpoint refuses the request before executing (invalid parameters), the driver calls
:meth:`IdempotencyLayer.abandon` and the key is free again, as at Stripe. Keys older than
``ttl`` seconds are forgotten: the next request with that key is a brand-new request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_IDEMPOTENCY_TTL",
    "Decision",
    "IdempotencyLayer",
    "InUse",
    "MAX_KEY_LENGTH",
    "Mismatch",
    "Replay",
    "Started",
    "StoredResponse",
]

DEFAULT_IDEMPOTENCY_TTL = 24 * 3600.0
MAX_KEY_LENGTH = 255
_SWEEP_EVERY = 1024


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first answer given for a key, replayed byte for byte."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    request_id: str


@dataclass(frozen=True, slots=True)
class Started:
    """No live record: run the endpoint, then :meth:`~IdempotencyLayer.complete` or abandon."""


@dataclass(frozen=True, slots=True)
class Replay:
    response: StoredResponse


@dataclass(frozen=True, slots=True)
class InUse:
    """The first request with this key is still executing."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Same key, different endpoint or parameters."""


Decision = Started | Replay | InUse | Mismatch


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    created: float
    response: StoredResponse | None = None


class IdempotencyLayer:
    """Key records with a time-to-live. ``now`` is a monotonic clock in seconds."""

    def __init__(self, *, ttl: float = DEFAULT_IDEMPOTENCY_TTL,
                 now: Callable[[], float]) -> None:
        self.ttl = ttl
        self._now = now
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._begins = 0

    def begin(self, key: str, fingerprint: str) -> Decision:
        now = self._now()
        with self._lock:
            self._begins += 1
            if self._begins % _SWEEP_EVERY == 0:
                self._sweep(now)
            entry = self._entries.get(key)
            if entry is not None and now - entry.created >= self.ttl:
                del self._entries[key]
                entry = None
            if entry is None:
                self._entries[key] = _Entry(fingerprint, now)
                return Started()
            if entry.response is None:
                return InUse()
            if entry.fingerprint != fingerprint:
                return Mismatch()
            return Replay(entry.response)

    def complete(self, key: str, response: StoredResponse) -> None:
        """Save the answer of the request that :meth:`begin` started."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.response is None:
                entry.response = response

    def abandon(self, key: str) -> None:
        """The endpoint never started (refused up front): forget the key."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.response is None:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _sweep(self, now: float) -> None:
        expired = [k for k, e in self._entries.items()
                   if e.response is not None and now - e.created >= self.ttl]
        for key in expired:
            del self._entries[key]
