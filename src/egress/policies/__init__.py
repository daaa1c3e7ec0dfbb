"""The policies: configuration, pure decisions, and thin async and sync drivers.

One file per policy, except the breaker (policy, pure state, drivers and registry apart)."""

from egress.policies.breaker import (
    BreakerSnapshot,
    CircuitBreaker,
    CircuitState,
    CountWindow,
    TimeWindow,
    default_failure,
)
from egress.policies.breaker_registry import BreakerRegistry
from egress.policies.budget import RetryBudget, TokenRetryBudget
from egress.policies.bulkhead import Bulkhead
from egress.policies.ratelimit import (
    RateLimiter,
    ThrottlePause,
    server_pause_hint,
    server_throttled,
)
from egress.policies.retry import Backoff, Jitter, Retry, Stop, attempts, elapsed
from egress.policies.timeout import Timeout

__all__ = [
    "Backoff",
    "BreakerRegistry",
    "BreakerSnapshot",
    "Bulkhead",
    "CircuitBreaker",
    "CircuitState",
    "CountWindow",
    "Jitter",
    "RateLimiter",
    "Retry",
    "RetryBudget",
    "Stop",
    "ThrottlePause",
    "TimeWindow",
    "Timeout",
    "TokenRetryBudget",
    "attempts",
    "default_failure",
    "elapsed",
    "server_pause_hint",
    "server_throttled",
]
