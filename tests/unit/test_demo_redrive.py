"""The demo's re-drive of payments refused during an outage, as a job queue would do it."""

from __future__ import annotations

import asyncio
from collections import Counter

from egress.demo._scenario import _redrive
from egress.payments import Money, PaymentRequest
from egress.testing import InMemoryPayments, PaymentFault


def _requests(count: int) -> list[PaymentRequest]:
    return [PaymentRequest(amount=Money("5.00", "USD"), reference=f"o-{i}",
                           payment_method="pm_card_visa") for i in range(count)]


async def test_probes_until_the_provider_is_back_then_sends_the_rest_once() -> None:
    payments = InMemoryPayments()
    payments.fail_next(PaymentFault.UNAVAILABLE, PaymentFault.UNAVAILABLE)  # still down twice
    refused = _requests(6)
    paid: set[str] = set()
    unknown: list[PaymentRequest] = []
    redriven: Counter[str] = Counter()
    await _redrive(payments, refused, gate=asyncio.Semaphore(4),  # type: ignore[arg-type]
                   paid=paid, unknown=unknown, redriven=redriven)
    assert redriven == {"succeeded": 6}
    assert paid == {r.reference for r in refused} and unknown == []
    for request in refused:
        assert len(payments.charges(request.reference)) == 1  # never twice


async def test_a_lost_answer_stays_queued_and_is_sent_again_with_its_key() -> None:
    payments = InMemoryPayments()
    payments.fail_next(PaymentFault.LOST_REPLY)  # the probe is charged, its answer lost
    refused = _requests(3)
    paid: set[str] = set()
    redriven: Counter[str] = Counter()
    await _redrive(payments, refused, gate=asyncio.Semaphore(4),  # type: ignore[arg-type]
                   paid=paid, unknown=[], redriven=redriven)
    assert redriven == {"succeeded": 3} and len(paid) == 3
    assert len(payments.charges("o-0")) == 1  # sent again with the same key: one charge
