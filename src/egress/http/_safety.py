"""Operation safety classes and the default classification of failures.

=============  ======================================  ===========================================
class          requests                                retried after
=============  ======================================  ===========================================
SAFE           GET, HEAD, OPTIONS, TRACE               any transient failure
IDEMPOTENT     PUT, DELETE                             any transient failure
KEYED          POST/PATCH with an idempotency key      any transient failure (same key, same bytes)
UNSAFE         POST/PATCH without a key                only a failure that proves nothing was sent
=============  ======================================  ===========================================

A POST/PATCH has a key only if the caller passed one or declared that the upstream honours keys
(``auto_idempotency_key``). A permanent failure (``TLSVerificationError``) is never retried.

Transient failures: a transport error (refused, reset, timed out), a truncated body, and the
statuses 408, 429, 500, 502, 503, 504. Errors only carry facts (``sent``, ``status_code``,
``replay_safe``); :func:`retry_on` turns them into the decision Retry asks for, after a provider's
hook (``retry_hook``) had its say.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from egress.errors import ResponseError, StatusError, TransportError, UpstreamError

__all__ = ["RequestInfo", "RetryHook", "Safety", "TRANSIENT_STATUSES", "is_transient",
           "retry_on", "safety_of"]

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Safety(Enum):
    """How safe it is to send a request twice."""

    SAFE = "safe"
    IDEMPOTENT = "idempotent"
    KEYED = "keyed"
    UNSAFE = "unsafe"

    @property
    def replay_safe(self) -> bool:
        return self is not Safety.UNSAFE


_BY_METHOD = {"GET": Safety.SAFE, "HEAD": Safety.SAFE, "OPTIONS": Safety.SAFE,
              "TRACE": Safety.SAFE, "PUT": Safety.IDEMPOTENT, "DELETE": Safety.IDEMPOTENT}


def safety_of(method: str, idempotency_key: str | None) -> Safety:
    """The safety class of ``method`` sent with (or without) an idempotency key."""
    found = _BY_METHOD.get(method)
    if found is not None:
        return found
    return Safety.KEYED if idempotency_key else Safety.UNSAFE


class RequestInfo:
    """What a retry hook may know about the request: no headers, no body, no query string."""

    __slots__ = ("idempotency_key", "method", "operation", "safety", "url")

    def __init__(self, method: str, url: str, operation: str, safety: Safety,
                 idempotency_key: str | None) -> None:
        self.method = method
        #: The URL without its query string (which may carry identifiers).
        self.url = url
        #: The operation name: method and path template, e.g. ``"POST /v1/payment_intents"``.
        self.operation = operation
        self.safety = safety
        self.idempotency_key = idempotency_key

    @property
    def replay_safe(self) -> bool:
        return self.safety is not Safety.UNSAFE

    def __repr__(self) -> str:
        return f"RequestInfo({self.operation!r}, safety={self.safety.value})"


RetryHook = Callable[[UpstreamError, RequestInfo], "bool | None"]
"""Provider rules: ``True`` retries, ``False`` never retries, ``None`` leaves it to the defaults."""


def is_transient(exc: UpstreamError) -> bool:
    """Whether the failure may go away on its own (before asking if a retry is safe)."""
    if isinstance(exc, TransportError):
        return True
    if isinstance(exc, StatusError):
        return exc.status_code in TRANSIENT_STATUSES
    if isinstance(exc, ResponseError):
        return exc.reason == "truncated"
    return False


def default_retryable(exc: UpstreamError, info: RequestInfo | None) -> bool:
    """The default rule: transient, and either nothing was sent or a replay cannot hurt."""
    if isinstance(exc, TransportError) and not exc.sent:
        return True
    replay_safe = info.replay_safe if info is not None else bool(exc.replay_safe)
    return replay_safe and is_transient(exc)


def retry_on(hook: RetryHook | None = None) -> Callable[[BaseException], bool]:
    """A predicate for ``Retry(on=...)`` applying ``hook`` first, then the default rules."""

    def retryable(exc: BaseException) -> bool:
        if not isinstance(exc, UpstreamError) or getattr(exc, "permanent", False):
            return False  # a permanent failure (a refused certificate) is beyond any hook
        info = exc.request_info if isinstance(exc.request_info, RequestInfo) else None
        if hook is not None and info is not None:
            verdict = hook(exc, info)
            if verdict is not None:
                return bool(verdict)
        return default_retryable(exc, info)

    return retryable
