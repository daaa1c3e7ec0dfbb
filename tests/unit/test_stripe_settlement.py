"""Never charge twice, whatever the edge answers (issue 9 §1-3, issue 10 §5).

Every 4xx and 5xx status answered after a commit-then-reset (the charge ran, its answer was lost),
within one call and across calls, for create and for refund: the caller gets the payment or
``OutcomeUnknown`` (never "invalid request", "declined" or "authentication failed"), the documented
re-call returns the one payment, and FakeStripe's ledger holds exactly one charge or refund.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from _recording_wire import record

from egress import Pipeline
from egress.adapters.stripe import StripePayments
from egress.adapters.stripe._errors import stripe_retry_hook
from egress.errors import OutcomeUnknown, PaymentDeclined
from egress.http import Headers, retry_on
from egress.http._wire import WireResponse
from egress.payments import Money, Payment, PaymentRequest, PaymentStatus, RecordState, Refund
from egress.policies import Backoff, Retry
from egress.stores.idempotency_memory import MemoryIdempotencyStore
from egress.testing import FakeClock, RecordingSink
from egress.testing.fake_stripe import FakeStripe, Fault

# Every status an edge (or Stripe) may answer: the 4xx and 5xx codes in use.
STATUSES_4XX = (*range(400, 419), 421, 422, 423, 424, 425, 426, 428, 429, 431, 451)
STATUSES_5XX = (*range(500, 509), 510, 511)
STATUSES = STATUSES_4XX + STATUSES_5XX
# The pipeline's default: three attempts per call.
ATTEMPTS = 3


def order(reference: str = "order-1", payment_method: str = "pm_card_visa",
          **kw: Any) -> PaymentRequest:
    return PaymentRequest(amount=Money("20.00", "USD"), reference=reference,
                          payment_method=payment_method, **kw)


# One FakeStripe for the module, reset before each test: ~160 cases stay quick on a busy box.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[FakeStripe]:
    async with FakeStripe(seed=0) as started:
        yield started


@pytest_asyncio.fixture(loop_scope="module")
async def fake(server: FakeStripe) -> FakeStripe:
    server.reset()
    return server


# Stripe's retry rules with next to no backoff: the matrix tests decisions, not waiting.
FAST = Pipeline(Retry(on=retry_on(stripe_retry_hook), backoff=Backoff(initial=0.001, cap=0.01)))


@pytest_asyncio.fixture(loop_scope="module")
async def payments(fake: FakeStripe) -> AsyncIterator[StripePayments]:
    async with StripePayments(fake.api_key, base_url=fake.url, sink=RecordingSink(),
                              pipeline=FAST) as client:
        yield client


def live_charges(fake: FakeStripe, reference: str = "order-1") -> int:
    return sum(1 for c in fake.ledger.charges if c.reference == reference and c.live)


def refunds(fake: FakeStripe, payment_id: str) -> int:
    return sum(1 for r in fake.ledger.refunds if r.payment_intent == payment_id)


async def create_until_known(payments: StripePayments, calls: int = 3) -> Payment:
    """Call create as the docs say: OutcomeUnknown means "call again, same reference"."""
    for _ in range(calls - 1):
        try:
            return await payments.create(order())
        except OutcomeUnknown:
            continue
    return await payments.create(order())


async def refund_until_known(payments: StripePayments, payment_id: str,
                             calls: int = 3) -> Refund:
    for _ in range(calls - 1):
        try:
            return await payments.refund(payment_id, reference="r-1")
        except OutcomeUnknown:
            continue
    return await payments.refund(payment_id, reference="r-1")


# -- the reproduction of issue 9 §1 ------------------------------------------------------------


async def test_issue_reproduction_408_after_a_lost_answer(fake: FakeStripe,
                                                          payments: StripePayments) -> None:
    fake.faults.load("payment_intents.create: commit-then-reset, 408")
    with pytest.raises(OutcomeUnknown):
        await payments.create(order())
    stored = await payments.store.get(payments.scope, "create", "order-1")
    assert stored is not None and stored.state is RecordState.UNKNOWN
    found = await payments.reconcile("order-1")
    assert found is not None and found.status is PaymentStatus.SUCCEEDED
    assert (await payments.create(order())).id == found.id
    assert live_charges(fake) == 1


@pytest.mark.parametrize("status", STATUSES)
async def test_create_status_after_commit_then_reset_within_one_call(
        status: int, fake: FakeStripe, payments: StripePayments) -> None:
    fake.faults.script("payment_intents.create", Fault.commit_then_reset(),
                       Fault.http_status(status))
    try:
        first: Payment | None = await payments.create(order())
    except OutcomeUnknown:
        first = None
    final = await create_until_known(payments)
    assert first is None or first.id == final.id
    assert final.status is PaymentStatus.SUCCEEDED
    assert live_charges(fake) == 1
    assert len(fake.ledger.charges) == 1


@pytest.mark.parametrize("status", STATUSES)
async def test_create_status_after_lost_answers_across_calls(
        status: int, fake: FakeStripe, payments: StripePayments) -> None:
    fake.faults.script("payment_intents.create", Fault.commit_then_reset(),
                       *[Fault.reset()] * (ATTEMPTS - 1), Fault.http_status(status))
    with pytest.raises(OutcomeUnknown):
        await payments.create(order())
    try:
        second: Payment | None = await payments.create(order())  # the documented re-call
    except OutcomeUnknown:
        second = None
    found = await payments.reconcile("order-1")  # asks Stripe whatever the record says
    assert found is not None and (second is None or second.id == found.id)
    final = await create_until_known(payments)
    assert final.id == found.id
    assert live_charges(fake) == 1
    assert len(fake.ledger.charges) == 1


@pytest.mark.parametrize("status", STATUSES)
async def test_refund_status_after_commit_then_reset_within_one_call(
        status: int, fake: FakeStripe, payments: StripePayments) -> None:
    paid = await payments.create(order())
    fake.faults.script("refunds.create", Fault.commit_then_reset(), Fault.http_status(status))
    await refund_until_known(payments, paid.id)
    assert refunds(fake, paid.id) == 1


@pytest.mark.parametrize("status", STATUSES)
async def test_refund_status_after_lost_answers_across_calls(
        status: int, fake: FakeStripe, payments: StripePayments) -> None:
    paid = await payments.create(order())
    fake.faults.script("refunds.create", Fault.commit_then_reset(),
                       *[Fault.reset()] * (ATTEMPTS - 1), Fault.http_status(status))
    with pytest.raises(OutcomeUnknown):
        await payments.refund(paid.id, reference="r-1")
    await refund_until_known(payments, paid.id)
    assert refunds(fake, paid.id) == 1


class EdgeWire:
    """The client's wire with an edge in front of Stripe: the listed POSTs are answered by the
    edge with an HTML page (never a Stripe error object), before or after forwarding them."""

    def __init__(self, inner: Any, answers: list[tuple[int, bool]]) -> None:
        self.inner = inner
        self.answers = answers  # (status, forwarded first) for the next POSTs

    async def send(self, request: Any) -> Any:
        if request.method != "POST" or not self.answers:
            return await self.inner.send(request)
        status, forward = self.answers.pop(0)
        if forward:
            await self.inner.send(request)  # Stripe acted; the edge lost its answer
        return WireResponse(status, Headers([("Content-Type", "text/html")]),
                            f"<html><body>{status} from the edge</body></html>".encode())

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("status", [400, 402, 403, 404, 408, 413])
@pytest.mark.parametrize("forwarded", [False, True])
async def test_an_edge_page_is_never_a_stripe_decision(
        status: int, forwarded: bool, fake: FakeStripe, payments: StripePayments) -> None:
    payments.client._wire = EdgeWire(payments.client._wire,  # type: ignore[assignment]
                                     [(status, forwarded)])
    with pytest.raises(OutcomeUnknown):  # the edge may have forwarded it: unknowable
        await payments.create(order())
    stored = await payments.store.get(payments.scope, "create", "order-1")
    assert stored is not None and stored.state is RecordState.UNKNOWN  # the key is kept
    final = await create_until_known(payments)
    assert final.metadata["egress_key_generation"] == "0"  # the same key, never renewed
    assert live_charges(fake) == 1


# -- proof that does settle --------------------------------------------------------------------


async def test_stripes_replay_of_a_decline_is_proof(fake: FakeStripe,
                                                    payments: StripePayments) -> None:
    # The decline ran and was saved for the key; its answer was lost; the retry gets Stripe's
    # replay (Idempotent-Replayed: true): that is a decision, and a new key may follow.
    fake.faults.script("payment_intents.create", Fault.commit_then_reset())
    declined = order(payment_method="pm_card_chargeDeclined")
    with pytest.raises(PaymentDeclined):
        await payments.create(declined)
    stored = await payments.store.get(payments.scope, "create", "order-1")
    assert stored is not None and stored.state is RecordState.FAILED
    assert (await payments.create(order())).status is PaymentStatus.SUCCEEDED
    assert live_charges(fake) == 1


async def test_a_declined_attempt_tagged_with_its_generation_settles_at_once(
        fake: FakeStripe, payments: StripePayments) -> None:
    # Every answer lost, the attempt was declined: the intent carries this key's generation, so
    # reconcile proves "no money moved" now, without waiting settle_after (600 s).
    fake.faults.script("payment_intents.create", Fault.commit_then_reset(),
                       *[Fault.reset()] * (ATTEMPTS - 1))
    with pytest.raises(OutcomeUnknown):
        await payments.create(order(payment_method="pm_card_chargeDeclined"))
    assert await payments.reconcile("order-1") is None
    stored = await payments.store.get(payments.scope, "create", "order-1")
    assert stored is not None and stored.state is RecordState.FAILED
    paid = await payments.create(order())
    assert paid.metadata["egress_key_generation"] == "1"
    assert live_charges(fake) == 1


async def test_reconcile_asks_stripe_even_for_a_failed_record(
        fake: FakeStripe, payments: StripePayments) -> None:
    # A FAILED record written by an older version (or any lie): Stripe holds the payment.
    paid = await payments.create(order())
    stored = await payments.store.get(payments.scope, "create", "order-1")
    assert stored is not None
    await payments.store.replace(stored.with_state(RecordState.FAILED, stored.updated_at),
                                 expected_key=stored.key)
    assert (await payments.reconcile("order-1")) is not None
    assert (await payments.create(order())).id == paid.id
    assert live_charges(fake) == 1


# -- accounts without search (issue 9 §2) ------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404])
async def test_no_search_falls_back_to_the_list_scan(status: int, fake: FakeStripe) -> None:
    async with StripePayments(fake.api_key, base_url=fake.url) as other:
        paid = await other.create(order())  # made by another service: no local record here
    fake.faults.script("payment_intents.search", Fault.http_status(status))
    async with StripePayments(fake.api_key, base_url=fake.url,
                              store=MemoryIdempotencyStore()) as payments:
        wire = record(payments)
        found = await payments.find_by_reference("order-1")
        assert found is not None and found.id == paid.id
        reconciled = await payments.reconcile("order-1")
        assert reconciled is not None and reconciled.id == paid.id
        searches = [r for r in wire.sent if "/search" in r.url]
        assert len(searches) == 1  # learned once, remembered by this client
    assert fake.faults.pending() == 0


@pytest.mark.parametrize("status", [400, 404])
async def test_no_search_during_settlement_after_a_lost_answer(
        status: int, fake: FakeStripe, payments: StripePayments) -> None:
    fake.faults.script("payment_intents.create", Fault.commit_then_reset(),
                       *[Fault.reset()] * (ATTEMPTS - 1))
    fake.faults.script("payment_intents.search", *[Fault.http_status(status)] * 3)
    with pytest.raises(OutcomeUnknown):
        await payments.create(order())
    found = await payments.reconcile("order-1")
    assert found is not None and found.status is PaymentStatus.SUCCEEDED
    assert live_charges(fake) == 1


# -- a lost store (issue 9 §3) -----------------------------------------------------------------


@pytest.mark.parametrize("check", [True, False])
async def test_a_lost_store_finds_the_reference_before_charging(check: bool) -> None:
    clock = FakeClock(wall=time.time(), auto_advance=False)
    async with FakeStripe(seed=0, clock=clock) as fake:
        async with StripePayments(fake.api_key, base_url=fake.url) as first:
            paid = await first.create(order())
        clock.advance(25 * 3600)  # Stripe has forgotten the key: the derived key would charge
        async with StripePayments(fake.api_key, base_url=fake.url, check_new_references=check,
                                  store=MemoryIdempotencyStore()) as restarted:
            wire = record(restarted)
            again = await restarted.create(order())
            assert (again.id == paid.id) is check
            assert len(wire.posts()) == (0 if check else 1)
        assert live_charges(fake) == (1 if check else 2)  # off: the gap the check closes


async def test_a_lost_store_finds_the_refund_before_refunding_again() -> None:
    clock = FakeClock(wall=time.time(), auto_advance=False)
    async with FakeStripe(seed=0, clock=clock) as fake:
        async with StripePayments(fake.api_key, base_url=fake.url) as first:
            paid = await first.create(order())
            refund = await first.refund(paid.id, reference="r-1", amount=Money("5.00", "USD"))
        clock.advance(25 * 3600)
        async with StripePayments(fake.api_key, base_url=fake.url,
                                  store=MemoryIdempotencyStore()) as restarted:
            wire = record(restarted)
            again = await restarted.refund(paid.id, reference="r-1",
                                           amount=Money("5.00", "USD"))
            assert again.id == refund.id
            assert wire.posts("/v1/refunds") == []
        assert refunds(fake, paid.id) == 1


# -- key in use (issue 10 §5) ------------------------------------------------------------------


async def test_a_concurrent_caller_waits_for_the_first_and_gets_its_result(
        fake: FakeStripe, tmp_path: Any) -> None:
    path = tmp_path / "keys.db"
    fake.faults.script("payment_intents.create", Fault.latency(1.5))
    async with (StripePayments(fake.api_key, base_url=fake.url, store=path) as a,
                StripePayments(fake.api_key, base_url=fake.url, store=path) as b):
        first = asyncio.create_task(a.create(order()))
        await asyncio.sleep(0.2)  # the first attempt is running at Stripe
        second = await b.create(order())
        assert second.id == (await first).id
    assert live_charges(fake) == 1
