"""egress.status(): every named policy state, read without changing it."""

from __future__ import annotations

import pytest

import egress
from egress import (
    Bulkhead,
    CircuitBreaker,
    CountWindow,
    Pipeline,
    RateLimiter,
    Retry,
    RetryBudget,
    TransportError,
    attempts,
)
from egress.observability.status import status
from egress.stores import MemoryStore
from egress.testing import FakeClock


def refused() -> None:
    raise TransportError("refused", sent=False)


def test_status_lists_every_named_state_with_what_an_operator_asks() -> None:
    clock = FakeClock(auto_advance=False)
    store = MemoryStore()
    breaker = CircuitBreaker("stripe", window=CountWindow(2), minimum_calls=2, wait_in_open=30.0,
                             store=store, clock=clock)
    limiter = RateLimiter(10, burst=5, name="stripe-live", store=store, clock=clock)
    pipeline = Pipeline(
        Bulkhead(4, max_queue=8, name="stripe", store=store),
        Retry(on=TransportError, stop=attempts(2),
              budget=RetryBudget(name="stripe", store=store)),
        breaker, limiter, clock=clock)
    with pytest.raises(TransportError):  # two attempts, two failures: the breaker opens
        pipeline.run_sync(refused)
    limiter.cooldown(12.0)

    found = status([store], clock=clock).as_dict()
    [b] = found["breakers"]
    assert (b["name"], b["state"], b["failure_rate"]) == ("stripe", "open", 1.0)
    assert b["retry_after"] == pytest.approx(30.0, abs=1.0)
    [lim] = found["limiters"]
    assert (lim["name"], lim["rate"], lim["burst"]) == ("stripe-live", 10.0, 5)
    assert lim["paused_for"] == pytest.approx(12.0, abs=0.5)
    [bulk] = found["bulkheads"]
    assert (bulk["name"], bulk["max_concurrent"], bulk["active"], bulk["queued"]) == (
        "stripe", 4, 0, 0)
    [budget] = found["budgets"]
    assert budget["name"] == "stripe" and budget["retries"] >= 1


def test_a_state_that_cannot_be_read_is_listed_not_raised() -> None:
    store = MemoryStore()
    store.shared("circuit_breaker", "weird", object)
    [entry] = status([store]).breakers
    assert entry["error"] == "AttributeError"


def test_the_top_level_function_reads_the_process_store() -> None:
    assert isinstance(egress.status().as_dict()["breakers"], list)
