"""egress: call external services reliably.

Deadlines on every call, retries that cannot hurt, breakers and limits that fail fast, and ports
so that domain code speaks ``PaymentService``, not HTTP. See ``docs/`` and ``README.md``.
"""

import logging as _logging

from egress._clock import Clock, SystemClock
from egress._pipeline import CallContext, Pipeline, Policy, current_context, time_remaining
from egress._secret import Secret
from egress.errors import (
    AttemptTimeoutError,
    BulkheadFullError,
    CircuitOpenError,
    ConfigurationError,
    DeadlineExceededError,
    EgressError,
    RateLimitedError,
    RejectedError,
    ResponseError,
    RetryBudgetExhaustedError,
    StatusError,
    TransportError,
    UnsafeRequestError,
    UpstreamError,
)
from egress.events import Event, EventSink
from egress.observability.status import status
from egress.policies import (
    Backoff,
    BreakerRegistry,
    Bulkhead,
    CircuitBreaker,
    CircuitState,
    CountWindow,
    Jitter,
    RateLimiter,
    Retry,
    RetryBudget,
    Stop,
    Timeout,
    TimeWindow,
    TokenRetryBudget,
    attempts,
    elapsed,
)

__version__ = "0.1.0"

__all__ = [
    "AttemptTimeoutError",
    "Backoff",
    "BreakerRegistry",
    "Bulkhead",
    "BulkheadFullError",
    "CallContext",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "Clock",
    "ConfigurationError",
    "CountWindow",
    "DeadlineExceededError",
    "EgressError",
    "Event",
    "EventSink",
    "Jitter",
    "Pipeline",
    "Policy",
    "RateLimitedError",
    "RateLimiter",
    "RejectedError",
    "ResponseError",
    "Retry",
    "RetryBudget",
    "RetryBudgetExhaustedError",
    "Secret",
    "StatusError",
    "Stop",
    "SystemClock",
    "TimeWindow",
    "Timeout",
    "TokenRetryBudget",
    "TransportError",
    "UnsafeRequestError",
    "UpstreamError",
    "__version__",
    "attempts",
    "current_context",
    "elapsed",
    "status",
    "time_remaining",
]


# A library never configures logging; the NullHandler keeps Python's last-resort handler from
# printing egress's records when the application has not configured any.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
