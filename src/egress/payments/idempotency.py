"""Durable idempotency: records, the store protocol, key derivation and the pure decision.

One **logical operation** (create the payment for order ``o-1``; capture payment ``pi_1``; refund
``r-7``) is named by ``(scope, operation, reference)``. Before the first byte of it is sent, a
record holding its idempotency key and the fingerprint of its canonical request is written to an
:class:`IdempotencyStore`. Every later attempt (a retry, the same call in another process, the
same call after a crash and restart) finds the record and sends the same key, so the provider
replays its first answer instead of acting twice.

A record moves through these states::

    (none) --reserve--> PENDING --answer--------------> SUCCEEDED   result_id kept
                           |  \\--proof of no effect--> FAILED      next call: new key
                           \\--every attempt ambiguous-> UNKNOWN     reconcile, or call again

Keys are **derived** from the scope, the operation, the reference and a generation number, so
even a lost store cannot make the same reference charge twice within the provider's key
lifetime: the same derivation gives the same key. The generation moves on only when the provider
has proven that nothing happened (a decline, an invalid request, or reconciliation).

:func:`decide` is the whole policy, pure; :class:`~egress.payments.keeper.IdempotencyKeeper`
drives it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import Enum
from typing import ClassVar, Final, Protocol, runtime_checkable

from egress.errors import IdempotencyMismatch
from egress.events import Event

__all__ = [
    "DEFAULT_MAX_KEY_AGE",
    "DEFAULT_SETTLE_AFTER",
    "PROVIDER_KEY_LIFETIME",
    "IdempotencyRecord",
    "IdempotencyStore",
    "IdempotencyKeyRenewed",
    "IdempotencyKeyReused",
    "IdempotentReplay",
    "OutcomeUnknownRaised",
    "RecordState",
    "Step",
    "decide",
    "derive_key",
    "key_generation",
]

#: How long providers keep a key at least (Stripe: "at least 24 hours").
PROVIDER_KEY_LIFETIME: Final = 24 * 3600.0
#: A stored key is re-sent blindly only while younger than this: an hour of margin below the
#: provider's lifetime, so an attempt that starts just in time also ends in time.
DEFAULT_MAX_KEY_AGE: Final = 23 * 3600.0
#: Absence at the provider is trusted only this long after the last attempt could have been
#: sent, so a request still in flight is not mistaken for a request never made.
DEFAULT_SETTLE_AFTER: Final = 600.0

MAX_KEY_LENGTH: Final = 255


class RecordState(Enum):
    PENDING = "pending"
    """The key is reserved; the request may have been sent (or the process died around it)."""
    SUCCEEDED = "succeeded"
    """The provider answered; ``result_id`` names the object it made or changed."""
    FAILED = "failed"
    """The provider proved nothing happened (a decline, an invalid request): a new key is fine."""
    UNKNOWN = "unknown"
    """Every attempt ended ambiguously; reconcile (or call again with the same request)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IdempotencyRecord:
    """One logical operation's key and what is known of its outcome.

    Times are wall-clock Unix seconds (the record outlives the process). ``created_at`` is when
    *this key* was reserved; the key's age decides whether it may still be re-sent.
    """

    scope: str
    operation: str
    reference: str
    key: str
    generation: int
    fingerprint: str
    state: RecordState
    created_at: float
    updated_at: float
    result_id: str | None = None

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.scope, self.operation, self.reference)

    def age(self, now: float) -> float:
        return now - self.created_at

    def with_state(self, state: RecordState, now: float,
                   result_id: str | None = None) -> IdempotencyRecord:
        return replace(self, state=state, updated_at=now,
                       result_id=result_id if result_id is not None else self.result_id)

    def renewed(self, fingerprint: str, now: float) -> IdempotencyRecord:
        """The next generation: a new key, PENDING, for a request proven never to have acted."""
        generation = self.generation + 1
        return replace(self, generation=generation, fingerprint=fingerprint,
                       key=derive_key(self.scope, self.operation, self.reference, generation),
                       state=RecordState.PENDING, created_at=now, updated_at=now,
                       result_id=None)

    @classmethod
    def new(cls, scope: str, operation: str, reference: str, fingerprint: str,
            now: float) -> IdempotencyRecord:
        return cls(scope=scope, operation=operation, reference=reference,
                   key=derive_key(scope, operation, reference, 0), generation=0,
                   fingerprint=fingerprint, state=RecordState.PENDING, created_at=now,
                   updated_at=now)


def derive_key(scope: str, operation: str, reference: str, generation: int) -> str:
    """The idempotency key of a logical operation: deterministic, opaque, at most 255 chars.

    The reference is hashed, so the key never shows it and its length is bounded.
    """
    digest = hashlib.sha256("\x00".join((scope, operation, reference)).encode("utf-8"))
    return f"egress-{operation[:24]}-{digest.hexdigest()[:40]}-g{generation}"


def key_generation(key: str) -> int | None:
    """The generation :func:`derive_key` wrote into ``key`` (``None`` for a foreign key)."""
    head, sep, tail = key.rpartition("-g")
    if not (sep and head.startswith("egress-") and tail.isascii() and tail.isdigit()
            and len(tail) <= 9):
        return None
    return int(tail)


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


class Step(Enum):
    """What to do with a logical operation, given its stored record."""

    SEND = "send"  # send (again) with the stored key
    RETURN = "return"  # it already succeeded: fetch the stored result
    SETTLE = "settle"  # too old to re-send blindly: ask the provider first
    RENEW = "renew"  # proven to have had no effect: a new key, then send


def decide(record: IdempotencyRecord, *, fingerprint: str, now: float,
           max_age: float = DEFAULT_MAX_KEY_AGE) -> Step:
    """The idempotency policy, pure.

    Raises :class:`IdempotencyMismatch` when the same reference arrives with a different
    request while the first one counts (pending, unknown or succeeded): nothing is sent. After a
    proven failure (a decline) the reference may be tried again with other parameters, under a
    new key.
    """
    if record.state is RecordState.FAILED:
        return Step.RENEW
    if record.fingerprint != fingerprint:
        raise IdempotencyMismatch(
            f"reference already used for a different {record.operation} request "
            f"(state {record.state.value}); nothing was sent"
        )
    if record.state is RecordState.SUCCEEDED:
        return Step.RETURN
    if record.age(now) > max_age:
        return Step.SETTLE
    return Step.SEND


# -- events (observability is data) -----------------------------------------------------------


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
