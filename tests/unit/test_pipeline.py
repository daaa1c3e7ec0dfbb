"""Pipeline: ordering, decorators, context, the same semantics async and sync."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from egress import (
    CallContext,
    ConfigurationError,
    DeadlineExceededError,
    Pipeline,
    Retry,
    Timeout,
    TransportError,
    current_context,
    time_remaining,
)
from egress._pipeline import AsyncOp, AsyncStep, SyncOp, SyncStep
from egress.testing import FakeClock


class Tag:
    """A policy that records the order layers are entered and left."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def wrap_async(self, inner: AsyncStep) -> AsyncStep:
        async def step(ctx: CallContext, op: AsyncOp) -> Any:
            self.log.append(f"enter {self.name}")
            try:
                return await inner(ctx, op)
            finally:
                self.log.append(f"leave {self.name}")

        return step

    def wrap_sync(self, inner: SyncStep) -> SyncStep:
        def step(ctx: CallContext, op: SyncOp) -> Any:
            self.log.append(f"enter {self.name}")
            try:
                return inner(ctx, op)
            finally:
                self.log.append(f"leave {self.name}")

        return step


async def test_policies_run_outermost_first() -> None:
    log: list[str] = []
    pipeline = Pipeline(Tag("a", log), Tag("b", log))

    async def op() -> str:
        log.append("op")
        return "x"

    assert await pipeline.run(op) == "x"
    expected = ["enter a", "enter b", "op", "leave b", "leave a"]
    assert log == expected
    log.clear()

    def sync_op() -> str:
        log.append("op")
        return "x"

    assert pipeline.run_sync(sync_op) == "x"
    assert log == expected


async def test_arguments_are_passed_through() -> None:
    async def add(a: int, b: int, *, c: int = 0) -> int:
        return a + b + c

    assert await Pipeline().run(add, 1, 2, c=3) == 6
    assert Pipeline().run_sync(lambda a, b: a * b, 6, 7) == 42


async def test_decorates_async_and_sync_functions(clock: FakeClock) -> None:
    pipeline = Pipeline(Retry(on=TransportError), clock=clock)
    calls = {"async": 0, "sync": 0}

    @pipeline
    async def fetch(x: int) -> int:
        calls["async"] += 1
        if calls["async"] < 2:
            raise TransportError("refused", sent=False)
        return x * 2

    @pipeline
    def fetch_sync(x: int) -> int:
        calls["sync"] += 1
        if calls["sync"] < 2:
            raise TransportError("refused", sent=False)
        return x * 3

    assert asyncio.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch"
    assert await fetch(2) == 4
    assert fetch_sync(2) == 6
    assert calls == {"async": 2, "sync": 2}


async def test_context_carries_the_operation_name() -> None:
    names: list[str] = []

    async def charge() -> None:
        ctx = current_context()
        assert ctx is not None
        names.append(ctx.operation)

    await Pipeline().run(charge)
    await Pipeline(name="stripe.charge").run(charge)
    await Pipeline().execute("custom", charge)
    assert names == ["test_context_carries_the_operation_name.<locals>.charge",
                     "stripe.charge", "custom"]
    assert current_context() is None


async def test_per_call_deadline(clock: FakeClock) -> None:
    seen: list[float | None] = []

    async def op() -> None:
        seen.append(time_remaining())

    await Pipeline(clock=clock).execute("op", op, deadline=7.0)
    assert seen == [pytest.approx(7.0)]


async def test_inner_pipeline_inherits_the_shorter_deadline(clock: FakeClock) -> None:
    seen: list[float | None] = []

    async def leaf() -> None:
        seen.append(time_remaining())

    inner = Pipeline(Timeout(60.0), clock=clock)

    async def middle() -> None:
        await inner.run(leaf)

    await Pipeline(Timeout(5.0), clock=clock).run(middle)
    assert seen == [pytest.approx(5.0)]


async def test_inner_pipeline_refuses_to_start_after_the_deadline(clock: FakeClock) -> None:
    async def leaf() -> None:
        raise AssertionError("must not run")

    inner = Pipeline(clock=clock)

    async def middle() -> None:
        clock.advance(10.0)  # the outer budget is spent synchronously
        await inner.run(leaf)

    with pytest.raises(DeadlineExceededError):
        await Pipeline(clock=clock).execute("outer", middle, deadline=5.0)


async def test_concurrent_calls_have_independent_contexts(clock: FakeClock) -> None:
    pipeline = Pipeline(Retry(on=TransportError), clock=clock)
    attempts_seen: dict[int, list[int]] = {1: [], 2: []}

    async def op(n: int) -> None:
        ctx = current_context()
        assert ctx is not None
        attempts_seen[n].append(ctx.attempt)
        await clock.sleep(0.01 * n)
        if n == 1 and ctx.attempt < 3:
            raise TransportError("x", sent=False)

    await asyncio.gather(pipeline.run(op, 1), pipeline.run(op, 2))
    assert attempts_seen == {1: [1, 2, 3], 2: [1]}


def test_rejects_non_policies() -> None:
    with pytest.raises(ConfigurationError, match="not a policy"):
        Pipeline(object())  # type: ignore[arg-type]


def test_repr_names_the_policies() -> None:
    assert repr(Pipeline(Timeout(1.0))) == "Pipeline(Timeout(1.0))"
