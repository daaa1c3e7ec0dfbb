"""Both faces of a payment implementation, driven from async tests.

A sync face (SyncStripePayments, SyncInMemoryPayments) is called the way a WSGI server or a
Celery worker calls it: on a thread of its own. :class:`ThreadedView` runs each call on a worker
thread, so FakeStripe keeps serving on the test's event loop meanwhile, and gives the suite the
async port to await: one test body covers both faces.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from egress.adapters.stripe import StripePayments, SyncStripePayments
from egress.payments import PaymentService, SyncPaymentService
from egress.testing import InMemoryPayments
from egress.testing.fake_stripe import FakeStripe

FACES = ["async", "sync"]
T = TypeVar("T")


class ThreadedView:
    """The async port over a sync face: every call blocks a worker thread, not the loop."""

    def __init__(self, face: SyncPaymentService) -> None:
        self.face = face

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        method = getattr(self.face, name)

        async def call(*args: object, **kwargs: object) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)
        return call


def async_port(face: PaymentService | SyncPaymentService) -> PaymentService:
    """What a test awaits: an async face as it is, a sync face through a ThreadedView."""
    if isinstance(face, StripePayments | InMemoryPayments):
        return face
    return ThreadedView(face)  # type: ignore[return-value]


def stripe(face: str, *args: Any, **kwargs: Any) -> StripePayments | SyncStripePayments:
    """``StripePayments(...)`` (face ``"async"``) or ``SyncStripePayments(...)`` (``"sync"``)."""
    kind = SyncStripePayments if face == "sync" else StripePayments
    return kind(*args, **kwargs)


async def close(client: StripePayments | SyncStripePayments) -> None:
    if isinstance(client, SyncStripePayments):
        client.close()
    else:
        await client.aclose()


@contextlib.asynccontextmanager
async def opened(face: str, *args: Any, **kwargs: Any) -> AsyncIterator[PaymentService]:
    """``async with opened(face, key, ...) as payments:``: the client of that face, as the
    async port, closed at the end (``async with StripePayments(...)`` for either face)."""
    client = stripe(face, *args, **kwargs)
    try:
        yield async_port(client)
    finally:
        await close(client)


def kill_while_held(fake: FakeStripe, argv: list[str]) -> None:
    """Start ``argv`` (a process that sends one create, which ``fake`` holds with a latency
    fault) and SIGKILL it once its POST is at Stripe: a real crash mid-payment."""
    child = subprocess.Popen(argv)
    try:
        give_up = time.monotonic() + 60
        while fake.stats().get("fault.latency", 0) == 0:  # the POST is at Stripe, held
            assert child.poll() is None, "the worker ended before sending"
            assert time.monotonic() < give_up, "the worker never sent its create"
            time.sleep(0.02)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def in_threads(call: Callable[[], T], count: int) -> list[T]:
    """``call()`` on ``count`` threads at once (as a threaded WSGI server would); the results."""
    results: list[T] = []
    threads = [threading.Thread(target=lambda: results.append(call())) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results
