"""The port's value types: what domain code sends (PaymentRequest) and gets back (Payment, Refund).

Every type is frozen and validated when built, so an invalid request never reaches an adapter.
None of them holds card data: a payment method is referred to by the provider's id
(``pm_...``), never by a card number; a ``payment_method`` or ``customer`` that looks like a card
number is refused without being echoed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from types import MappingProxyType

from egress.errors import InvalidPaymentRequest
from egress.payments._build import filler
from egress.payments.money import Money

__all__ = [
    "MAX_REFERENCE_LENGTH",
    "CancellationReason",
    "Payment",
    "PaymentRequest",
    "PaymentStatus",
    "Refund",
    "RefundReason",
    "RefundStatus",
    "latest_for_reference",
    "looks_like_card_number",
    "request_fingerprint",
]

#: The longest ``reference`` accepted (it travels in provider metadata).
MAX_REFERENCE_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 1000

_PAN = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def looks_like_card_number(text: str) -> bool:
    """Whether ``text`` holds a run of 13 to 19 digits (optionally spaced): a possible PAN."""
    return _PAN.search(text) is not None


class PaymentStatus(Enum):
    """Where a payment stands. The same seven states every PaymentIntent-style provider uses."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    CANCELED = "canceled"
    SUCCEEDED = "succeeded"

    @property
    def is_final(self) -> bool:
        """Succeeded or canceled: nothing more will happen to this payment."""
        return self in (PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED)


class CancellationReason(Enum):
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    ABANDONED = "abandoned"


