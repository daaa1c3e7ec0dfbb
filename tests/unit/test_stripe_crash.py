"""Crash simulation: the process dies before the send, after the send, or after the reply.

Each run uses a SQLite idempotency store; the "restart" is a new StripePayments with a new store
object on the same file. Whatever the crash point, FakeStripe's ledger ends with exactly one
charge, and the restarted call sends the same key and the same bytes. Every test runs against
both faces (StripePayments, and SyncStripePayments on a worker thread as in a WSGI server), and
one kills a real process running the sync face (SIGKILL) while Stripe holds its request.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _recording_wire import header, record
from _sync_payment_worker import ORDER as WORKER_ORDER

from _sync_faces import FACES, async_port, close, kill_while_held, stripe
from egress.adapters.stripe import SyncStripePayments
from egress.http._wire import WireRequest, WireResponse
from egress.payments import IdempotencyRecord, Money, PaymentStatus, RecordState
from egress.payments.idempotency import IdempotentReplay
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
from egress.testing import RecordingSink
from egress.testing.fake_stripe import FakeStripe, Fault

WORKER = Path(__file__).with_name("_sync_payment_worker.py")


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

    def _before(self, request: WireRequest) -> None:
        # What another process would read from the file at the moment of sending.
        with SqliteIdempotencyStore(self.path) as other:
            self.record_at_send = other.records_sync()[-1]  # the newest
        if self.point == "before-send":
            raise SimulatedCrash
        self.sent.append(request)

    def _after(self) -> None:
        if self.point == "after-send":
            raise SimulatedCrash  # the provider acted; its answer dies with the process

    async def send(self, request: WireRequest) -> WireResponse:
        if request.method == "POST":
            self._before(request)
        response: WireResponse = await self.inner.send(request)
        if request.method == "POST":
            self._after()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class SyncCrashingWire(CrashingWire):
    """The same around SyncApiClient's blocking wire."""

    def send(self, request: WireRequest) -> WireResponse:  # type: ignore[override]
        if request.method == "POST":
            self._before(request)
        response: WireResponse = self.inner.send(request)
        if request.method == "POST":
            self._after()
        return response

    def close(self) -> None:
        self.inner.close()


def crash_wire(payments: Any, *, point: str, path: Path) -> CrashingWire:
    """Install a crashing wire in ``payments`` (either face) and return it."""
    kind = SyncCrashingWire if payments.client.backend == "stdlib" else CrashingWire
    wire = kind(payments.client._wire, point=point, path=path)
    payments.client._wire = wire
    return wire


class CrashAfterReplyStore(SqliteIdempotencyStore):
    """Dies when the adapter records the answer it received (the reply was read in full): the
    sync face writes through ``replace_sync``, the async one through ``replace``."""

    def replace_sync(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        if record.state is RecordState.SUCCEEDED:
            raise SimulatedCrash
        return super().replace_sync(record, expected_key=expected_key)

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        if record.state is RecordState.SUCCEEDED:
            raise SimulatedCrash
        return await super().replace(record, expected_key=expected_key)


ORDER = WORKER_ORDER  # the same order as the killed worker process's


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    async with FakeStripe(seed=0) as server:
        yield server


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("point", ["before-send", "after-send", "after-reply"])
async def test_crash_then_restart_charges_exactly_once(point: str, face: str, fake: FakeStripe,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = (CrashAfterReplyStore(path) if point == "after-reply"
             else SqliteIdempotencyStore(path))
    crashed = stripe(face, fake.api_key, base_url=fake.url, store=store)
    wire = crash_wire(crashed, point=point, path=path)
    with pytest.raises(SimulatedCrash):
        await async_port(crashed).create(ORDER)
    await close(crashed)
    store.close()

    # The key was on disk, readable by another process, before the first byte went out.
    assert wire.record_at_send is not None
    assert wire.record_at_send.state is RecordState.PENDING
    expected_charges = 0 if point == "before-send" else 1
    assert len(fake.ledger.charges) == expected_charges

    # Restart: a new process, a new store object on the same file.
    sink = RecordingSink()
    restarted = stripe(face, fake.api_key, base_url=fake.url, store=path, sink=sink)
    recorder = record(restarted)
    port = async_port(restarted)
    payment = await port.create(ORDER)
    assert payment.status is PaymentStatus.SUCCEEDED
    assert await port.create(ORDER) == await port.get(payment.id)
    await close(restarted)

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


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("point", ["before-send", "after-send"])
async def test_a_refund_interrupted_by_a_crash_refunds_once(point: str, face: str,
                                                            fake: FakeStripe,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    first = stripe(face, fake.api_key, base_url=fake.url, store=path)
    payment = await async_port(first).create(ORDER)
    wire = crash_wire(first, point=point, path=path)
    with pytest.raises(SimulatedCrash):
        await async_port(first).refund(payment.id, reference="refund-42",
                                       amount=Money("10.00", "EUR"))
    await close(first)
    assert wire.record_at_send is not None
    assert (wire.record_at_send.operation, wire.record_at_send.state) == (
        "refund", RecordState.PENDING)
    restarted = stripe(face, fake.api_key, base_url=fake.url, store=path)
    refund = await async_port(restarted).refund(payment.id, reference="refund-42",
                                                amount=Money("10.00", "EUR"))
    assert refund.amount == Money("10.00", "EUR")
    await close(restarted)
    assert len(fake.ledger.refunds) == 1
    assert fake.ledger.charges[0].amount_refunded == 1000


def test_a_killed_sync_process_resumes_with_its_key_and_charges_once(tmp_path: Path) -> None:
    """A real crash of the sync face: a worker process is SIGKILLed while Stripe holds its
    create (the charge goes through after the process is gone). A new process on the same
    SQLite file sends the key stored before the first byte, and Stripe charges once."""
    path = tmp_path / "keys.db"
    with FakeStripe(seed=0) as fake:
        fake.faults.script("payment_intents.create", Fault.latency(2.0))
        kill_while_held(fake, [sys.executable, str(WORKER), fake.url, fake.api_key, str(path)])
        with SqliteIdempotencyStore(path) as store:
            (stored,) = store.records_sync()
        assert (stored.operation, stored.state) == ("create", RecordState.PENDING)

        with SyncStripePayments(fake.api_key, base_url=fake.url, store=path) as restarted:
            wire = record(restarted)
            payment = restarted.create(ORDER)  # may meet 409 first: the kill's request
        assert payment.status is PaymentStatus.SUCCEEDED
        assert {header(post, "Idempotency-Key") for post in wire.posts()} == {stored.key}
        assert len(fake.ledger.charges) == 1
        assert fake.ledger.charges[0].payment_intent == payment.id
