"""egress.status(): every named policy state, read without changing it."""

from __future__ import annotations

import pathlib

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


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_status_lists_idempotency_records_in_doubt_bounded_and_without_secrets(
        kind: str, tmp_path: pathlib.Path) -> None:
    import asyncio

    from egress.payments.idempotency import IdempotencyRecord, RecordState
    from egress.stores.idempotency_memory import MemoryIdempotencyStore
    from egress.stores.idempotency_sqlite import SqliteIdempotencyStore

    records = (MemoryIdempotencyStore() if kind == "memory"
               else SqliteIdempotencyStore(tmp_path / "keys.db"))
    clock = FakeClock(wall=1_700_000_100.0)

    async def fill() -> None:
        for i in range(5):
            new = IdempotencyRecord.new("acct", "charge", f"order-{i} 4242424242424242",
                                        "fp-secret", 1_700_000_000.0 + i)
            await records.reserve(new)
            if i % 2 == 0:  # 0, 2, 4 end in doubt; 4 is then reconciled (succeeded)
                await records.replace(new.with_state(RecordState.UNKNOWN, new.updated_at),
                                      expected_key=new.key)
        settled = await records.get("acct", "charge", "order-4 4242424242424242")
        assert settled is not None
        await records.replace(settled.with_state(RecordState.SUCCEEDED, 1_700_000_050.0,
                                                 "ch_1"), expected_key=settled.key)

    asyncio.run(fill())
    found = status(stores=(), idempotency=[records], doubt_limit=1, clock=clock).in_doubt
    assert found["count"] == 2
    [oldest] = found["records"]
    assert oldest["reference"].startswith("order-")
    assert (oldest["operation"], oldest["generation"], oldest["age"]) == ("charge", 0, 100.0)
    text = repr(found)
    for secret in ("4242424242424242", "fp-secret", "egress-charge-"):
        assert secret not in text  # no card shape, fingerprint or key
    broken = status(stores=(), idempotency=[object()]).in_doubt
    assert broken["count"] == 0 and broken["errors"] == [{"store": "object",
                                                          "error": "no in_doubt_sync"}]


def test_a_limiter_is_read_through_its_public_snapshot() -> None:
    """status.py reads no private slot of a limiter (issue 11): its backlog is what the state's
    own ``snapshot`` says, reserved slots ahead of now."""
    clock = FakeClock(auto_advance=False)
    store = MemoryStore()
    RateLimiter(10, burst=1, name="queued", store=store, clock=clock)
    [(_, state)] = store.items()
    for _ in range(3):  # one slot now, two more 0.1 s apart: the next free one is 0.3 s ahead
        state.reserve(clock.now(), 1.0)
    assert state.snapshot(clock.now()) == {"paused_for": 0.0, "backlog": pytest.approx(0.3)}
    [lim] = status([store], clock=clock).limiters
    assert lim["backlog"] == pytest.approx(0.3) and lim["paused_for"] == 0.0

    class Elsewhere:  # a state that keeps its time elsewhere: public methods only
        settings = (5.0, 2)

        def snapshot(self, now: float) -> dict[str, float]:
            return {"paused_for": 1.5, "backlog": 0.75}

    other = MemoryStore()
    other.shared("rate_limiter", "remote", Elsewhere)
    [entry] = status([other]).limiters
    assert (entry["paused_for"], entry["backlog"]) == (1.5, 0.75)
