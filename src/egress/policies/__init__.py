"""The policies: configuration, pure decisions, and thin async and sync drivers.

One file per policy, except the breaker (policy, pure state, drivers and registry apart)."""

from __future__ import annotations

from egress._lazy import lazy_names

# Not ``from typing import TYPE_CHECKING``: see egress/__init__.py.
TYPE_CHECKING = False
if TYPE_CHECKING:
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

# Every name loads on first use (PEP 562), as in egress/__init__.py: ``from egress import Retry``
# loads the retry policy, not the breaker, the limiter and the bulkhead as well.
_LAZY = {
    "attempts": "egress.policies.retry",
    "Backoff": "egress.policies.retry",
    "BreakerRegistry": "egress.policies.breaker_registry",
    "BreakerSnapshot": "egress.policies.breaker",
    "Bulkhead": "egress.policies.bulkhead",
    "CircuitBreaker": "egress.policies.breaker",
    "CircuitState": "egress.policies.breaker",
    "CountWindow": "egress.policies.breaker",
    "default_failure": "egress.policies.breaker",
    "elapsed": "egress.policies.retry",
    "Jitter": "egress.policies.retry",
    "RateLimiter": "egress.policies.ratelimit",
    "Retry": "egress.policies.retry",
    "RetryBudget": "egress.policies.budget",
    "server_pause_hint": "egress.policies.ratelimit",
    "server_throttled": "egress.policies.ratelimit",
    "Stop": "egress.policies.retry",
    "ThrottlePause": "egress.policies.ratelimit",
    "Timeout": "egress.policies.timeout",
    "TimeWindow": "egress.policies.breaker",
    "TokenRetryBudget": "egress.policies.budget",
}

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


__getattr__, __dir__ = lazy_names(globals(), _LAZY)
