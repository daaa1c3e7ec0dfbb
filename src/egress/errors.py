"""The one exception tree of egress.

Errors carry *facts* (was anything sent, which status, what the server hinted); whether to retry
is a policy's decision, never the exception's::

    EgressError
    ├── ConfigurationError          bad configuration, raised when built, never at call time
    ├── RejectedError               a policy refused to call out; nothing was sent
    │   ├── CircuitOpenError        .retry_after: seconds until the next probe may pass
    │   ├── RateLimitedError        .retry_after (local limiter or server hint)
    │   ├── BulkheadFullError
    │   ├── RetryBudgetExhaustedError
    │   └── SharedStateUnavailableError  a store that must not guess (idempotency) is unreachable
    ├── DeadlineExceededError       the overall deadline passed (also a built-in TimeoutError)
    ├── UpstreamError               the remote side failed; __cause__ keeps the vendor exception
    │   ├── TransportError          .sent: False (nothing left this host) or True (maybe processed)
    │   │   ├── AttemptTimeoutError one attempt ran past its own limit (sent=True: maybe processed)
    │   │   └── TLSVerificationError the certificate was refused: permanent, never retried
    │   ├── StatusError             .status_code, .request_id, .retry_after, safe body excerpt
    │   └── ResponseError           unparseable, truncated or oversized answer
    ├── UnsafeRequestError          a request refused before any I/O (URL escape, header injection)
    └── PaymentError                the payment port's domain errors
        ├── PaymentDeclined         .decline_code; a business answer, never retried
        ├── InvalidPaymentRequest   the request itself is wrong (fix it; a new key is needed)
        ├── AuthenticationFailed    the credentials were refused
        ├── ProviderUnavailable     the provider could not be reached or kept failing
        ├── IdempotencyMismatch     a key was reused with different parameters
        ├── OutcomeUnknown          .idempotency_key, .reference: reconcile, do not guess
        └── WebhookError            a provider notification was refused; nothing in it is trusted
            ├── WebhookSignatureMissing    no signature header, or no signature of the scheme
            ├── WebhookSignatureMalformed  the signature header cannot be parsed
            ├── WebhookTimestampStale      signed too long ago (a possible replay)
            ├── WebhookSignatureMismatch   no signature matches the payload and the secret(s)
            └── WebhookPayloadInvalid      signed, but not a usable event (also a ResponseError)

Messages never contain secrets: values that could carry one (header values, bodies, keys) are
either left out or reduced to a short, redacted excerpt by the code that raises.
"""

from __future__ import annotations

__all__ = [
    "AttemptTimeoutError",
    "AuthenticationFailed",
    "BulkheadFullError",
    "CircuitOpenError",
    "ConfigurationError",
    "DeadlineExceededError",
    "EgressError",
    "IdempotencyMismatch",
    "InvalidPaymentRequest",
    "OutcomeUnknown",
    "PaymentDeclined",
    "PaymentError",
    "ProviderUnavailable",
    "RateLimitedError",
    "RejectedError",
    "ResponseError",
    "RetryBudgetExhaustedError",
    "SharedStateUnavailableError",
    "StatusError",
    "TLSVerificationError",
    "TransportError",
    "UnsafeRequestError",
    "UpstreamError",
    "WebhookError",
    "WebhookPayloadInvalid",
    "WebhookSignatureMalformed",
    "WebhookSignatureMismatch",
    "WebhookSignatureMissing",
    "WebhookTimestampStale",
]


class EgressError(Exception):
    """Base of every error egress raises on its own account."""

    #: A server or policy hint: seconds after which trying again may succeed. ``None`` if unknown.
    retry_after: float | None = None


class ConfigurationError(EgressError, ValueError):
    """A policy, client or adapter was built with invalid settings.

    Raised by constructors, never at call time, and names the offending setting.
    """


class RejectedError(EgressError):
    """A policy refused to make the call. Nothing was sent: always safe to try again later."""

    sent = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CircuitOpenError(RejectedError):
    """The circuit breaker is open (or its half-open trial slots are taken)."""

    def __init__(self, name: str, *, retry_after: float | None = None) -> None:
        hint = f"; next probe in {retry_after:.3f}s" if retry_after is not None else ""
        super().__init__(f"circuit {name!r} is open{hint}", retry_after=retry_after)
        self.name = name


class RateLimitedError(RejectedError):
    """A rate limiter (local, or paused by a server's hint) has no capacity in time."""

    #: The name of the local limiter that refused (``None``: the refusal did not come from one),
    #: so a local refusal is never mistaken for a server's hint.
    limiter: str | None = None


