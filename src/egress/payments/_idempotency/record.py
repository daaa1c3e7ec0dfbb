"""An idempotency record: one logical operation's key and what is known of its outcome; the key
derivation and its lifetimes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Final

from egress.payments._build import builder

__all__ = ["DEFAULT_MAX_KEY_AGE", "DEFAULT_SETTLE_AFTER", "MAX_KEY_LENGTH",
           "PROVIDER_KEY_LIFETIME", "IdempotencyRecord", "RecordState", "derive_key",
           "key_generation"]

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
        # Built by _build_record, not dataclasses.replace or __init__: this runs twice per
        # payment, and a frozen dataclass stores each field through object.__setattr__.
        return _build_record(
            scope=self.scope, operation=self.operation, reference=self.reference,
            key=self.key, generation=self.generation, fingerprint=self.fingerprint,
            state=state, created_at=self.created_at, updated_at=now,
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
        if cls is not IdempotencyRecord:  # a subclass gets its own __init__
            return cls(scope=scope, operation=operation, reference=reference,
                       key=derive_key(scope, operation, reference, 0), generation=0,
                       fingerprint=fingerprint, state=RecordState.PENDING, created_at=now,
                       updated_at=now)
        return _build_record(scope=scope, operation=operation, reference=reference,
                             key=derive_key(scope, operation, reference, 0), generation=0,
                             fingerprint=fingerprint, state=RecordState.PENDING,
                             created_at=now, updated_at=now, result_id=None)


_build_record: Callable[..., IdempotencyRecord] = builder(IdempotencyRecord)


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
