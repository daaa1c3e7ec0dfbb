"""The payment port: domain types and the PaymentService protocol, free of any vendor.

Domain code depends on this package only; vendors live under ``egress.adapters``. See
``docs/payments.md`` and ``docs/idempotency.md``.
"""

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
from egress.payments.events import (
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
from egress.payments.service import PaymentService

__all__ = [
    "CURRENCY_EXPONENTS",
    "DEFAULT_MAX_KEY_AGE",
    "DEFAULT_SETTLE_AFTER",
    "PROVIDER_KEY_LIFETIME",
    "AuthenticationFailed",
    "CancellationReason",
    "EventDeduplicator",
    "IdempotencyKeeper",
    "IdempotencyMismatch",
    "IdempotencyRecord",
    "IdempotencyStore",
    "InvalidPaymentRequest",
    "KeyedOperation",
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
    "RecordState",
    "Refund",
    "RefundReason",
    "RefundStatus",
    "RefundUpdated",
    "UnhandledEvent",
    "currency_exponent",
    "derive_key",
    "request_fingerprint",
]
