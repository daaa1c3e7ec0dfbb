"""Stripe's failures, classified and translated in ONE place.

Two decisions live here and nowhere else:

* :func:`stripe_retry_hook`: which failed attempt is tried again, under the same idempotency key
  and the same body bytes. Network errors (the seam's defaults), 409 (a concurrent request with
  the same key), 5xx, 429 (rate limited or ``lock_timeout``: refused before Stripe's idempotency
  layer); ``Stripe-Should-Retry`` overrides both ways; every other 4xx, and declines above all,
  never.
* :func:`to_domain_error`: the exception the caller gets once the attempts are over. A failure
  that may have reached Stripe's endpoint on a request that changes something is
  :class:`~egress.errors.OutcomeUnknown`, never a guess.

**The settlement rule.** Once any attempt of a key may have reached Stripe (sent, answer lost),
only Stripe's own replay of the key's stored outcome (an error object answered with
``Idempotent-Replayed: true``) is a decision about that key. Any other error answer (a load
balancer's 408, a proxy's 413, a first-hand 400) says nothing about the earlier attempt, which may
have charged: the caller gets :class:`~egress.errors.OutcomeUnknown` and the key is kept. An
answer that is not a well-formed Stripe error object (a JSON ``error`` object and a
``Request-Id``) is never taken for a Stripe decision at all.

Messages carry Stripe's ``type``, ``code``, ``decline_code`` and ``param``, and its ``message``
only after redaction (no card numbers, keys or client secrets survive); never the request body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from egress.errors import (
    AuthenticationFailed,
    DeadlineExceededError,
    EgressError,
    IdempotencyMismatch,
    InvalidPaymentRequest,
    OutcomeUnknown,
    PaymentDeclined,
    PaymentError,
    ProviderUnavailable,
    RejectedError,
    ResponseError,
    StatusError,
    TransportError,
    UpstreamError,
)

__all__ = [
    "AttemptLog",
    "StripeError",
    "attempt_log",
    "parse_stripe_error",
    "redact_message",
    "stripe_retry_hook",
    "to_domain_error",
]

_MESSAGE_LIMIT = 300
_SECRETISH = (
    re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]+"),
    re.compile(r"\bwhsec_[A-Za-z0-9]+"),
    re.compile(r"\b[A-Za-z0-9]+_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"),  # client secrets
    re.compile(r"(?<![A-Za-z0-9])\d(?:[ -]?\d){11,18}(?![A-Za-z0-9])"),  # card-number shaped
)


def redact_message(text: str) -> str:
    """Stripe's human message, with anything secret-shaped masked and its length bounded."""
    for pattern in _SECRETISH:
        text = pattern.sub("[redacted]", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text[:_MESSAGE_LIMIT]


@dataclass(frozen=True, slots=True)
class StripeError:
    """The safe facts of a Stripe error response."""

    status: int
    type: str | None = None
    code: str | None = None
    decline_code: str | None = None
    param: str | None = None
    message: str | None = None
    request_id: str | None = None
    should_retry: bool | None = None
    #: A JSON ``error`` object and a ``Request-Id``: Stripe's answer, not an edge's (a proxy or
    #: load balancer in front of Stripe answers HTML, or JSON of its own, without Request-Id).
    well_formed: bool = False
    #: ``Idempotent-Replayed: true``: Stripe replays the stored outcome of this key.
    replayed: bool = False

    def describe(self) -> str:
        parts = [f"Stripe {self.status}"]
        for label, value in (("type", self.type), ("code", self.code),
                             ("decline_code", self.decline_code), ("param", self.param)):
            if value:
                parts.append(f"{label}={value}")
        text = " ".join(parts)
        if self.message:
            text += f": {self.message}"
        if self.request_id:
            text += f" (request {self.request_id})"
        return text


# A Stripe parameter path: snake_case names, nested by [name] or a short [index].
_PARAM = re.compile(r"[a-z_][a-z0-9_]{0,60}(?:\[(?:[a-z_][a-z0-9_]{0,60}|[0-9]{1,3})?\]){0,8}")
# Only card errors carry a message Stripe writes for the cardholder (fixed texts such as "Your
# card was declined."); other messages echo request values ("Invalid email address: ..."), so
# they never reach str(exc): allow-listed by type, not redacted by shape (issue 10 §6).
_MESSAGE_TYPES = frozenset({"card_error"})


def _safe_param(value: Any) -> str | None:
    return value if isinstance(value, str) and _PARAM.fullmatch(value) else None


def _safe_token(value: Any) -> str | None:
    # Codes, types and params are identifiers: keep them only if they look like one.
    if isinstance(value, str) and 0 < len(value) <= 100 and re.fullmatch(r"[\w.\[\]-]+", value):
        return value
    return None


def parse_stripe_error(exc: StatusError) -> StripeError:
    """The facts of a Stripe error response (tolerant: a non-JSON body gives just the status)."""
    body: Mapping[str, Any] = {}
    has_error_object = False
    content = getattr(exc.response, "content", None)
    if isinstance(content, bytes | bytearray):
        try:
            doc = json.loads(content)
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, Mapping) and isinstance(doc.get("error"), Mapping):
            body = doc["error"]
            has_error_object = True
    header = exc.header("stripe-should-retry")
    should_retry = {"true": True, "false": False}.get((header or "").strip().lower())
    kind = body.get("type")
    message = body.get("message") if isinstance(kind, str) and kind in _MESSAGE_TYPES else None
    well_formed = has_error_object and bool(exc.request_id)
    replayed = (exc.header("idempotent-replayed") or "").strip().lower() == "true"
    return StripeError(
        status=exc.status_code,
        type=_safe_token(body.get("type")),
        code=_safe_token(body.get("code")),
        decline_code=_safe_token(body.get("decline_code")),
        param=_safe_param(body.get("param")),
        message=redact_message(message) if isinstance(message, str) else None,
        request_id=exc.request_id,
        should_retry=should_retry,
        well_formed=well_formed,
        replayed=well_formed and replayed,
    )


