"""A model check of settlement against FakeStripe: any sequence of calls whose attempts meet lost
answers (the charge ran or did not) and edge statuses never charges a reference twice, never
reports "declined"/"invalid" while money moved, and always ends with the one payment.

The calls run on 127.0.0.1 against one threaded FakeStripe, reset per example, through either
face of the adapter (StripePayments or SyncStripePayments, drawn per example).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _sync_faces import FACES, opened
from egress.errors import (
    AuthenticationFailed,
    InvalidPaymentRequest,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderUnavailable,
)
from egress.payments import Money, PaymentRequest, PaymentStatus
from egress.stores import MEMORY_STORE
from egress.stores.idempotency_memory import MemoryIdempotencyStore
from egress.testing.fake_stripe import FakeStripe

# Each example is a few real loopback calls (~0.3 s); raise it for a soak run.
EXAMPLES = int(os.environ.get("EGRESS_MODEL_EXAMPLES", "40"))

EDGE_STATUSES = (400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504)
LOST = ("commit-then-reset", "reset", "commit-then-500", "stored-500", "truncate",
        "malformed-json", "key-in-use")
faults = st.one_of(st.sampled_from(LOST), st.sampled_from(EDGE_STATUSES).map(str))


@dataclass(frozen=True)
class Call:
    reconcile: bool
    create_faults: tuple[str, ...]
    search_fails: bool


calls = st.builds(Call, reconcile=st.booleans(),
                  create_faults=st.lists(faults, max_size=3).map(tuple),
                  search_fails=st.booleans())


@pytest.fixture(scope="module")
def server() -> Iterator[FakeStripe]:
    with FakeStripe(seed=0) as fake:
        yield fake


def live(fake: FakeStripe) -> int:
    return sum(1 for c in fake.ledger.charges if c.live and c.reference == "ref")


async def run(fake: FakeStripe, script: list[Call], card: str, face: str) -> None:
    request = PaymentRequest(amount=Money("12.00", "USD"), reference="ref", payment_method=card)
    store = MemoryIdempotencyStore()
    paid: str | None = None
    async with opened(face, fake.api_key, base_url=fake.url, store=store) as payments:
        for call in script:
            fake.faults.clear()
            if call.create_faults:
                fake.faults.script("payment_intents.create", *call.create_faults)
            if call.search_fails:
                fake.faults.script("payment_intents.search", "404")
            try:
                if call.reconcile:
                    result = await payments.reconcile("ref")
                else:
                    result = await payments.create(request)
            except (OutcomeUnknown, ProviderUnavailable):
                result = None
            except (PaymentDeclined, InvalidPaymentRequest, AuthenticationFailed):
                # A definitive "nothing happened" is only ever said when nothing happened.
                assert live(fake) == 0
                result = None
            assert live(fake) <= 1
            if result is not None and result.status is PaymentStatus.SUCCEEDED:
                assert paid in (None, result.id)
                paid = result.id
                assert live(fake) == 1
    fake.faults.clear()
    # The end: no more faults. Absence may be trusted at once now (nothing is in flight).
    async with opened(face, fake.api_key, base_url=fake.url, store=store,
                      settle_after=0) as payments:
        final = None
        for _ in range(3):
            try:
                final = await payments.create(request)
                break
            except (OutcomeUnknown, PaymentDeclined, InvalidPaymentRequest):
                await payments.reconcile("ref")
        if card == "pm_card_visa":
            assert final is not None and final.status is PaymentStatus.SUCCEEDED
            assert paid in (None, final.id)
            assert live(fake) == 1
        else:
            assert live(fake) == 0


@settings(max_examples=EXAMPLES)
@given(script=st.lists(calls, min_size=1, max_size=4),
       card=st.sampled_from(["pm_card_visa", "pm_card_visa", "pm_card_chargeDeclined"]),
       face=st.sampled_from(FACES))
def test_no_sequence_of_lost_answers_and_edge_statuses_charges_twice(
        server: FakeStripe, script: list[Call], card: str, face: str) -> None:
    server.reset()
    MEMORY_STORE.clear()  # breakers and budgets are shared by name: none carries over
    asyncio.run(run(server, script, card, face))


def refunded(fake: FakeStripe, payment_id: str) -> int:
    return sum(1 for r in fake.ledger.refunds if r.payment_intent == payment_id)


async def run_refunds(fake: FakeStripe, script: list[tuple[str, ...]], face: str) -> None:
    store = MemoryIdempotencyStore()
    async with opened(face, fake.api_key, base_url=fake.url, store=store) as payments:
        paid = await payments.create(PaymentRequest(amount=Money("12.00", "USD"),
                                                    reference="ref",
                                                    payment_method="pm_card_visa"))
        done: str | None = None
        for refund_faults in script:
            fake.faults.clear()
            if refund_faults:
                fake.faults.script("refunds.create", *refund_faults)
            try:
                refund = await payments.refund(paid.id, reference="r")
            except (OutcomeUnknown, ProviderUnavailable):
                refund = None
            except (InvalidPaymentRequest, AuthenticationFailed, PaymentDeclined):
                assert refunded(fake, paid.id) == 0  # "nothing happened" only when true
                refund = None
            assert refunded(fake, paid.id) <= 1
            if refund is not None:
                assert done in (None, refund.id)
                done = refund.id
    fake.faults.clear()
    # The end: no faults, and every stored key counts as stale (the provider is asked first,
    # absence trusted at once: nothing is in flight), so even a saved 500 is settled.
    async with opened(face, fake.api_key, base_url=fake.url, store=store, settle_after=0,
                      max_key_age=1e-6) as payments:
        final = await payments.refund(paid.id, reference="r")
    assert done in (None, final.id)
    assert refunded(fake, paid.id) == 1


@settings(max_examples=EXAMPLES // 2)
@given(script=st.lists(st.lists(faults, max_size=3).map(tuple), min_size=1, max_size=4),
       face=st.sampled_from(FACES))
def test_no_sequence_of_lost_answers_and_edge_statuses_refunds_twice(
        server: FakeStripe, script: list[tuple[str, ...]], face: str) -> None:
    server.reset()
    MEMORY_STORE.clear()
    asyncio.run(run_refunds(server, script, face))
