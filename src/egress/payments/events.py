"""Typed domain events a payment provider notifies (webhooks), free of vendor names.

An adapter verifies and parses the provider's notification into one of these; domain code
matches on the class. ``id`` is the provider's event id (the de-duplication key) and ``type`` its
own name for the event, kept for logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from egress.payments.models import Payment, Refund

__all__ = [
    "PaymentAuthorized",
    "PaymentCanceled",
    "PaymentCreated",
    "PaymentEvent",
    "PaymentFailed",
    "PaymentProcessing",
    "PaymentRequiresAction",
    "PaymentSucceeded",
    "RefundUpdated",
    "UnhandledEvent",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentEvent:
    """Base of every notification."""

    id: str
    type: str
    created: datetime
    livemode: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentCreated(PaymentEvent):
    payment: Payment


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentSucceeded(PaymentEvent):
    payment: Payment


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentFailed(PaymentEvent):
    """An attempt to pay failed; the payment wants another payment method."""

    payment: Payment
    code: str | None = None
    decline_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentCanceled(PaymentEvent):
    payment: Payment


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentProcessing(PaymentEvent):
    payment: Payment


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRequiresAction(PaymentEvent):
    payment: Payment


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentAuthorized(PaymentEvent):
    """Funds are held and can be captured (``payment.amount_capturable``)."""

    payment: Payment


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundUpdated(PaymentEvent):
    """A refund was created or changed state."""

    refund: Refund


@dataclass(frozen=True, slots=True, kw_only=True)
class UnhandledEvent(PaymentEvent):
    """A verified notification of a type this port does not model; ``object_type`` is its
    object's kind (``"charge"``, ``"customer"``...)."""

    object_type: str | None = None
