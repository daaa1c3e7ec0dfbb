"""Crash simulation: the process dies before the send, after the send, or after the reply.

Each run uses a SQLite idempotency store; the "restart" is a new StripePayments with a new store
object on the same file. Whatever the crash point, FakeStripe's ledger ends with exactly one
charge, and the restarted call sends the same key and the same bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _recording_wire import header, record

from egress.adapters.stripe import StripePayments
from egress.http._wire import WireRequest, WireResponse
from egress.payments import IdempotencyRecord, Money, PaymentRequest, PaymentStatus, RecordState
from egress.payments.idempotency import IdempotentReplay
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
from egress.testing import RecordingSink
from egress.testing.fake_stripe import FakeStripe


class SimulatedCrash(BaseException):
    """The process dies here (a BaseException: nothing may catch and survive it)."""


class CrashingWire:
    """Wraps the wire backend: dies before sending a POST, or after the provider answered it."""

    def __init__(self, inner: Any, *, point: str, path: Path) -> None:
        self.inner = inner
        self.point = point
        self.path = path
        self.sent: list[WireRequest] = []
        self.record_at_send: IdempotencyRecord | None = None

    async def send(self, request: WireRequest) -> WireResponse:
        if request.method != "POST":
            response: WireResponse = await self.inner.send(request)
            return response
        # What another process would read from the file at the moment of sending.
        with SqliteIdempotencyStore(self.path) as other:
            self.record_at_send = other.records_sync()[-1]  # the newest
        if self.point == "before-send":
            raise SimulatedCrash
        self.sent.append(request)
        response = await self.inner.send(request)
        if self.point == "after-send":
            raise SimulatedCrash  # the provider acted; its answer dies with the process
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class CrashAfterReplyStore(SqliteIdempotencyStore):
    """Dies when the adapter records the answer it received (the reply was read in full)."""

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        if record.state is RecordState.SUCCEEDED:
            raise SimulatedCrash
        return await super().replace(record, expected_key=expected_key)


ORDER = PaymentRequest(amount=Money("42.00", "EUR"), reference="order-42",
                       payment_method="pm_card_visa", metadata={"cart": "c-1"})


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    async with FakeStripe(seed=0) as server:
        yield server


@pytest.mark.parametrize("point", ["before-send", "after-send", "after-reply"])
async def test_crash_then_restart_charges_exactly_once(point: str, fake: FakeStripe,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = (CrashAfterReplyStore(path) if point == "after-reply"
             else SqliteIdempotencyStore(path))
    crashed = StripePayments(fake.api_key, base_url=fake.url, store=store)
    wire = CrashingWire(crashed.client._wire, point=point, path=path)
    crashed.client._wire = wire  # type: ignore[assignment]
    with pytest.raises(SimulatedCrash):
        await crashed.create(ORDER)
    await crashed.aclose()
    store.close()

    # The key was on disk, readable by another process, before the first byte went out.
    assert wire.record_at_send is not None
    assert wire.record_at_send.state is RecordState.PENDING
    expected_charges = 0 if point == "before-send" else 1
    assert len(fake.ledger.charges) == expected_charges

    # Restart: a new process, a new store object on the same file.
    sink = RecordingSink()
    async with StripePayments(fake.api_key, base_url=fake.url, store=path,
                              sink=sink) as restarted:
        recorder = record(restarted)
        payment = await restarted.create(ORDER)
        assert payment.status is PaymentStatus.SUCCEEDED
        assert await restarted.create(ORDER) == await restarted.get(payment.id)

    assert len(fake.ledger.charges) == 1
    assert fake.ledger.charges[0].payment_intent == payment.id
    (resent,) = [r for r in recorder.sent if r.method == "POST"]
    assert header(resent, "Idempotency-Key") == wire.record_at_send.key
    if wire.sent:
        assert resent.body == wire.sent[0].body
        assert header(resent, "Idempotency-Key") == header(wire.sent[0], "Idempotency-Key")
        assert sink.of(IdempotentReplay)  # Stripe replayed; it did not charge again
    stored = SqliteIdempotencyStore(path).get_sync("stripe-test", "create", "order-42")
    assert stored is not None and stored.state is RecordState.SUCCEEDED
    assert stored.result_id == payment.id


@pytest.mark.parametrize("point", ["before-send", "after-send"])
async def test_a_refund_interrupted_by_a_crash_refunds_once(point: str, fake: FakeStripe,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    async with StripePayments(fake.api_key, base_url=fake.url, store=path) as first:
        payment = await first.create(ORDER)
        wire = CrashingWire(first.client._wire, point=point, path=path)
        first.client._wire = wire  # type: ignore[assignment]
        with pytest.raises(SimulatedCrash):
            await first.refund(payment.id, reference="refund-42", amount=Money("10.00", "EUR"))
    assert wire.record_at_send is not None
    assert (wire.record_at_send.operation, wire.record_at_send.state) == (
        "refund", RecordState.PENDING)
    async with StripePayments(fake.api_key, base_url=fake.url, store=path) as restarted:
        refund = await restarted.refund(payment.id, reference="refund-42",
                                        amount=Money("10.00", "EUR"))
        assert refund.amount == Money("10.00", "EUR")
    assert len(fake.ledger.refunds) == 1
    assert fake.ledger.charges[0].amount_refunded == 1000