# -- attempts of one logical call --------------------------------------------------------------


class AttemptLog:
    """What the attempts of one call showed: did any possibly reach Stripe's endpoint?"""

    __slots__ = ("ambiguous", "attempts")

    def __init__(self) -> None:
        self.attempts = 0
        self.ambiguous = False

    def note(self, exc: UpstreamError) -> None:
        self.attempts += 1
        if _maybe_processed(exc):
            self.ambiguous = True


attempt_log: ContextVar[AttemptLog | None] = ContextVar("egress_stripe_attempts", default=None)


def _maybe_processed(exc: BaseException) -> bool:
    """Whether Stripe may have executed the request despite this failure."""
    if isinstance(exc, TransportError):
        return exc.sent
    if isinstance(exc, ResponseError | DeadlineExceededError):
        return True
    if isinstance(exc, StatusError):
        # 5xx can be replayed-and-saved failures of an executed request; 409 means a request
        # with this key is executing right now. Stripe's 4xx answers come before execution or
        # are final; an edge's page (not a Stripe error object) may follow a forwarded request.
        return (exc.status_code >= 500 or exc.status_code == 409
                or not parse_stripe_error(exc).well_formed)
    return False


def stripe_retry_hook(exc: UpstreamError, info: Any) -> bool | None:
    """Stripe's retry rules for :class:`egress.http.ApiClient` (``retry_hook=``).

    ``True`` retries, ``False`` never, ``None`` leaves the seam's defaults (transport errors:
    retried when nothing was sent, or when the request is replay-safe, i.e. carries a key).
    """
    log = attempt_log.get()
    if log is not None:
        log.note(exc)
    replay_safe = bool(getattr(info, "replay_safe", False))
    if not isinstance(exc, StatusError):
        return None
    error = parse_stripe_error(exc)
    status = exc.status_code
    if status != 409 and (status == 402 or error.type in ("card_error", "idempotency_error")):
        return False  # a decline, or a key reused with other parameters: never again
    verdict: bool
    if error.should_retry is not None:
        verdict = error.should_retry
    elif status == 409:
        # A request with this key is running (Stripe types it idempotency_error too).
        verdict = True
    elif status == 429:
        # Stripe's rate limiter runs before its idempotency layer: nothing ran, so the same key
        # may be sent again (lock_timeout included). Stripe asks for exponential backoff, which
        # Retry gives; a Retry-After hint is honoured and pauses the shared limiter.
        verdict = True
    else:
        verdict = status >= 500
    if verdict and not replay_safe:
        return None  # without a key a resend could act twice: leave it to the safe defaults
    return verdict


