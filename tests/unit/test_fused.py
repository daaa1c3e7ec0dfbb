"""The fused ``Bulkhead → Retry → CircuitBreaker`` call (policies/_fused.py) behaves exactly as the
layered steps: same results, same errors (type, message, notes, report), same events, same state
left behind, for any script of outcomes (hypothesis) and for queueing, cancellation and deadlines.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress import Pipeline
from egress.errors import StatusError, TransportError
from egress.events import AttemptFailed
from egress.policies import Bulkhead, CircuitBreaker, CountWindow, Retry, RetryBudget
from egress.stores import MemoryStore
from egress.testing import FakeClock, RecordingSink

_names = itertools.count()


def build(fused: bool, name: str = "", max_concurrent: int = 4,
          max_queue: int = 2) -> tuple[Pipeline, RecordingSink]:
    clock = FakeClock()
    sink = RecordingSink()
    store = MemoryStore()  # the breaker and the budget, private to this pipeline
    name = name or f"fused-{next(_names)}"
    pipeline = Pipeline(
        Bulkhead(max_concurrent, max_queue=max_queue, max_wait=1.0),
        Retry(on=TransportError, budget=RetryBudget(name=name, store=store),
              random=lambda: 0.5),
        CircuitBreaker(name, window=CountWindow(6), minimum_calls=3, wait_in_open=2.0,
                       slow_call_duration=None, store=store, clock=clock, sink=sink),
        clock=clock, sink=sink)
    assert (pipeline._fused is not None) is True
    if not fused:
        pipeline._fused = None  # the layered steps, as built for every other pipeline
    return pipeline, sink


class Answer:
    """What an op returns: a plain value, so results compare by equality."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Answer) and other.n == self.n

    __hash__ = None  # type: ignore[assignment]


def failure(kind: str) -> Exception:
    if kind == "transport":
        return TransportError("connection reset", sent=False)
    if kind == "status":
        return StatusError(503, method="GET", url="http://127.0.0.1:1/x")
    return ValueError("not retryable")


def scripted(outcomes: list[str]) -> Any:
    steps: Iterator[str] = iter(outcomes)

    async def op() -> Answer:
        kind = next(steps, "ok")
        await asyncio.sleep(0)  # suspend once, as an exchange does
        if kind == "ok":
            return Answer(7)
        raise failure(kind)

    return op


def outcome(result: Any) -> tuple[Any, ...]:
    if isinstance(result, BaseException):
        report = getattr(result, "report", None)
        return (type(result).__name__, str(result), list(getattr(result, "__notes__", [])),
                None if report is None else str(report))
    return ("ok", result)


async def drive(fused: bool, calls: list[list[str]], deadline: float | None) -> Any:
    pipeline, sink = build(fused, name="twin")
    seen = []
    for outcomes in calls:
        try:
            result = await pipeline.execute("op", scripted(outcomes), deadline=deadline,
                                            target=("GET", "127.0.0.1:1"))
        except Exception as exc:
            result = exc
        seen.append(outcome(result))
    breaker = pipeline.policies[2]
    return seen, sink.events, breaker.snapshot()  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None)
@given(calls=st.lists(st.lists(st.sampled_from(["ok", "transport", "status", "value"]),
                               max_size=4), min_size=1, max_size=6),
       deadline=st.sampled_from([None, 0.5, 30.0]))
def test_fused_equals_layered_for_any_script(calls: list[list[str]],
                                             deadline: float | None) -> None:
    fused = asyncio.run(drive(True, calls, deadline))
    layered = asyncio.run(drive(False, calls, deadline))
    assert fused == layered


def test_the_default_client_pipeline_is_fused() -> None:
    from egress.http import ApiClient

    async def main() -> None:
        async with ApiClient("http://127.0.0.1:9") as client:
            assert client.pipeline._fused is not None

    asyncio.run(main())


def test_only_the_exact_shape_is_fused() -> None:
    class MyRetry(Retry):
        pass

    store = MemoryStore()
    assert Pipeline(Bulkhead(2), MyRetry(on=TransportError),
                    CircuitBreaker("sub", store=store))._fused is None
    assert Pipeline(Retry(on=TransportError), Bulkhead(2),
                    CircuitBreaker("order", store=store))._fused is None
    per_call = Pipeline(Bulkhead(2), Retry(on=TransportError), CircuitBreaker("pc", store=store),
                        sink=RecordingSink(per_call=True))
    assert per_call._fused is None


@pytest.mark.parametrize("fused", [True, False])
def test_queue_full_and_release_on_every_exit(fused: bool) -> None:
    async def main() -> tuple[list[Any], int, int]:
        pipeline, _sink = build(fused, max_concurrent=1, max_queue=1)
        gate = asyncio.Event()

        async def held() -> Answer:
            await gate.wait()
            return Answer(1)

        first = asyncio.create_task(pipeline.execute("op", held))
        await asyncio.sleep(0)
        second = asyncio.create_task(pipeline.execute("op", scripted(["ok"])))
        await asyncio.sleep(0)
        third = asyncio.create_task(pipeline.execute("op", scripted(["ok"])))
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(first, second, third, return_exceptions=True)
        bulkhead = pipeline.policies[0]
        return ([outcome(r) for r in results], bulkhead.active,  # type: ignore[attr-defined]
                bulkhead.waiting)  # type: ignore[attr-defined]

    results, active, waiting = asyncio.run(main())
    assert results[0] == ("ok", Answer(1)) and results[1] == ("ok", Answer(7))
    assert results[2][0] == "BulkheadFullError"
    assert (active, waiting) == (0, 0)


@pytest.mark.parametrize("fused", [True, False])
def test_cancelled_call_frees_its_slot_and_keeps_the_breaker_closed(fused: bool) -> None:
    async def main() -> tuple[int, str, bool]:
        pipeline, sink = build(fused)

        async def hangs() -> Answer:
            await asyncio.Event().wait()
            return Answer(0)

        task = asyncio.create_task(pipeline.execute("op", hangs))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        breaker = pipeline.policies[2]
        return (pipeline.policies[0].active,  # type: ignore[attr-defined]
                str(breaker.state),  # type: ignore[attr-defined]
                any(isinstance(e, AttemptFailed) for e in sink.events))

    active, state, failed = asyncio.run(main())
    assert active == 0 and "closed" in state.lower() and failed is False
