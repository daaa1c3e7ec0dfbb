"""The policies, one file each: configuration, pure decisions, and thin async and sync drivers."""

from egress.policies.breaker import (
    BreakerRegistry,
    BreakerSnapshot,
    CircuitBreaker,
    CircuitState,
    CountWindow,
    TimeWindow,
    default_failure,
)
from egress.policies.budget import RetryBudget, TokenRetryBudget
from egress.policies.retry import Backoff, Jitter, Retry, Stop, attempts, elapsed
from egress.policies.timeout import Timeout

__all__ = [
    "Backoff",
    "BreakerRegistry",
    "BreakerSnapshot",
    "CircuitBreaker",
    "CircuitState",
    "CountWindow",
    "Jitter",
    "Retry",
    "RetryBudget",
    "Stop",
    "TimeWindow",
    "Timeout",
    "TokenRetryBudget",
    "attempts",
    "default_failure",
    "elapsed",
]