# -- the caller's exception --------------------------------------------------------------------


def to_domain_error(exc: BaseException, *, operation: str, changes_state: bool,
                    reference: str = "", idempotency_key: str | None = None,
                    ambiguous: bool = False) -> PaymentError:
    """Translate the final failure of a call into the port's error (``raise ... from exc``).

    ``changes_state`` is true for POSTs; ``ambiguous`` says an earlier attempt of the same
    logical call may have reached Stripe (a retried timeout, or a key reused from a previous
    call), so a last failure that proves nothing about it still ends in ``OutcomeUnknown``.
    """
    if isinstance(exc, PaymentError):
        return exc
    retry_after = exc.retry_after if isinstance(exc, EgressError) else None

    def unknown(why: str) -> PaymentError:
        if changes_state and idempotency_key is not None:
            return OutcomeUnknown(
                f"{operation}: {why}; the request may have been processed. Call it again with "
                f"the same reference (same key: no double effect) or reconcile",
                idempotency_key=idempotency_key, reference=reference, operation=operation)
        return ProviderUnavailable(f"{operation}: {why}", retry_after=retry_after)

    if isinstance(exc, StatusError):
        error = parse_stripe_error(exc)
        text = f"{operation}: {error.describe()}"
        status = exc.status_code
        if status >= 500 or status == 409:
            return unknown(error.describe())
        if ambiguous and not error.replayed:
            # An earlier attempt of this key may have acted, and this answer is not Stripe's
            # replay of the key's outcome: an edge's 408/413, or a first-hand refusal that says
            # nothing about the earlier attempt. Not proof that nothing happened.
            return unknown(error.describe())
        if not error.well_formed:
            # Not Stripe speaking (a proxy, a load balancer, a WAF): never a decline, never
            # "your request is wrong". Whether it forwarded the request first is unknowable.
            return unknown(f"{error.describe()} (not a Stripe error object)")
        if error.type == "idempotency_error":
            return IdempotencyMismatch(text)
        if status == 402 or error.type == "card_error":
            return PaymentDeclined(text, decline_code=error.decline_code, code=error.code)
        if status in (401, 403):
            return AuthenticationFailed(text)
        if status == 429:
            return ProviderUnavailable(text, retry_after=exc.retry_after)
        return InvalidPaymentRequest(text, param=error.param)
    if isinstance(exc, RejectedError):
        # A local policy refused the attempt: this one was never sent.
        if ambiguous:
            return unknown(f"{type(exc).__name__} after an earlier attempt may have been sent")
        return ProviderUnavailable(f"{operation}: {type(exc).__name__}: nothing was sent",
                                   retry_after=exc.retry_after)
    if isinstance(exc, TransportError) and not exc.sent and not ambiguous:
        return ProviderUnavailable(f"{operation}: {type(exc).__name__}: nothing was sent")
    if isinstance(exc, TransportError | ResponseError | DeadlineExceededError):
        return unknown(f"{type(exc).__name__}, no usable answer")
    return unknown(f"unexpected {type(exc).__name__}")