class BulkheadFullError(RejectedError):
    """The bulkhead's concurrent slots and its queue are full, or the queue wait ran out.

    ``reason`` says which: ``"full"`` (refused at once) or ``"timeout"`` (queued, no slot freed
    in time).
    """

    def __init__(self, message: str, *, reason: str = "full",
                 retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.reason = reason


class RetryBudgetExhaustedError(RejectedError):
    """Raised only by callers that ask a budget directly; Retry re-raises the original error."""


class SharedStateUnavailableError(RejectedError):
    """A store that must not guess (idempotency records on Redis) could not be reached in time;
    nothing was sent. Safe to try again later with the same reference."""


class DeadlineExceededError(EgressError, TimeoutError):
    """The overall deadline of a call passed, or no attempt could fit in what remained of it."""


class UpstreamError(EgressError):
    """The remote side failed. ``__cause__`` keeps the vendor's own exception when there is one."""

    #: Set by the HTTP seam: whether the request may be sent again without risking a second side
    #: effect (a safe or idempotent method, or a request carrying an idempotency key).
    replay_safe: bool | None = None
    #: Set by the HTTP seam: the ``egress.http.RequestInfo`` of the failed call (no secrets).
    request_info: object | None = None


class TransportError(UpstreamError):
    """The exchange broke below HTTP: refused, reset, timed out, TLS failure.

    ``sent`` is the fact that matters for safety: ``False`` means no byte of the request left this
    host (a refused connection), so even a non-idempotent call can be retried; ``True`` means the
    server may have processed it.
    """

    #: A failure that trying again cannot cure (a refused certificate): never retried, and not a
    #: sign of an outage.
    permanent = False

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class AttemptTimeoutError(TransportError, TimeoutError):
    """One attempt ran past its own time limit. The request may have been processed."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message, sent=sent)


class TLSVerificationError(TransportError):
    """The server's certificate was refused (self-signed, expired, another host's, untrusted CA).

    Nothing was sent. It is permanent: no retry or breaker counts it as a passing outage; fix the
    trust configuration (``verify=``) or the server.
    """

    permanent = True

    def __init__(self, message: str) -> None:
        super().__init__(message, sent=False)


class StatusError(UpstreamError):
    """The server answered with an error status.

    ``body_excerpt`` is a short, redacted prefix of the body, safe for logs.
    """

    sent = True

    def __init__(
        self,
        status_code: int,
        *,
        method: str = "",
        url: str = "",
        request_id: str | None = None,
        retry_after: float | None = None,
        body_excerpt: str = "",
        headers: tuple[tuple[str, str], ...] = (),
        response: object | None = None,
    ) -> None:
        where = f" for {method} {url}" if method else ""
        rid = f" (request id {request_id})" if request_id else ""
        super().__init__(f"HTTP {status_code}{where}{rid}")
        self.status_code = status_code
        self.method = method
        self.url = url
        self.request_id = request_id
        self.retry_after = retry_after
        self.body_excerpt = body_excerpt
        #: Response headers with secrets removed, for classification hooks.
        self.headers = headers
        #: The full response object (``egress.http.Response``) for adapters that parse error
        #: bodies; never part of ``str()`` or ``repr()``.
        self.response = response

    def header(self, name: str) -> str | None:
        """The first response header named ``name`` (case-insensitive), if any."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


class ResponseError(UpstreamError):
    """The answer arrived but cannot be used: truncated, malformed, or larger than allowed.

    ``reason`` is ``"truncated"`` (the answer stopped early: transient), ``"oversized"``,
    ``"malformed"``, ``"encoding"`` (bad or refused content coding) or ``"redirect"``.
    """

    sent = True

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class UnsafeRequestError(EgressError, ValueError):
    """A request was refused before any I/O because it was unsafe to send.

    For example a path that is an absolute URL (it would carry credentials to another host) or a
    header value with CR/LF. The message names the problem, never the offending value.
    """


class PaymentError(EgressError):
    """Base of the payment port's domain errors."""


class PaymentDeclined(PaymentError):
    """The provider declined the payment. A business answer: never retried."""

    def __init__(
        self, message: str, *, decline_code: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.decline_code = decline_code
        self.code = code


class InvalidPaymentRequest(PaymentError, ValueError):
    """The payment request is invalid (locally, or as judged by the provider)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class AuthenticationFailed(PaymentError):
    """The provider refused the credentials (or their permissions)."""


class ProviderUnavailable(PaymentError):
    """The provider could not be reached, refused to serve, or kept failing.

    Nothing was charged as far as can be proven; when that cannot be proven, ``OutcomeUnknown``
    is raised instead.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IdempotencyMismatch(PaymentError):
    """An idempotency key was reused with different parameters. Never retried."""


class OutcomeUnknown(PaymentError):
    """Every attempt ended ambiguously: the request was sent and no answer came back.

    The payment may or may not exist. Do not retry with a new key: call ``reconcile`` with the
    ``reference``, which asks the provider and settles it.
    """

    def __init__(
        self, message: str, *, idempotency_key: str, reference: str, operation: str
    ) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key
        self.reference = reference
        self.operation = operation


class WebhookError(PaymentError, ValueError):
    """A provider notification failed verification. Answer it with HTTP 400; trust nothing in it.

    Messages never include the payload, the header's signatures or the secret.
    """


class WebhookSignatureMissing(WebhookError):
    """The signature header is absent, or holds no signature of the expected scheme."""


class WebhookSignatureMalformed(WebhookError):
    """The signature header cannot be parsed (no timestamp, a bad timestamp, garbage)."""


class WebhookTimestampStale(WebhookError):
    """The signature is valid but older than the tolerance: possibly a replayed notification."""

    def __init__(self, message: str, *, age: float) -> None:
        super().__init__(message)
        self.age = age


class WebhookSignatureMismatch(WebhookError):
    """No signature in the header matches the payload under the secret(s)."""


class WebhookPayloadInvalid(WebhookError, ResponseError):
    """The signature is valid but the payload is not a usable event (malformed JSON, a field
    out of range). Also a :class:`ResponseError`, as :func:`parse_event` raises for the same
    payload. Its message names the field, never a value."""
