"""Bulkhead: the limit, the fair queue, refusals, and release on every exit path."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from egress import Pipeline
from egress.errors import BulkheadFullError, ConfigurationError, TransportError
from egress.events import BulkheadRejected
from egress.policies import Bulkhead
from egress.stores import MemoryStore
from egress.testing import FakeClock, RecordingSink


class Gate:
    """Async operations that hold their slot until let go, recording order and concurrency."""

    def __init__(self) -> None:
        self.events: dict[str, asyncio.Event] = {}
        self.started: list[str] = []
        self.running = 0
        self.peak = 0

    def op(self, name: str) -> Any:
        self.events[name] = asyncio.Event()

        async def run() -> str:
            self.started.append(name)
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                await self.events[name].wait()
            finally:
                self.running -= 1
            return name

        return run

    def let_go(self, name: str) -> None:
        self.events[name].set()


def setup(**settings: Any) -> tuple[Bulkhead, Pipeline, FakeClock, RecordingSink]:
    clock = FakeClock(auto_advance=False)
    sink = RecordingSink()
    bulkhead = Bulkhead(**settings)
    return bulkhead, Pipeline(bulkhead, clock=clock, sink=sink), clock, sink


def bounded(awaitable: Any) -> Any:
    """Never hang the suite on a bug: give up after 5 real seconds."""
    return asyncio.wait_for(awaitable, 5.0)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_n_run_at_once_and_every_queued_call_completes() -> None:
    bulkhead, pipeline, _, _ = setup(max_concurrent=3, max_queue=10)
    gate = Gate()
    names = [f"c{i}" for i in range(10)]
    tasks = [asyncio.create_task(pipeline.run(gate.op(n))) for n in names]
    await settle()
    assert gate.started == names[:3]
    assert (bulkhead.active, bulkhead.waiting) == (3, 7)
    for name in names:
        gate.let_go(name)
        await settle()
    assert await bounded(asyncio.gather(*tasks)) == names
    assert gate.peak == 3
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


async def test_the_queue_is_first_come_first_served_and_newcomers_do_not_barge() -> None:
    bulkhead, pipeline, _, _ = setup(max_concurrent=1, max_queue=5)
    gate = Gate()
    barged: list[bool] = []

    async def a_then_barge() -> None:
        await pipeline.run(gate.op("a"))
        # The slot was handed to "b", which has not run yet: a newcomer must not take it.
        barged.append(bulkhead._state.try_enter())

    first = asyncio.create_task(a_then_barge())
    await settle()
    queued = [asyncio.create_task(pipeline.run(gate.op(n))) for n in ("b", "c")]
    await settle()
    gate.let_go("a")
    late = asyncio.create_task(pipeline.run(gate.op("late")))  # arrives as the slot frees
    await settle()
    assert gate.started == ["a", "b"]
    for name in ("b", "c", "late"):
        gate.let_go(name)
        await settle()
    await bounded(asyncio.gather(first, late, *queued))
    assert gate.started == ["a", "b", "c", "late"]
    assert barged == [False]


async def test_full_means_refused_at_once_without_calling() -> None:
    _, pipeline, _, sink = setup(max_concurrent=1, max_queue=1, name="stripe")
    gate = Gate()
    holder = asyncio.create_task(pipeline.run(gate.op("a")))
    waiter = asyncio.create_task(pipeline.run(gate.op("b")))
    await settle()
    with pytest.raises(BulkheadFullError, match="stripe") as info:
        await pipeline.run(gate.op("c"))
    assert info.value.sent is False
    assert info.value.reason == "full"
    assert "1 calls in flight and 1 queued" in str(info.value)
    assert "c" not in gate.started
    [event] = sink.of(BulkheadRejected)
    assert (event.bulkhead, event.reason) == ("stripe", "full")
    gate.let_go("a")
    gate.let_go("b")
    await bounded(asyncio.gather(holder, waiter))


async def test_without_a_queue_a_busy_bulkhead_refuses_immediately() -> None:
    _, pipeline, _, _ = setup(max_concurrent=1)
    gate = Gate()
    holder = asyncio.create_task(pipeline.run(gate.op("a")))
    await settle()
    with pytest.raises(BulkheadFullError):
        await pipeline.run(gate.op("b"))
    gate.let_go("a")
    await bounded(holder)


async def test_a_queued_call_gives_up_after_max_wait() -> None:
    bulkhead, pipeline, clock, sink = setup(max_concurrent=1, max_queue=3, max_wait=2.0)
    gate = Gate()
    holder = asyncio.create_task(pipeline.run(gate.op("a")))
    waiter = asyncio.create_task(pipeline.run(gate.op("b")))
    await settle()
    clock.advance(1.9)
    await settle()
    assert not waiter.done()
    clock.advance(0.1)
    await settle()
    with pytest.raises(BulkheadFullError, match="in time") as info:
        await waiter
    assert info.value.reason == "timeout"
    assert "waited 2.000s" in str(info.value) and "full" not in str(info.value)
    assert sink.of(BulkheadRejected)[0].reason == "timeout"
    assert bulkhead.waiting == 0
    gate.let_go("a")
    await bounded(holder)
    assert bulkhead.active == 0


async def test_the_wait_never_outlasts_the_deadline() -> None:
    clock = FakeClock()  # auto-advance: the waiter's timer is the only thing to wait for
    bulkhead = Bulkhead(1, max_queue=3, max_wait=30.0)
    pipeline = Pipeline(bulkhead, clock=clock)
    release = asyncio.Event()

    async def hold() -> None:
        await release.wait()

    holder = asyncio.create_task(Pipeline(bulkhead, clock=clock).run(hold))
    await settle()
    start = clock.now()
    with pytest.raises(BulkheadFullError):
        await pipeline.execute("hold", hold, deadline=0.5)
    assert clock.now() - start == pytest.approx(0.5)
    release.set()
    await bounded(holder)


async def test_cancelling_a_running_call_frees_its_slot() -> None:
    bulkhead, pipeline, _, _ = setup(max_concurrent=1, max_queue=1)
    gate = Gate()
    running = asyncio.create_task(pipeline.run(gate.op("a")))
    queued = asyncio.create_task(pipeline.run(gate.op("b")))
    await settle()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await settle()
    assert gate.started == ["a", "b"]
    gate.let_go("b")
    assert await bounded(queued) == "b"
    assert bulkhead.active == 0


async def test_cancelling_a_queued_call_leaves_the_queue_in_order() -> None:
    bulkhead, pipeline, _, _ = setup(max_concurrent=1, max_queue=3)
    gate = Gate()
    tasks = {n: asyncio.create_task(pipeline.run(gate.op(n))) for n in ("a", "b", "c")}
    await settle()
    tasks["b"].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks["b"]
    assert bulkhead.waiting == 1
    gate.let_go("a")
    await settle()
    gate.let_go("c")
    assert await bounded(tasks["c"]) == "c"
    assert gate.started == ["a", "c"]
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


async def test_a_waiter_cancelled_as_its_slot_arrives_passes_it_on() -> None:
    bulkhead, pipeline, _, _ = setup(max_concurrent=1, max_queue=3)
    gate = Gate()
    tasks: dict[str, asyncio.Task[Any]] = {}

    async def a_then_cancel_b() -> None:
        await pipeline.run(gate.op("a"))
        # The slot was just handed to b, which has not run yet: cancel it now.
        tasks["b"].cancel()

    tasks["a"] = asyncio.create_task(a_then_cancel_b())
    await settle()
    tasks["b"] = asyncio.create_task(pipeline.run(gate.op("b")))
    tasks["c"] = asyncio.create_task(pipeline.run(gate.op("c")))
    await settle()
    gate.let_go("a")
    await settle()
    assert tasks["b"].cancelled()
    assert gate.started == ["a", "c"]
    gate.let_go("c")
    await bounded(tasks["c"])
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


async def test_a_failing_call_frees_its_slot() -> None:
    bulkhead, pipeline, _, _ = setup(max_concurrent=1)

    async def fail() -> None:
        raise TransportError("reset", sent=True)

    for _ in range(3):
        with pytest.raises(TransportError):
            await pipeline.run(fail)
    assert bulkhead.active == 0


def test_sync_threads_share_the_limit_and_all_complete() -> None:
    bulkhead = Bulkhead(2, max_queue=6, max_wait=10.0)
    pipeline = Pipeline(bulkhead)
    lock = threading.Lock()
    running = [0, 0]  # now, peak
    done: list[int] = []

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return i

    threads = [threading.Thread(target=lambda i=i: done.append(pipeline.run_sync(work, i)))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    assert sorted(done) == list(range(8))
    assert running[1] == 2
    assert bulkhead.active == 0


def test_sync_full_and_timeout_refusals() -> None:
    sink = RecordingSink()
    bulkhead = Bulkhead(1, max_queue=1, max_wait=0.05)
    pipeline = Pipeline(bulkhead, sink=sink)
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(5.0)

    holder = threading.Thread(target=pipeline.run_sync, args=(hold,))
    holder.start()
    assert entered.wait(5.0)
    started = time.monotonic()
    with pytest.raises(BulkheadFullError) as info:
        pipeline.run_sync(lambda: None)  # queued, then timed out
    assert info.value.reason == "timeout"
    assert time.monotonic() - started >= 0.04
    release.set()
    holder.join(5.0)
    assert [e.reason for e in sink.of(BulkheadRejected)] == ["timeout"]
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)
    assert pipeline.run_sync(lambda: "ok") == "ok"


def test_sync_a_thread_interrupted_while_queued_leaves_no_trace() -> None:
    bulkhead = Bulkhead(1, max_queue=1, max_wait=5.0)
    state = bulkhead._state
    assert state.try_enter()
    from egress.policies.bulkhead import _ThreadWaiter

    waiter = _ThreadWaiter()
    assert state.enter_or_queue(waiter, True) == 1
    assert state.abandon(waiter) is False
    assert (state.active, state.waiting) == (1, 0)
    assert state.release() is None
    assert state.active == 0


def test_named_bulkheads_share_their_slots() -> None:
    store = MemoryStore()
    a = Bulkhead(1, name="upstream", store=store)
    b = Bulkhead(1, name="upstream", store=store)
    assert a._state is b._state
    with pytest.raises(ConfigurationError, match="other settings"):
        Bulkhead(2, name="upstream", store=store)


@pytest.mark.parametrize(("args", "settings", "named"), [
    ((0,), {}, "max_concurrent"),
    ((True,), {}, "max_concurrent"),
    ((1,), {"max_queue": -1}, "max_queue"),
    ((1,), {"max_wait": -1.0}, "max_wait"),
    ((1,), {"max_wait": float("nan")}, "max_wait"),
])
def test_bad_settings_are_refused_by_name(args: tuple[Any, ...], settings: dict[str, Any],
                                          named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        Bulkhead(*args, **settings)


def test_repr_names_the_limits() -> None:
    assert repr(Bulkhead(4, max_queue=2)) == "Bulkhead(4, max_queue=2, max_wait=1.0, name=None)"
