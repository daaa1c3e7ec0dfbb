"""Webhook events: what a payment provider notifies, typed, free of vendor names.

(Not to be confused with :mod:`egress.events`, the telemetry egress itself emits.)

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
class _PaymentNotice(PaymentEvent):
    """A notification about one payment: ``payment`` is its state as the provider sent it."""

    payment: Payment


# The kinds that carry nothing beyond the payment differ only by their class: what domain code
# matches on. (``__slots__ = ()`` keeps them slotted, as the dataclass above is.)


class PaymentCreated(_PaymentNotice):
    """A payment was created."""

    __slots__ = ()


class PaymentSucceeded(_PaymentNotice):
    """The money was taken (captured)."""

    __slots__ = ()


class PaymentCanceled(_PaymentNotice):
    """The payment was canceled; nothing will be taken."""

    __slots__ = ()


class PaymentProcessing(_PaymentNotice):
    """The provider is still processing the payment."""

    __slots__ = ()


class PaymentRequiresAction(_PaymentNotice):
    """The customer must act (authenticate) before the payment can go on."""

    __slots__ = ()


class PaymentAuthorized(_PaymentNotice):
    """Funds are held and can be captured (``payment.amount_capturable``)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentFailed(_PaymentNotice):
    """An attempt to pay failed; the payment wants another payment method."""

    code: str | None = None
    decline_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundUpdated(PaymentEvent):
    """A refund was created or changed state."""

    refund: Refund


@dataclass(frozen=True, slots=True, kw_only=True)
class UnhandledEvent(PaymentEvent):
    """A verified notification of a type this port does not model; ``object_type`` is its
    object's kind (``"charge"``, ``"customer"``...)."""

    object_type: str | None = None
