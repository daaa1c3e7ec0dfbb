"""``store=`` that is not a store (None, a path, a Redis client) is a ConfigurationError naming
the policy, not an AttributeError from deep inside (it was, for all four named policies)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from egress import Bulkhead, CircuitBreaker, RateLimiter, RetryBudget
from egress.errors import ConfigurationError

POLICIES: dict[str, Callable[[Any], object]] = {
    "RateLimiter": lambda store: RateLimiter(10, name="x", store=store),
    "Bulkhead": lambda store: Bulkhead(4, name="x", store=store),
    "RetryBudget": lambda store: RetryBudget(name="x", store=store),
    "CircuitBreaker": lambda store: CircuitBreaker("x", store=store),
}


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("store", ["/tmp/state.db", 42, object()])
def test_a_store_that_is_not_a_store_is_a_configuration_error(policy: str, store: object) -> None:
    with pytest.raises(ConfigurationError, match=f"{policy}.*store must be a StateStore"):
        POLICIES[policy](store)


@pytest.mark.parametrize("policy", ["RateLimiter", "Bulkhead", "RetryBudget"])
def test_none_is_not_a_store_either(policy: str) -> None:
    with pytest.raises(ConfigurationError, match="store must be a StateStore"):
        POLICIES[policy](None)


def test_a_breaker_without_a_store_keeps_its_state_locally() -> None:
    assert CircuitBreaker("local", store=None)._state is not None  # documented: store=None
