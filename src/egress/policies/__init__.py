"""The policies, one file each: configuration, pure decisions, and thin async and sync drivers."""

from egress.policies.budget import RetryBudget, TokenRetryBudget
from egress.policies.retry import Backoff, Jitter, Retry, Stop, attempts, elapsed
from egress.policies.timeout import Timeout

__all__ = [
    "Backoff",
    "Jitter",
    "Retry",
    "RetryBudget",
    "Stop",
    "Timeout",
    "TokenRetryBudget",
    "attempts",
    "elapsed",
]
