"""egress: call external services reliably.

Deadlines on every call, retries that cannot hurt, breakers and limits that fail fast, and ports
so that domain code speaks ``PaymentService``, not HTTP. See ``docs/`` and ``README.md``.
"""

from __future__ import annotations

# Not ``from typing import TYPE_CHECKING``: importing typing alone costs a few ms, and type
# checkers treat any constant of this name as true.
from egress._lazy import lazy_names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    __version__: str
    from egress._clock import Clock
    from egress._clock import SystemClock as SystemClock  # egress.extend's; kept for old code
    from egress._pipeline import CallContext as CallContext  # egress.extend's; kept for old code
    from egress._pipeline import Pipeline, current_context, time_remaining
    from egress._pipeline import Policy as Policy  # egress.extend's; kept for old code
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
    from egress.events import CallbackSink, Event, EventSink
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

# Every public name loads on first use (PEP 562): ``import egress`` stays cheap, and a program
# pays for asyncio, the policies and the event types only when it touches them.
_LAZY = {
    "attempts": "egress.policies",
    "AttemptTimeoutError": "egress.errors",
    "Backoff": "egress.policies",
    "BreakerRegistry": "egress.policies",
    "Bulkhead": "egress.policies",
    "BulkheadFullError": "egress.errors",
    "CallbackSink": "egress.events",
    "CallContext": "egress._pipeline",
    "CircuitBreaker": "egress.policies",
    "CircuitOpenError": "egress.errors",
    "CircuitState": "egress.policies",
    "Clock": "egress._clock",
    "ConfigurationError": "egress.errors",
    "CountWindow": "egress.policies",
    "current_context": "egress._pipeline",
    "DeadlineExceededError": "egress.errors",
    "EgressError": "egress.errors",
    "elapsed": "egress.policies",
    "Event": "egress.events",
    "EventSink": "egress.events",
    "Jitter": "egress.policies",
    "Pipeline": "egress._pipeline",
    "Policy": "egress._pipeline",
    "RateLimitedError": "egress.errors",
    "RateLimiter": "egress.policies",
    "RejectedError": "egress.errors",
    "ResponseError": "egress.errors",
    "Retry": "egress.policies",
    "RetryBudget": "egress.policies",
    "RetryBudgetExhaustedError": "egress.errors",
    "Secret": "egress._secret",
    "status": "egress.observability.status",
    "StatusError": "egress.errors",
    "Stop": "egress.policies",
    "SystemClock": "egress._clock",
    "time_remaining": "egress._pipeline",
    "Timeout": "egress.policies",
    "TimeWindow": "egress.policies",
    "TokenRetryBudget": "egress.policies",
    "TransportError": "egress.errors",
    "UnsafeRequestError": "egress.errors",
    "UpstreamError": "egress.errors",
}

# What applications use. The extension API (Policy, CallContext, SystemClock, step types) is
# egress.extend; egress.CallContext, egress.Policy and egress.SystemClock still resolve, for code
# written before the split, but are not part of this list.
__all__ = [
    "AttemptTimeoutError",
    "Backoff",
    "BreakerRegistry",
    "Bulkhead",
    "BulkheadFullError",
    "CallbackSink",
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


_lazy_attribute, __dir__ = lazy_names(globals(), _LAZY)


def __getattr__(name: str) -> Any:
    if name == "__version__":
        # One source: the installed distribution's metadata (pyproject.toml's version).
        from importlib.metadata import version

        globals()[name] = value = version("egress")  # the next lookup is a plain attribute
        return value
    return _lazy_attribute(name)
