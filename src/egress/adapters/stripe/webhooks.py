"""Stripe webhooks: verify the ``Stripe-Signature``, parse into domain events, de-duplicate.

The scheme: the header is ``t=<unix seconds>,v1=<hex>[,v1=<hex>...]``; each ``v1`` is
HMAC-SHA256, keyed with the endpoint secret (the whole ``whsec_...`` string), over
``"<t>.<raw body>"``. Verification passes when any ``v1`` matches any of the given secrets
(several arrive while a secret is being rolled), every comparison in constant time, and the
timestamp is no older than ``tolerance`` seconds. Only then is the body parsed.

>>> event = verify_webhook(body, headers["Stripe-Signature"], secret)   # doctest: +SKIP

The raw body must be passed as received: re-serialised JSON will not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from egress._clock import SYSTEM_CLOCK, Clock
from egress._redacted import RevealedBytes
from egress._secret import Secret
from egress.adapters.stripe._parse import (
    parse_json,
    parse_payment_intent,
    parse_refund,
    unix_to_datetime,
)
from egress.adapters.stripe._requests import DEFAULT_REFERENCE_KEY
from egress.errors import (
    ConfigurationError,
    ResponseError,
    WebhookPayloadInvalid,
    WebhookSignatureMalformed,
    WebhookSignatureMismatch,
    WebhookSignatureMissing,
    WebhookTimestampStale,
)
from egress.payments.dedup import EventDeduplicator
from egress.payments.idempotency import IdempotencyStore
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

__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "StripeWebhooks",
    "parse_event",
    "sign_payload",
    "verify_signature",
    "verify_webhook",
]

#: Seconds a signature stays acceptable (Stripe's libraries use the same).
DEFAULT_TOLERANCE: Final = 300.0
SIGNATURE_HEADER: Final = "Stripe-Signature"
_SCHEME = "v1"
_MAX_HEADER = 8192
# Unix seconds have 10 digits; a longer "t=" is refused before int() (which raises a bare
# ValueError past 4300 digits) and before float arithmetic (which overflows).
_MAX_TIMESTAMP_DIGITS = 15

WebhookSecret = str | Secret
Secrets = WebhookSecret | Sequence[WebhookSecret]


def _secrets(secret: Secrets) -> list[bytes]:
    items = [secret] if isinstance(secret, str | Secret) else list(secret)
    keys: list[bytes] = []
    for item in items:
        value = item.reveal() if isinstance(item, Secret) else item
        if not isinstance(value, str) or not value:
            raise ConfigurationError("webhook secret must be a non-empty string or Secret")
        keys.append(RevealedBytes(value.encode("utf-8")))  # masked in any traceback's locals
    if not keys:
        raise ConfigurationError("at least one webhook secret is needed")
    return keys


def sign_payload(payload: bytes, secret: WebhookSecret, timestamp: int) -> str:
    """A ``Stripe-Signature`` header value for ``payload`` (tests and the fake provider)."""
    key = _secrets(secret)[0]
    digest = hmac.new(key, b"%d." % timestamp + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},{_SCHEME}={digest}"


def _parse_header(header: str | None) -> tuple[int, list[str]]:
    if header is None or not header.strip():
        raise WebhookSignatureMissing("no Stripe-Signature header")
    if len(header) > _MAX_HEADER:
        raise WebhookSignatureMalformed("Stripe-Signature header is too long")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            raise WebhookSignatureMalformed("Stripe-Signature header is not key=value pairs")
        if name == "t":
            if (timestamp is not None or not value.isascii() or not value.isdigit()
                    or len(value) > _MAX_TIMESTAMP_DIGITS):
                raise WebhookSignatureMalformed("Stripe-Signature timestamp is invalid")
            timestamp = int(value)
        elif name == _SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise WebhookSignatureMalformed("Stripe-Signature header has no timestamp")
    if not signatures:
        raise WebhookSignatureMissing("Stripe-Signature header has no v1 signature")
    return timestamp, signatures


def verify_signature(payload: bytes, header: str | None, secret: Secrets, *,
                     tolerance: float | None = DEFAULT_TOLERANCE,
                     now: float | None = None) -> int:
    """Check the signature only; returns the signed timestamp. Raises a :class:`WebhookError`.

    Every ``v1`` is compared with every expected digest using :func:`hmac.compare_digest`, and
    all comparisons run whatever the outcome, so timing reveals nothing. ``tolerance=None``
    disables the age check (only for replaying stored events in tests).
    """
    if not isinstance(payload, bytes | bytearray):
        raise TypeError("payload must be the raw request body as bytes")
    keys = _secrets(secret)
    timestamp, signatures = _parse_header(header)
    signed = b"%d." % timestamp + bytes(payload)
    expected = [hmac.new(key, signed, hashlib.sha256).hexdigest().encode("ascii")
                for key in keys]
    matched = False
    for candidate in signatures:
        given = candidate.encode("utf-8", errors="replace")
        for digest in expected:
            matched |= hmac.compare_digest(given, digest)
    if not matched:
        raise WebhookSignatureMismatch(
            "no Stripe-Signature v1 signature matches the payload (wrong secret, or the body "
            "was changed or re-serialised)")
    if tolerance is not None:
        if not (isinstance(tolerance, int | float) and math.isfinite(tolerance)
                and tolerance >= 0):
            raise ConfigurationError(f"tolerance must be >= 0 seconds, got {tolerance!r}")
        current = SYSTEM_CLOCK.wall() if now is None else now
        age = current - timestamp
        if age > tolerance:
            raise WebhookTimestampStale(
                f"Stripe-Signature timestamp is {age:.0f}s old (tolerance {tolerance:.0f}s)",
                age=age)
    return timestamp


# -- parsing -----------------------------------------------------------------------------------

_INTENT_EVENTS: Mapping[str, Callable[..., PaymentEvent]] = {
    "payment_intent.created": PaymentCreated,
    "payment_intent.succeeded": PaymentSucceeded,
    "payment_intent.payment_failed": PaymentFailed,
    "payment_intent.canceled": PaymentCanceled,
    "payment_intent.processing": PaymentProcessing,
    "payment_intent.requires_action": PaymentRequiresAction,
    "payment_intent.amount_capturable_updated": PaymentAuthorized,
}
_REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed"})


def parse_event(payload: bytes | Mapping[str, Any], *,
                reference_key: str = DEFAULT_REFERENCE_KEY) -> PaymentEvent:
    """A Stripe ``event`` object as a typed domain event (no signature check: see
    :func:`verify_webhook`). A malformed event raises :class:`~egress.errors.ResponseError`."""
    try:
        doc = parse_json(bytes(payload)) if isinstance(payload, bytes | bytearray) else payload
        if doc.get("object") != "event":
            raise ValueError("not an event object")
        event_id, type_ = doc.get("id"), doc.get("type")
        created = doc.get("created")
        if not isinstance(event_id, str) or not event_id or not isinstance(type_, str):
            raise ValueError("event id or type missing")
        if isinstance(created, bool) or not isinstance(created, int):
            raise ValueError("event created missing")
        data = doc.get("data")
        obj = data.get("object") if isinstance(data, Mapping) else None
        if not isinstance(obj, Mapping):
            raise ValueError("event data.object missing")
        common: dict[str, Any] = {"id": event_id, "type": type_,
                                  "created": unix_to_datetime(created),
                                  "livemode": doc.get("livemode") is True}
        kind = _INTENT_EVENTS.get(type_)
        if kind is not None and obj.get("object") == "payment_intent":
            payment = parse_payment_intent(obj, reference_key=reference_key)
            if type_ == "payment_intent.payment_failed":
                error = obj.get("last_payment_error")
                error = error if isinstance(error, Mapping) else {}
                code, decline = error.get("code"), error.get("decline_code")
                return PaymentFailed(payment=payment,
                                     code=code if isinstance(code, str) else None,
                                     decline_code=decline if isinstance(decline, str) else None,
                                     **common)
            return kind(payment=payment, **common)
        if type_ in _REFUND_EVENTS and obj.get("object") == "refund":
            return RefundUpdated(refund=parse_refund(obj, reference_key=reference_key),
                                 **common)
        object_type = obj.get("object")
        return UnhandledEvent(object_type=object_type if isinstance(object_type, str) else None,
                              **common)
    except ValueError as exc:
        raise ResponseError(f"webhook event cannot be parsed: {exc}") from None


def verify_webhook(payload: bytes, header: str | None, secret: Secrets,
                   tolerance: float | None = DEFAULT_TOLERANCE, *,
                   now: float | None = None,
                   reference_key: str = DEFAULT_REFERENCE_KEY) -> PaymentEvent:
    """Verify a delivery and parse it: the typed event, or a :class:`WebhookError`.

    ``secret`` may be a sequence of secrets (old and new, while rolling). ``now`` (Unix
    seconds) replaces the system clock for the age check. A validly signed payload that is
    not a usable event raises :class:`~egress.errors.WebhookPayloadInvalid` (a
    ``WebhookError`` and a ``ResponseError``).
    """
    verify_signature(payload, header, secret, tolerance=tolerance, now=now)
    try:
        return parse_event(payload, reference_key=reference_key)
    except ResponseError as exc:  # signed, but unusable: still "answer 400, trust nothing"
        raise WebhookPayloadInvalid(str(exc)) from None


class StripeWebhooks:
    """Verification, parsing and de-duplication by event id, for a webhook endpoint.

    >>> hooks = StripeWebhooks(secret=Secret("whsec_..."), store=store)   # doctest: +SKIP
    >>> processed = await hooks.handle(body, signature_header, on_event)   # doctest: +SKIP

    ``handle`` verifies (raising :class:`~egress.errors.WebhookError`: answer 400), then calls
    ``on_event`` once per event id: a redelivered event returns ``False`` without calling it.
    If ``on_event`` raises, the event is released so Stripe's next delivery is processed.
    """

    def __init__(self, *, secret: Secrets, store: IdempotencyStore,
                 tolerance: float | None = DEFAULT_TOLERANCE, clock: Clock = SYSTEM_CLOCK,
                 scope: str = "stripe-webhooks",
                 reference_key: str = DEFAULT_REFERENCE_KEY) -> None:
        _secrets(secret)  # validate now, not at the first delivery
        if tolerance is not None and not (isinstance(tolerance, int | float)
                                          and math.isfinite(tolerance) and tolerance >= 0):
            raise ConfigurationError(f"StripeWebhooks: tolerance must be >= 0, "
                                     f"got {tolerance!r}")
        self._secret = secret
        self.tolerance = tolerance
        self.clock = clock
        self.reference_key = reference_key
        self.dedup = EventDeduplicator(store, scope=scope, clock=clock)

    def __repr__(self) -> str:
        return f"StripeWebhooks(tolerance={self.tolerance!r}, dedup={self.dedup!r})"

    def verify(self, payload: bytes, header: str | None) -> PaymentEvent:
        return verify_webhook(payload, header, self._secret, self.tolerance,
                              now=self.clock.wall(), reference_key=self.reference_key)

    async def handle(self, payload: bytes, header: str | None,
                     on_event: Callable[[PaymentEvent], Awaitable[object]]) -> bool:
        """Verify, parse, and run ``on_event`` unless this event id was handled already."""
        event = self.verify(payload, header)
        return await self.dedup.process(event.id, on_event, event)

