"""The public surface is deliberate: adding or removing a name must be a visible decision."""

from __future__ import annotations

import egress
import egress.errors

EXPECTED = {
    "AttemptTimeoutError", "Backoff", "BulkheadFullError", "CallContext", "CircuitOpenError",
    "Clock", "ConfigurationError", "DeadlineExceededError", "EgressError", "Event", "EventSink",
    "Jitter", "Pipeline", "Policy", "RateLimitedError", "RejectedError", "ResponseError", "Retry",
    "RetryBudget", "RetryBudgetExhaustedError", "Secret", "StatusError", "Stop", "SystemClock",
    "Timeout", "TokenRetryBudget", "TransportError", "UnsafeRequestError", "UpstreamError",
    "__version__", "attempts", "current_context", "elapsed", "time_remaining",
    "BreakerRegistry", "Bulkhead", "CircuitBreaker", "CircuitState", "CountWindow", "RateLimiter",
    "TimeWindow", "status",
}


def test_all_is_pinned() -> None:
    assert set(egress.__all__) == EXPECTED
    assert len(egress.__all__) == len(set(egress.__all__))
    for name in egress.__all__:
        assert hasattr(egress, name), name


def test_every_error_descends_from_egress_error() -> None:
    for name in egress.errors.__all__:
        cls = getattr(egress.errors, name)
        assert issubclass(cls, egress.errors.EgressError), name


def test_deadline_and_attempt_timeouts_are_timeouts() -> None:
    assert issubclass(egress.DeadlineExceededError, TimeoutError)
    assert issubclass(egress.AttemptTimeoutError, TimeoutError)
    assert issubclass(egress.AttemptTimeoutError, egress.TransportError)
    assert egress.AttemptTimeoutError("x").sent is True
