"""Payments through StripePayments against FakeStripe's faults (issue 17 §1, "Payments").

One scenario per fault, each judged three ways: what the caller got (a payment, a definite typed
failure, or ``OutcomeUnknown`` carrying what reconciliation needs), FakeStripe's ledger (no
second charge or refund, ever) and the counters (egress's events, FakeStripe's ``stats()``).
Real process deaths and races are in ``test_payments_processes.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
import pytest_asyncio
from _payments import (
    EDGE_STATUSES,
    FAST,
    ShiftedWall,
    counts,
    digest,
    fake,
    header,
    live_charges,
    record,
    server,
)

from egress.adapters.stripe import StripePayments
from egress.errors import IdempotencyMismatch, OutcomeUnknown
from egress.payments import Money, Payment, PaymentRequest, PaymentStatus, RecordState
from egress.stores.idempotency_memory import MemoryIdempotencyStore
from egress.testing import RecordingSink
from egress.testing.fake_stripe import FakeStripe, Fault

pytestmark = pytest.mark.asyncio(loop_scope="module")
__all__ = ["fake", "server"]  # fixtures, shared with the issue 9 settlement tests
AREA = "Payments"
ATTEMPTS = 3  # the default pipeline's attempts per call


def order(reference: str = "order-1", **kw: Any) -> PaymentRequest:
    kw.setdefault("amount", Money("20.00", "USD"))
    kw.setdefault("payment_method", "pm_card_visa")
    return PaymentRequest(reference=reference, **kw)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest_asyncio.fixture(loop_scope="module")
async def payments(fake: FakeStripe, sink: RecordingSink) -> AsyncIterator[StripePayments]:
    async with StripePayments(fake.api_key, base_url=fake.url, sink=sink, pipeline=FAST,
                              rate_limit=None) as client:
        yield client


@pytest.mark.reliability(
    area=AREA, fault="commit-then-reset on a create and on a refund: the provider acts, then "
                     "resets the connection before answering",
    expected="the retry sends the same key and the same bytes; Stripe replays; the caller gets "
             "the one payment / refund; 1 charge, 1 refund; one replay counted on each side")
async def test_commit_then_reset(fake: FakeStripe, payments: StripePayments,
                                 sink: RecordingSink) -> None:
    wire = record(payments)
    fake.faults.script("payment_intents.create", Fault.commit_then_reset())
    paid = await payments.create(order())
    fake.faults.script("refunds.create", Fault.commit_then_reset())
    refund = await payments.refund(paid.id, reference="refund-1")
    assert paid.status is PaymentStatus.SUCCEEDED and refund.amount == Money("20.00", "USD")

    for path in ("/v1/payment_intents", "/v1/refunds"):
        first, second = wire.posts(path)
        assert header(first, "Idempotency-Key") == header(second, "Idempotency-Key")
        assert digest(first.body) == digest(second.body)
    assert live_charges(fake, "order-1") == 1 and len(fake.ledger.charges) == 1
    assert len(fake.ledger.refunds) == 1
    assert counts(sink)["idempotency.replayed"] == 2
    stats = fake.stats()
    assert stats["idempotent_replays"] == 2 and stats["fault.commit-then-reset"] == 2
    assert stats["route.payment_intents.create"] == stats["route.refunds.create"] == 2


@pytest.mark.reliability(
    area=AREA, fault="commit-then-500: the provider charges, then answers 500 "
                     "(Stripe-Should-Retry: false), and the key replays that 500",
    expected="OutcomeUnknown with the key and reference (never a failure); reconcile finds "
             "the payment; the next create returns it; 1 charge")
async def test_commit_then_500(fake: FakeStripe, payments: StripePayments,
                               sink: RecordingSink) -> None:
    fake.faults.script("payment_intents.create", Fault.commit_then_500())
    with pytest.raises(OutcomeUnknown) as caught:
        await payments.create(order())
    assert caught.value.reference == "order-1" and caught.value.idempotency_key
    found = await payments.reconcile("order-1")
    assert found is not None and found.status is PaymentStatus.SUCCEEDED
    assert (await payments.create(order())).id == found.id
    assert live_charges(fake, "order-1") == 1 and len(fake.ledger.charges) == 1
    events = counts(sink)
    assert events["payments.outcome_unknown"] == 1 and events["payments.reconciled"] == 1
    stats = fake.stats()
    assert stats["fault.commit-then-500"] == 1
    # One POST in all: not retried (a 500 that says "don't retry"), and the re-call after
    # reconcile returned the recorded payment without sending again.
    assert stats["route.payment_intents.create"] == 1


# A sample of the issue 9 matrix (every 4xx and 5xx, both ways, create and refund: 156 cases in
# tests/unit/test_stripe_settlement.py, which runs all of them): a lost answer, then an edge
# status, within one call and across calls, all through one client, with the ledger and the
# counters checked over the whole run.
EDGE_SAMPLE = (400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504)


@pytest.mark.reliability(
    area=AREA, fault=f"a lost answer (commit-then-reset), then each of {len(EDGE_SAMPLE)} edge "
                     f"statuses (4xx and 5xx), within one call and across calls, for create "
                     f"and refund ({4 * len(EDGE_SAMPLE)} sequences; all {len(EDGE_STATUSES)} "
                     f"statuses in the unit matrix)",
    expected="never 'invalid' or 'declined': the payment or OutcomeUnknown, then the one "
             "payment / refund; exactly one charge and one refund per reference")
async def test_a_lost_answer_then_every_edge_status(fake: FakeStripe, payments: StripePayments,
                                                    sink: RecordingSink) -> None:
    assert set(EDGE_SAMPLE) <= set(EDGE_STATUSES)
    unknown = 0
    for status in EDGE_SAMPLE:
        for across in (False, True):
            reference = f"edge-{status}-{int(across)}"
            lost = [Fault.reset()] * (ATTEMPTS - 1) if across else []
            fake.faults.script("payment_intents.create", Fault.commit_then_reset(), *lost,
                               Fault.http_status(status))
            paid, misses = await until_known(partial(payments.create, order(reference)))
            unknown += misses
            fake.faults.script("refunds.create", Fault.commit_then_reset(), *lost,
                               Fault.http_status(status))
            _, misses = await until_known(
                partial(payments.refund, paid.id, reference="r-" + reference))
            unknown += misses
            assert live_charges(fake, reference) == 1, (status, across)
            assert [r.payment_intent for r in fake.ledger.refunds].count(paid.id) == 1
    assert not fake.ledger.double_charges()
    assert len(fake.ledger.charges) == len(fake.ledger.refunds) == 2 * len(EDGE_SAMPLE)
    assert fake.faults.pending() == 0  # every scripted fault was acted out
    assert counts(sink)["payments.outcome_unknown"] == unknown >= 2 * len(EDGE_SAMPLE)


async def until_known(call: Any, calls: int = 4) -> tuple[Any, int]:
    """Call as the docs say (OutcomeUnknown: call again, same reference): (result, misses)."""
    for miss in range(calls):
        try:
            return await call(), miss
        except OutcomeUnknown:
            continue
    raise AssertionError(f"still unknown after {calls} calls")


@pytest.mark.reliability(
    area=AREA, fault="parameter drift: after an ambiguous first call, the same reference is "
                     "sent again re-serialised (metadata in another order, 20 vs 20.00), and "
                     "then with a different amount",
    expected="equal parameters give byte-identical bodies under the same key (Stripe replays); "
             "a different amount is IdempotencyMismatch before anything is sent; 1 charge of "
             "the first amount")
async def test_parameter_drift_between_attempts(fake: FakeStripe, payments: StripePayments,
                                                sink: RecordingSink) -> None:
    wire = record(payments)
    fake.faults.script("payment_intents.create", *[Fault.commit_then_reset()] * ATTEMPTS)
    with pytest.raises(OutcomeUnknown):
        await payments.create(order(metadata={"a": "1", "b": "2"}))
    again = await payments.create(order(amount=Money("20", "USD"),
                                        metadata={"b": "2", "a": "1"}))
    posts = wire.posts()
    assert len(posts) == ATTEMPTS + 1
    assert len({digest(p.body) for p in posts}) == 1
    assert len({header(p, "Idempotency-Key") for p in posts}) == 1
    sent = len(wire.sent)
    with pytest.raises(IdempotencyMismatch):
        await payments.create(order(amount=Money("25.00", "USD")))
    assert len(wire.sent) == sent  # refused locally: nothing went out
    (charge,) = fake.ledger.charges
    assert charge.amount == 2000 and charge.payment_intent == again.id
    assert fake.stats().get("idempotency_mismatch", 0) == 0  # Stripe never saw the drift
    assert counts(sink)["idempotency.key_reused"] == 1


@pytest.mark.reliability(
    area=AREA, fault="every attempt ambiguous: (a) the first attempt charged, then every "
                     "answer was lost; (b) every request reset after it was read, nothing "
                     "charged",
    expected="OutcomeUnknown each time; (a) reconcile finds the payment; (b) reconcile keeps "
             "saying OutcomeUnknown until the settle window has passed, then proves absence "
             "and the next call charges once with a new key")
async def test_every_attempt_ambiguous_then_reconcile(fake: FakeStripe) -> None:
    clock = ShiftedWall()
    sink = RecordingSink()
    async with StripePayments(fake.api_key, base_url=fake.url, sink=sink, pipeline=FAST,
                              rate_limit=None, clock=clock) as payments:
        fake.faults.script("payment_intents.create", Fault.commit_then_reset(),
                           *[Fault.reset()] * (ATTEMPTS - 1))
        with pytest.raises(OutcomeUnknown):
            await payments.create(order("charged"))
        found = await payments.reconcile("charged")
        assert found is not None and found.status is PaymentStatus.SUCCEEDED

        fake.faults.script("payment_intents.create", *[Fault.reset()] * ATTEMPTS)
        with pytest.raises(OutcomeUnknown) as caught:
            await payments.create(order("never"))
        key = caught.value.idempotency_key
        with pytest.raises(OutcomeUnknown):  # absence is not trusted yet
            await payments.reconcile("never")
        clock.offset += payments._keeper.settle_after + 1
        assert await payments.reconcile("never") is None  # proven: nothing was charged
        paid = await payments.create(order("never"))
        stored = await payments.store.get(payments.scope, "create", "never")
        assert stored is not None and stored.state is RecordState.SUCCEEDED
        assert stored.key != key  # a new key, only after the proof
    assert live_charges(fake, "charged") == 1 and live_charges(fake, "never") == 1
    assert fake.ledger.charges[-1].payment_intent == paid.id
    events = counts(sink)
    assert events["payments.outcome_unknown"] == 2
    assert [e.how for e in sink.events if e.kind == "payments.reconciled"] == ["found", "absent"]
    assert events["idempotency.key_renewed"] == 1


@pytest.mark.reliability(
    area=AREA, fault="an account without search (search answers 404): an answer lost on every "
                     "attempt, then the idempotency store lost with the process",
    expected="a fresh client sends the same derived key and gets Stripe's replay (1 charge); "
             "find_by_reference and reconcile fall back to the consistent list scan and find "
             "the payment; search is asked once per client, then remembered as missing")
async def test_an_account_without_search(fake: FakeStripe, payments: StripePayments) -> None:
    fake.faults.load("payment_intents.search: 100% 404")
    first = record(payments)
    fake.faults.script("payment_intents.create", *[Fault.commit_then_reset()] * ATTEMPTS)
    with pytest.raises(OutcomeUnknown):
        await payments.create(order())
    sink = RecordingSink()
    async with StripePayments(fake.api_key, base_url=fake.url, sink=sink, pipeline=FAST,
                              rate_limit=None, store=MemoryIdempotencyStore()) as restarted:
        wire = record(restarted)
        paid: Payment = await restarted.create(order())
        (post,) = wire.posts()
        assert header(post, "Idempotency-Key") == header(first.posts()[0], "Idempotency-Key")
        assert counts(sink)["idempotency.replayed"] == 1
    async with StripePayments(fake.api_key, base_url=fake.url, pipeline=FAST, rate_limit=None,
                              store=MemoryIdempotencyStore()) as other:
        wire = record(other)
        found = await other.find_by_reference("order-1")
        reconciled = await other.reconcile("order-1")
        assert found is not None and reconciled is not None
        assert found.id == reconciled.id == paid.id
        assert len([r for r in wire.sent if "/search" in r.url]) == 1  # learned, remembered
        assert wire.posts() == []
    assert live_charges(fake, "order-1") == 1 and len(fake.ledger.charges) == 1
    stats = fake.stats()
    assert stats["status.404"] >= 2 and stats["route.payment_intents.list"] >= 2
