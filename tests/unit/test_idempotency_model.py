"""A model check of durable idempotency: any sequence of calls, lost requests, lost replies,
refusals, declines, restarts, clock jumps and reconciliations never charges a reference twice,
and a reference that was paid keeps its one payment."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egress.errors import (
    IdempotencyMismatch,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderUnavailable,
)
from egress.payments import Money, PaymentRequest, PaymentService
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
from egress.testing import FakeClock, InMemoryPayments, PaymentFault


@dataclass(frozen=True)
class Step:
    reference: str
    amount: str
    fault: str | None
    restart: bool
    jump: float
    reconcile: bool


steps = st.builds(
    Step,
    reference=st.sampled_from(["a", "b"]),
    amount=st.sampled_from(["10.00", "10.00", "20.00"]),
    fault=st.sampled_from([None, None, "lost_reply", "lost_request", "refuse", "decline"]),
    restart=st.booleans(),
    jump=st.sampled_from([0.0, 0.0, 5.0, 700.0, 90_000.0]),
    reconcile=st.booleans(),
)

FAULTS = {"lost_reply": PaymentFault.LOST_REPLY, "lost_request": PaymentFault.LOST_REQUEST,
          "refuse": PaymentFault.UNAVAILABLE}


async def scenario(script: list[Step], path: Path) -> None:
    clock = FakeClock(wall=1_700_000_000.0, auto_advance=False)
    fake = InMemoryPayments(store=SqliteIdempotencyStore(path), clock=clock)
    service: PaymentService = fake
    paid: dict[str, str] = {}  # reference -> the id of its payment, once one was returned
    for step in script:
        clock.advance(step.jump)
        if step.restart:
            fake = fake.restarted(store=SqliteIdempotencyStore(path))
            service = fake
        if step.fault == "decline":
            fake.decline_next()
        elif step.fault is not None:
            fake.fail_next(FAULTS[step.fault], operation="create")
        request = PaymentRequest(amount=Money(step.amount, "USD"), reference=step.reference,
                                 payment_method="pm_card_visa")
        try:
            payment = await service.create(request)
        except (OutcomeUnknown, ProviderUnavailable, PaymentDeclined, IdempotencyMismatch):
            pass
        else:
            assert paid.setdefault(step.reference, payment.id) == payment.id
        fake.provider.faults.clear()
        if step.reconcile:
            try:
                found = await service.reconcile(step.reference)
            except OutcomeUnknown:
                found = None
            if found is not None:
                assert paid.setdefault(step.reference, found.id) == found.id
        for reference in ("a", "b"):
            charges = fake.charges(reference)
            assert len(charges) <= 1, f"{reference} charged twice: {charges}"
            if reference in paid:
                assert [c.id for c in charges] == [paid[reference]]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(script=st.lists(steps, min_size=1, max_size=12))
def test_no_sequence_charges_twice(script: list[Step], tmp_path: Path) -> None:
    path = tmp_path / f"model-{abs(hash(tuple(script)))}.db"
    path.unlink(missing_ok=True)
    asyncio.run(scenario(script, path))
