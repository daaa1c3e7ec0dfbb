"""What idempotency tells the event sink (telemetry: observability is data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from egress.events import Event

__all__ = ["IdempotencyKeyRenewed", "IdempotencyKeyReused", "IdempotentReplay",
           "OutcomeUnknownRaised"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IdempotencyKeyReused(Event):
    """A logical operation found its stored key and sends it again (a retry of a past call)."""

    kind: ClassVar[str] = "idempotency.key_reused"
    state: str
    age: float


@dataclass(frozen=True, slots=True, kw_only=True)
class IdempotencyKeyRenewed(Event):
    """The provider proved the previous key had no effect; a new generation was reserved."""

    kind: ClassVar[str] = "idempotency.key_renewed"
    generation: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IdempotentReplay(Event):
    """The provider answered with a replay of an earlier response to the same key."""

    kind: ClassVar[str] = "idempotency.replayed"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeUnknownRaised(Event):
    """Every attempt ended ambiguously: the caller got OutcomeUnknown; the record is UNKNOWN."""

    kind: ClassVar[str] = "payments.outcome_unknown"
