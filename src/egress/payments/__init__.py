"""The payment port: domain types and the PaymentService protocol, free of any vendor.

Domain code depends on this package only; vendors live under ``egress.adapters``. See
``docs/payments.md`` and ``docs/idempotency.md``.
"""

from __future__ import annotations

from egress._lazy import lazy_names

# Not ``from typing import TYPE_CHECKING``: see egress/__init__.py.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from egress.errors import (
        AuthenticationFailed,
        IdempotencyMismatch,
        InvalidPaymentRequest,
        OutcomeUnknown,
        PaymentDeclined,
        PaymentError,
        ProviderUnavailable,
    )
    from egress.payments.dedup import EventDeduplicator
    from egress.payments.idempotency import (
        DEFAULT_MAX_KEY_AGE,
        DEFAULT_SETTLE_AFTER,
        PROVIDER_KEY_LIFETIME,
        IdempotencyRecord,
        IdempotencyStore,
        RecordState,
        derive_key,
    )
    from egress.payments.keeper import IdempotencyKeeper, KeyedOperation
    from egress.payments.models import (
        CancellationReason,
        Payment,
        PaymentRequest,
        PaymentStatus,
        Refund,
        RefundReason,
        RefundStatus,
        request_fingerprint,
    )
    from egress.payments.money import CURRENCY_EXPONENTS, Money, currency_exponent
    from egress.payments.service import PaymentService, SyncPaymentService
    from egress.payments.webhook_events import (
        PaymentAuthorized,
        PaymentCanceled,
        PaymentCreated,
        PaymentEvent,
        PaymentFailed,
        PaymentProcessing,
        PaymentRequiresAction,
        PaymentSucceeded,
        RefundUpdated,
        UnhandledEvent,
    )

# Every name loads on first use (PEP 562), as in egress/__init__.py: domain code that takes
# only Money or PaymentRequest loads neither the webhook events nor the idempotency keeper.
_LAZY = {
    "AuthenticationFailed": "egress.errors",
    "CancellationReason": "egress.payments.models",
    "currency_exponent": "egress.payments.money",
    "CURRENCY_EXPONENTS": "egress.payments.money",
    "DEFAULT_MAX_KEY_AGE": "egress.payments.idempotency",
    "DEFAULT_SETTLE_AFTER": "egress.payments.idempotency",
    "derive_key": "egress.payments.idempotency",
    "EventDeduplicator": "egress.payments.dedup",
    "IdempotencyKeeper": "egress.payments.keeper",
    "IdempotencyMismatch": "egress.errors",
    "IdempotencyRecord": "egress.payments.idempotency",
    "IdempotencyStore": "egress.payments.idempotency",
    "InvalidPaymentRequest": "egress.errors",
    "KeyedOperation": "egress.payments.keeper",
    "Money": "egress.payments.money",
    "OutcomeUnknown": "egress.errors",
    "Payment": "egress.payments.models",
    "PaymentAuthorized": "egress.payments.webhook_events",
    "PaymentCanceled": "egress.payments.webhook_events",
    "PaymentCreated": "egress.payments.webhook_events",
    "PaymentDeclined": "egress.errors",
    "PaymentError": "egress.errors",
    "PaymentEvent": "egress.payments.webhook_events",
    "PaymentFailed": "egress.payments.webhook_events",
    "PaymentProcessing": "egress.payments.webhook_events",
    "PaymentRequest": "egress.payments.models",
    "PaymentRequiresAction": "egress.payments.webhook_events",
    "PaymentService": "egress.payments.service",
    "PaymentStatus": "egress.payments.models",
    "PaymentSucceeded": "egress.payments.webhook_events",
    "PROVIDER_KEY_LIFETIME": "egress.payments.idempotency",
    "ProviderUnavailable": "egress.errors",
    "RecordState": "egress.payments.idempotency",
    "Refund": "egress.payments.models",
    "RefundReason": "egress.payments.models",
    "RefundStatus": "egress.payments.models",
    "RefundUpdated": "egress.payments.webhook_events",
    "request_fingerprint": "egress.payments.models",
    "SyncPaymentService": "egress.payments.service",
    "UnhandledEvent": "egress.payments.webhook_events",
}

# The port: what domain code and adapters' users need. The keeper machinery adapters are built
# from (IdempotencyKeeper, KeyedOperation, derive_key, request_fingerprint, IdempotencyRecord,
# RecordState, the key-age constants) is importable here for older code but not public: take it
# from egress.payments.keeper / egress.payments.idempotency / egress.payments.models.
__all__ = [
    "CURRENCY_EXPONENTS",
    "AuthenticationFailed",
    "CancellationReason",
    "EventDeduplicator",
    "IdempotencyMismatch",
    "IdempotencyStore",
    "InvalidPaymentRequest",
    "Money",
    "OutcomeUnknown",
    "Payment",
    "PaymentAuthorized",
    "PaymentCanceled",
    "PaymentCreated",
    "PaymentDeclined",
    "PaymentError",
    "PaymentEvent",
    "PaymentFailed",
    "PaymentProcessing",
    "PaymentRequest",
    "PaymentRequiresAction",
    "PaymentService",
    "PaymentStatus",
    "PaymentSucceeded",
    "ProviderUnavailable",
    "Refund",
    "RefundReason",
    "RefundStatus",
    "RefundUpdated",
    "SyncPaymentService",
    "UnhandledEvent",
    "currency_exponent",
]


__getattr__, __dir__ = lazy_names(globals(), _LAZY)