class RefundStatus(Enum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RefundReason(Enum):
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    REQUESTED_BY_CUSTOMER = "requested_by_customer"


def check_reference(reference: object, what: str = "reference") -> str:
    """Validate a caller's reference (an order id, a refund id): 1-200 printable characters."""
    if not isinstance(reference, str) or not reference:
        raise InvalidPaymentRequest(f"{what} must be a non-empty string", param=what)
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidPaymentRequest(f"{what} is longer than {MAX_REFERENCE_LENGTH} characters",
                                    param=what)
    if not reference.isprintable():
        raise InvalidPaymentRequest(f"{what} contains control characters", param=what)
    return reference


def _id_problem(value: str | None, what: str) -> str | None:
    """What is wrong with a provider id, or ``None``. It returns rather than raises, so the
    value (maybe card data typed into the wrong field) is in no frame of the error's traceback
    but the caller's own."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 255 or not value.isprintable():
        return f"{what} must be a provider id (1-255 printable characters)"
    if looks_like_card_number(value) or value.split() != [value]:  # any whitespace, in C
        # Never echo it: it may be card data typed into the wrong field.
        return f"{what} must be a provider id such as 'pm_...', not card data"
    return None


def _shown_id(value: str | None) -> str | None:
    return "[card data]" if isinstance(value, str) and looks_like_card_number(value) else value


#: A request's metadata when none is given: empty and read-only, so one serves every request.
_NO_METADATA: Mapping[str, str] = MappingProxyType({})


def _freeze_metadata(metadata: Mapping[str, str]) -> Mapping[str, str]:
    if not isinstance(metadata, Mapping):
        raise InvalidPaymentRequest("metadata must be a mapping of str to str", param="metadata")
    items: dict[str, str] = {}
    for key in sorted(metadata):
        value = metadata[key]
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise InvalidPaymentRequest("metadata keys must be non-empty str and values str",
                                        param="metadata")
        items[key] = value
    return MappingProxyType(items)


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class PaymentRequest:
    """A payment to make.

    ``reference`` is the caller's own id for this payment (an order id). It makes ``create``
    idempotent: the same reference is the same payment, however often (and in however many
    processes) it is asked for, and a different request under the same reference is refused.

    ``confirm=True`` (the default) creates and confirms in one call, which needs a
    ``payment_method``. ``capture=False`` only authorizes: the payment ends in
    ``REQUIRES_CAPTURE`` and :meth:`PaymentService.capture` takes the money later.
    """

    amount: Money
    reference: str
    customer: str | None = None
    payment_method: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    confirm: bool = True
    capture: bool = True

    # Written out (init=False): the same keywords, defaults and checks as the generated
    # __init__ with a __post_init__, but the checked fields are stored by _fill_request, which
    # skips object.__setattr__ per field (one request per payment; see egress.payments._build).
    def __init__(self, *, amount: Money, reference: str, customer: str | None = None,
                 payment_method: str | None = None, description: str | None = None,
                 metadata: Mapping[str, str] = _NO_METADATA, confirm: bool = True,
                 capture: bool = True) -> None:
        if not isinstance(amount, Money):
            raise InvalidPaymentRequest("amount must be a Money", param="amount")
        if amount.is_zero():
            raise InvalidPaymentRequest("amount must be greater than zero", param="amount")
        check_reference(reference)
        for what, value in (("customer", customer), ("payment_method", payment_method)):
            problem = _id_problem(value, what)
            if problem is not None:
                raise InvalidPaymentRequest(problem, param=what)
        if description is not None:
            if not isinstance(description, str):
                raise InvalidPaymentRequest("description must be a string", param="description")
            if len(description) > MAX_DESCRIPTION_LENGTH:
                raise InvalidPaymentRequest(
                    f"description is longer than {MAX_DESCRIPTION_LENGTH} characters",
                    param="description")
        frozen = _NO_METADATA if metadata is _NO_METADATA else _freeze_metadata(metadata)
        if not isinstance(confirm, bool) or not isinstance(capture, bool):
            raise InvalidPaymentRequest("confirm and capture must be bool")
        if confirm and payment_method is None:
            raise InvalidPaymentRequest("confirm=True needs a payment_method",
                                        param="payment_method")
        _fill_request(self, amount=amount, reference=reference, customer=customer,
                      payment_method=payment_method, description=description, metadata=frozen,
                      confirm=confirm, capture=capture)

    def __repr__(self) -> str:  # dataclass keeps an explicit __repr__; never card data
        return (f"PaymentRequest(amount={self.amount!r}, reference={self.reference!r}, "
                f"customer={_shown_id(self.customer)!r}, "
                f"payment_method={_shown_id(self.payment_method)!r}, "
                f"confirm={self.confirm!r}, capture={self.capture!r})")

    def canonical(self) -> bytes:
        """A canonical, provider-neutral encoding: the same request always gives the same bytes.

        Used to fingerprint the request for idempotency (see :func:`request_fingerprint`). The
        bytes are JSON with sorted keys, no spaces and ASCII escapes, exactly what
        ``json.dumps(..., sort_keys=True, separators=(",", ":"))`` makes of the fields: they are
        stored with every idempotency record, so they must never change. Written out by hand
        (once per payment; a test holds it to json.dumps byte for byte), since the keys and
        their types are fixed.
        """
        q = _quote
        metadata = self.metadata
        pairs = ",".join([f"{q(k)}:{q(metadata[k])}" for k in sorted(metadata)]) if metadata else ""
        return (f'{{"amount":"{self.amount.amount!s}",'
                f'"capture":{"true" if self.capture else "false"},'
                f'"confirm":{"true" if self.confirm else "false"},'
                f'"currency":{q(self.amount.currency)},"customer":{_json_str(self.customer)},'
                f'"description":{_json_str(self.description)},"metadata":{{{pairs}}},'
                f'"payment_method":{_json_str(self.payment_method)},'
                f'"reference":{q(self.reference)}}}').encode("ascii")


_fill_request = filler(PaymentRequest)
# JSON's own string quoting with ASCII escapes (json's C helper, what json.dumps uses).
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _json_str(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def request_fingerprint(operation: str, *parts: object) -> str:
    """SHA-256 (hex) of an operation and its canonical parameters.

    ``parts`` are bytes (a :meth:`PaymentRequest.canonical`) or JSON-encodable values. Two calls
    with the same fingerprint are the same logical request.
    """
    if len(parts) == 1 and type(parts[0]) is bytes:  # a create: one hash of the joined bytes
        return hashlib.sha256(b"".join((operation.encode("utf-8"), b"\x00", parts[0]))
                              ).hexdigest()
    digest = hashlib.sha256(operation.encode("utf-8"))
    for part in parts:
        digest.update(b"\x00")
        if isinstance(part, bytes):
            digest.update(part)
        else:
            digest.update(json.dumps(part, sort_keys=True, separators=(",", ":"),
                                     default=str).encode("utf-8"))
    return digest.hexdigest()


def _check_created(created: datetime) -> None:
    if not isinstance(created, datetime) or created.tzinfo is None:
        raise ValueError("created must be an aware datetime")


@dataclass(frozen=True, slots=True, kw_only=True)
class Payment:
    """A payment as the provider sees it. ``created`` is an aware UTC datetime."""

    id: str
    status: PaymentStatus
    amount: Money
    created: datetime
    reference: str | None = None
    amount_received: Money | None = None
    amount_capturable: Money | None = None
    customer: str | None = None
    payment_method: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: The decline code of the last failed attempt (``"insufficient_funds"``), if any.
    decline_code: str | None = None
    cancellation_reason: str | None = None

    def __post_init__(self) -> None:
        _check_created(self.created)
        object.__setattr__(self, "created", self.created.astimezone(UTC))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def is_failed_attempt(self) -> bool:
        """A confirmation was declined and nothing else happened: no money moved."""
        return (self.status is PaymentStatus.REQUIRES_PAYMENT_METHOD
                and self.decline_code is not None)


def latest_for_reference(payments: Iterable[Payment], reference: str, *,
                         skip_failed: bool = False) -> Payment | None:
    """The newest payment carrying ``reference`` (optionally ignoring declined attempts).

    After a decline and a successful retry under the same reference, the newest is the retry.
    Reconciliation uses ``skip_failed=True``: a declined attempt is proof that no money moved.
    Ties on ``created`` go to the payment met first (providers list newest first).
    """
    best: Payment | None = None
    for payment in payments:
        if payment.reference != reference or (skip_failed and payment.is_failed_attempt):
            continue
        if best is None or payment.created > best.created:
            best = payment
    return best


@dataclass(frozen=True, slots=True, kw_only=True)
class Refund:
    """Money returned for a payment. ``reference`` is the caller's id for this refund."""

    id: str
    payment_id: str
    amount: Money
    status: RefundStatus
    created: datetime
    reference: str | None = None
    reason: RefundReason | None = None
    failure_reason: str | None = None

    def __post_init__(self) -> None:
        _check_created(self.created)
        object.__setattr__(self, "created", self.created.astimezone(UTC))
