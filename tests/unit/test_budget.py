"""Retry budgets: arithmetic, outage behaviour, sharing by name."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from egress import (
    AttemptTimeoutError,
    Backoff,
    ConfigurationError,
    Pipeline,
    Retry,
    RetryBudget,
    TokenRetryBudget,
    TransportError,
    attempts,
)
from egress.events import BudgetExhausted, RetryExhausted
from egress.policies.budget import RatioBudgetState, TokenBudgetState
from egress.stores import MemoryStore
from egress.testing import FakeClock, RecordingSink


def test_ratio_budget_arithmetic() -> None:
    state = RatioBudgetState(percent=0.1, min_per_second=3.0, window=10.0)
    now = 100.0
    for _ in range(100):
        state.record_call(now)
    granted = 0
    while state.try_retry(now, timeout=False) is not None:
        granted += 1
    assert granted == 40  # 10 % of 100 calls + a floor of 3/s over 10 s


def test_ratio_budget_window_expires() -> None:
    state = RatioBudgetState(percent=0.1, min_per_second=0.0, window=10.0)
    for _ in range(100):
        state.record_call(0.0)
    assert state.snapshot(5.0)["allowed"] == pytest.approx(10.0)
    assert state.snapshot(10.5)["calls"] == 0  # the calls fell out of the window
    assert state.try_retry(10.5, timeout=False) is None


def test_token_budget_costs_and_refunds() -> None:
    state = TokenBudgetState(capacity=500, retry_cost=5, timeout_retry_cost=10, success_reward=1)
    assert state.try_retry(0, timeout=False) == 5
    assert state.try_retry(0, timeout=True) == 10
    assert state.tokens == 485
    state.record_success(0, refund=10)  # a success after a (timeout) retry refunds its cost
    assert state.tokens == 495
    state.record_success(0, refund=0)  # a first-try success earns the reward
    state.record_success(0, refund=0)
    state.record_success(0, refund=0)
    state.record_success(0, refund=0)
    state.record_success(0, refund=0)
    state.record_success(0, refund=0)
    assert state.tokens == 500  # capped at capacity
    for _ in range(100):
        state.try_retry(0, timeout=False)
    assert state.tokens == 0
    assert state.try_retry(0, timeout=False) is None


async def outage(pipeline: Pipeline, calls: int) -> int:
    attempts_made = 0

    async def down() -> None:
        nonlocal attempts_made
        attempts_made += 1
        raise TransportError("connection refused", sent=False)

    async def one() -> None:
        with pytest.raises(TransportError):
            await pipeline.run(down)

    await asyncio.gather(*(one() for _ in range(calls)))
    return attempts_made


async def test_total_outage_without_budget_triples_the_load(clock: FakeClock) -> None:
    retry = Retry(on=TransportError, stop=attempts(3))
    # 200 calls, not 1000: every call makes its 3 attempts either way, and each of the clock's
    # jumps looks at every task (1000 tasks x 2000 jumps took ~8 s; this takes ~0.3 s).
    assert await outage(Pipeline(retry, clock=clock), 200) == 600


async def test_total_outage_with_budget_stays_near_the_calls(clock: FakeClock,
                                                             sink: RecordingSink) -> None:
    budget = RetryBudget()  # 10 % + 3/s over 10 s
    retry = Retry(on=TransportError, stop=attempts(3), budget=budget,
                  backoff=Backoff(initial=0.05, cap=0.5))
    made = await outage(Pipeline(retry, clock=clock, sink=sink), 1000)
    assert clock.now() - 1000.0 < 10.0  # the whole run fits in one budget window
    assert 1000 < made <= 1.1 * 1000 + 3 * 10
    # Every call ended either by the budget or by its stop condition, never silently.
    refused = len(sink.of(BudgetExhausted))
    assert refused > 800
    assert refused + len(sink.of(RetryExhausted)) == 1000


async def test_budget_exhausted_raises_the_original_error_with_a_note(
    clock: FakeClock, sink: RecordingSink
) -> None:
    budget = TokenRetryBudget(capacity=5, retry_cost=5)
    retry = Retry(on=TransportError, stop=attempts(5), budget=budget)
    pipeline = Pipeline(retry, clock=clock, sink=sink)
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise TransportError("refused", sent=False)

    with pytest.raises(TransportError) as info:
        await pipeline.run(down)
    assert calls == 2  # one retry was affordable, the next one not
    assert "retry budget exhausted" in info.value.__notes__[-1]
    assert len(sink.of(BudgetExhausted)) == 1


async def test_timeout_retries_cost_more(clock: FakeClock) -> None:
    budget = TokenRetryBudget(capacity=10, retry_cost=5, timeout_retry_cost=10)
    retry = Retry(on=TransportError, stop=attempts(5), budget=budget)
    calls = 0

    async def times_out() -> None:
        nonlocal calls
        calls += 1
        raise AttemptTimeoutError("slow")

    with pytest.raises(AttemptTimeoutError):
        await Pipeline(retry, clock=clock).run(times_out)
    assert calls == 2
    assert budget.state().try_retry(0, timeout=False) is None  # 10 - 10 = 0 left


def test_budgets_are_shared_by_name() -> None:
    a = RetryBudget(name="stripe")
    b = RetryBudget(name="stripe")
    c = RetryBudget(name="shipping")
    assert a.state() is b.state()
    assert a.state() is not c.state()
    anonymous = RetryBudget()
    assert anonymous.state() is anonymous.state()
    assert anonymous.state() is not RetryBudget().state()


@pytest.mark.parametrize(
    "build",
    [
        lambda: RetryBudget(percent=-0.1),
        lambda: RetryBudget(window=0),
        lambda: RetryBudget(min_per_second=float("inf")),
        lambda: TokenRetryBudget(capacity=0),
        lambda: TokenRetryBudget(retry_cost=-1),
    ],
)
def test_invalid_budgets(build: object) -> None:
    with pytest.raises(ConfigurationError):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(("first", "second"), [
    (lambda s: RetryBudget(name="x", store=s), lambda s: RetryBudget(percent=0.5, name="x",
                                                                       store=s)),
    (lambda s: RetryBudget(name="x", store=s), lambda s: RetryBudget(window=60.0, name="x",
                                                                       store=s)),
    (lambda s: TokenRetryBudget(name="x", store=s),
     lambda s: TokenRetryBudget(capacity=10, name="x", store=s)),
])
def test_a_second_budget_of_one_name_with_other_settings_is_refused(
        first: Any, second: Any) -> None:
    store = MemoryStore()
    budget = first(store)
    assert first(store).state() is budget.state()  # the same settings: one shared state
    with pytest.raises(ConfigurationError, match="other settings"):
        second(store)


def test_a_ratio_and_a_token_budget_may_share_a_name() -> None:
    store = MemoryStore()
    assert RetryBudget(name="x", store=store).state() is not TokenRetryBudget(
        name="x", store=store).state()
