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
drives it. This module is the public face; each concern has its own room in
``egress.payments._idempotency``: ``record`` (the model, key derivation, lifetimes), ``store``
(the port), ``policy`` (:func:`decide`), ``events`` (telemetry).
"""

from __future__ import annotations

from egress.payments._idempotency.events import (
    IdempotencyKeyRenewed,
    IdempotencyKeyReused,
    IdempotentReplay,
    OutcomeUnknownRaised,
)
from egress.payments._idempotency.policy import Step, decide
from egress.payments._idempotency.record import (
    DEFAULT_MAX_KEY_AGE,
    DEFAULT_SETTLE_AFTER,
    MAX_KEY_LENGTH,
    PROVIDER_KEY_LIFETIME,
    IdempotencyRecord,
    RecordState,
    derive_key,
    key_generation,
)
from egress.payments._idempotency.store import IdempotencyStore

__all__ = [
    "DEFAULT_MAX_KEY_AGE",
    "DEFAULT_SETTLE_AFTER",
    "MAX_KEY_LENGTH",
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
