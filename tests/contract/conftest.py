"""The contract suite's fixture: one ``harness`` per PaymentService implementation.

The harnesses themselves live in ``_harness.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _harness import Harness, MemoryHarness, ShiftedClock, StripeHarness

from egress.testing.fake_stripe import FakeStripe


@pytest.fixture(params=["memory", "stripe"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    path = tmp_path / "keys.db"
    if request.param == "memory":
        memory = MemoryHarness(path)
        yield memory
        await memory.aclose()
        return
    clock = ShiftedClock()
    async with FakeStripe(seed=0, clock=clock) as fake:
        stripe = StripeHarness(fake, path, clock)
        try:
            yield stripe
        finally:
            await stripe.aclose()
