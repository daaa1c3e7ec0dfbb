"""The contract suite's fixture: one ``harness`` per PaymentService implementation, each in
its async and its sync face.

The harnesses themselves live in ``_harness.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _harness import Harness, MemoryHarness, ShiftedClock, StripeHarness

from egress.testing.fake_stripe import FakeStripe


@pytest.fixture(params=["memory", "stripe", "memory-sync", "stripe-sync"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    path = tmp_path / "keys.db"
    sync = request.param.endswith("-sync")
    if request.param.startswith("memory"):
        memory = MemoryHarness(path, sync=sync)
        yield memory
        await memory.aclose()
        return
    clock = ShiftedClock()
    async with FakeStripe(seed=0, clock=clock) as fake:
        stripe = StripeHarness(fake, path, clock, sync=sync)
        try:
            yield stripe
        finally:
            await stripe.aclose()
