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
from egress.payments.service import PaymentService, SyncPaymentService

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
