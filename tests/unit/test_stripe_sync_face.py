"""SyncStripePayments and the machinery that lets it share every decision with StripePayments.

The contract suite and the crash tests run against both faces; these tests cover what only the
sync face has: plain sync code with no event loop, the same bytes on the wire as the async face,
the pieces of ``egress.payments._drive``, and the refusal of async-only components.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from _recording_wire import header, record

from _sync_faces import FACES, async_port, close, in_threads, stripe
from egress import Pipeline
from egress.adapters.stripe import StripePayments, SyncStripePayments
from egress.errors import ConfigurationError, OutcomeUnknown, ProviderUnavailable
from egress.payments import (
    Money,
    PaymentRequest,
    PaymentService,
    PaymentStatus,
    RecordState,
    SyncPaymentService,
)
from egress.payments._drive import blocking_store, drive
from egress.payments.idempotency import IdempotencyRecord
from egress.policies import CircuitBreaker
from egress.stores.idempotency_memory import MemoryIdempotencyStore
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
from egress.testing import SyncInMemoryPayments
from egress.testing.fake_stripe import FakeStripe, Fault


def order(reference: str = "order-1", **kw: Any) -> PaymentRequest:
    kw.setdefault("payment_method", "pm_card_visa")
    return PaymentRequest(amount=Money("20.00", "USD"), reference=reference, **kw)


# -- plain sync code -----------------------------------------------------------------------------


def test_plain_sync_code_with_no_event_loop(tmp_path: Path) -> None:
    """What a Django view or a Celery task does: no loop anywhere on this thread."""
    with FakeStripe(seed=0) as fake, SyncStripePayments(
            fake.api_key, base_url=fake.url, store=tmp_path / "keys.db") as payments:
        assert isinstance(payments, SyncPaymentService)
        held = payments.create(order(capture=False))
        assert held.status is PaymentStatus.REQUIRES_CAPTURE
        assert payments.create(order(capture=False)) == held  # same reference: same payment
        paid = payments.capture(held.id, amount=Money("15.00", "USD"))
        assert paid.status is PaymentStatus.SUCCEEDED
        refund = payments.refund(paid.id, reference="r-1", amount=Money("5.00", "USD"))
        assert refund.amount == Money("5.00", "USD")
        assert payments.find_by_reference("order-1") == payments.get(paid.id)
        assert payments.reconcile("order-1") == payments.get(paid.id)
        assert payments.client.backend == "stdlib"
        assert repr(payments).startswith("SyncStripePayments(mode='test'")
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()
    assert len(fake.ledger.charges) == 1
    assert len(fake.ledger.refunds) == 1


def test_threads_sharing_one_client_charge_once(tmp_path: Path) -> None:
    """A threaded WSGI server: several requests for one order at once, one charge."""
    with FakeStripe(seed=0) as fake, SyncStripePayments(
            fake.api_key, base_url=fake.url, store=tmp_path / "keys.db") as payments:
        fake.faults.script("payment_intents.create", Fault.latency(0.5))
        ids = [payment.id for payment in in_threads(lambda: payments.create(order()), 4)]
        assert len(ids) == 4 and len(set(ids)) == 1
    assert len(fake.ledger.charges) == 1


# -- one flow: the same decisions, the same bytes ---------------------------------------------


async def test_both_faces_send_the_same_requests() -> None:
    """The same calls from each face, each against its own FakeStripe (same seed): the same
    method, URL, body and idempotency key, request by request."""
    sent = {}
    for face in FACES:
        async with FakeStripe(seed=0) as fake:
            client = stripe(face, fake.api_key, base_url=fake.url)
            wire = record(client)
            port = async_port(client)
            held = await port.create(order(capture=False, metadata={"cart": "c-1"}))
            await port.capture(held.id, amount=Money("15.00", "USD"))
            await port.refund(held.id, reference="r-1", amount=Money("5.00", "USD"))
            other = await port.create(order("order-2", confirm=False))
            await port.cancel(other.id)
            await port.find_by_reference("order-1")
            await close(client)
            sent[face] = [(r.method, r.url.removeprefix(fake.url), r.body,
                           header(r, "Idempotency-Key"), header(r, "Stripe-Version"))
                          for r in wire.sent]
    assert len(sent["async"]) >= 7
    assert sent["sync"] == sent["async"]


@pytest.mark.parametrize("face", FACES)
async def test_no_search_falls_back_to_the_list_scan(face: str) -> None:
    async with FakeStripe(seed=0) as fake:
        async with StripePayments(fake.api_key, base_url=fake.url) as other:
            paid = await other.create(order())  # made elsewhere: no local record here
        fake.faults.script("payment_intents.search", Fault.http_status(404))
        client = stripe(face, fake.api_key, base_url=fake.url)
        wire = record(client)
        port = async_port(client)
        found = await port.find_by_reference("order-1")
        assert found is not None and found.id == paid.id
        reconciled = await port.reconcile("order-1")
        assert reconciled is not None and reconciled.id == paid.id
        assert len([r for r in wire.sent if "/search" in r.url]) == 1  # learned, remembered
        await close(client)


@pytest.mark.parametrize("face", FACES)
async def test_a_caller_meeting_a_key_in_use_waits_for_the_first(face: str,
                                                                 tmp_path: Path) -> None:
    """Stripe's 409 (another attempt with this key is running): the second caller pauses (the
    sync face with ``sleep_sync``) and then gets Stripe's replay, not OutcomeUnknown."""
    path = tmp_path / "keys.db"
    async with FakeStripe(seed=0) as fake:
        fake.faults.script("payment_intents.create", Fault.latency(1.5))
        first_client = StripePayments(fake.api_key, base_url=fake.url, store=path)
        second_client = stripe(face, fake.api_key, base_url=fake.url, store=path)
        first = asyncio.create_task(first_client.create(order()))
        await asyncio.sleep(0.2)  # the first attempt is running at Stripe
        second = await async_port(second_client).create(order())
        assert second.id == (await first).id
        await first_client.aclose()
        await close(second_client)
        assert len(fake.ledger.charges) == 1


@pytest.mark.parametrize("face", FACES)
async def test_an_open_breaker_is_provider_unavailable_and_sends_nothing(face: str) -> None:
    breaker = CircuitBreaker(f"stripe-sync-face-{face}")
    breaker.force_open()
    async with FakeStripe(seed=0) as fake:
        client = stripe(face, fake.api_key, base_url=fake.url, pipeline=Pipeline(breaker))
        wire = record(client)
        with pytest.raises(ProviderUnavailable):
            await async_port(client).create(order())
        assert wire.sent == []
        breaker.reset()
        payment = await async_port(client).create(order())  # the same key, once closed
        assert payment.status is PaymentStatus.SUCCEEDED
        await close(client)
        assert len(fake.ledger.charges) == 1


@pytest.mark.parametrize("face", FACES)
async def test_every_attempt_lost_is_outcome_unknown_then_settled(face: str,
                                                                  tmp_path: Path) -> None:
    async with FakeStripe(seed=0) as fake:
        fake.faults.script("payment_intents.create", Fault.commit_then_reset(),
                           *[Fault.reset()] * 2)
        client = stripe(face, fake.api_key, base_url=fake.url, store=tmp_path / "k.db")
        port = async_port(client)
        with pytest.raises(OutcomeUnknown):
            await port.create(order())
        stored = SqliteIdempotencyStore(tmp_path / "k.db").get_sync(client.scope, "create",
                                                                    "order-1")
        assert stored is not None and stored.state is RecordState.UNKNOWN
        found = await port.reconcile("order-1")
        assert found is not None and found.status is PaymentStatus.SUCCEEDED
        assert (await port.create(order())).id == found.id
        await close(client)
        assert len(fake.ledger.charges) == 1


def test_close_closes_the_store_it_opened_from_a_path(tmp_path: Path) -> None:
    with SyncStripePayments("sk_test_x", store=tmp_path / "k.db",
                            base_url="http://127.0.0.1:9") as opened_here:
        assert isinstance(opened_here.store, SqliteIdempotencyStore)
        assert opened_here.store._conn is not None
    assert opened_here.store._conn is None  # its file handles do not outlive the client
    given = SqliteIdempotencyStore(tmp_path / "g.db")
    with SyncStripePayments("sk_test_x", store=given, base_url="http://127.0.0.1:9"):
        pass
    assert given._conn is not None  # the caller's store: the caller closes it
    given.close()


# -- drive and the blocking store --------------------------------------------------------------


async def _answer(value: int) -> int:
    return value


async def _fail() -> int:
    raise OutcomeUnknown("lost", idempotency_key="k", reference="r", operation="create")


def test_drive_returns_and_raises_what_the_coroutine_does() -> None:
    assert drive(_answer(7)) == 7
    with pytest.raises(OutcomeUnknown, match="lost"):
        drive(_fail())


def test_drive_refuses_a_coroutine_that_suspends() -> None:
    unwound: list[str] = []

    async def suspends() -> int:
        try:
            await asyncio.sleep(0)
            return 1
        finally:
            unwound.append("finally")

    coro: Coroutine[Any, Any, int] = suspends()
    with pytest.raises(ConfigurationError, match="async-only I/O"):
        drive(coro)
    assert unwound == ["finally"]  # closed: nothing left half-run


class AsyncOnlyStore:
    """An IdempotencyStore with no sync methods (as Redis's is)."""

    async def reserve(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        return record, True

    async def get(self, scope: str, operation: str, reference: str) -> None:
        return None

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        return True

    async def delete(self, scope: str, operation: str, reference: str, *,
                     expected_key: str | None = None) -> bool:
        return True

    async def purge(self, older_than: float) -> int:
        return 0


def test_sync_faces_refuse_an_async_only_store() -> None:
    with pytest.raises(ConfigurationError, match=r"SyncStripePayments: .*AsyncOnlyStore"):
        SyncStripePayments("sk_test_x", store=AsyncOnlyStore())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"SyncInMemoryPayments: .*AsyncOnlyStore"):
        SyncInMemoryPayments(store=AsyncOnlyStore())  # type: ignore[arg-type]
    StripePayments("sk_test_x", store=AsyncOnlyStore())  # the async face takes it
    with pytest.raises(ConfigurationError, match=r"^SyncStripePayments: deadline"):
        SyncStripePayments("sk_test_x", deadline=0)  # errors name the face that was built


def test_the_memory_store_has_a_sync_face() -> None:
    store = MemoryIdempotencyStore()
    new = IdempotencyRecord.new("s", "create", "o-1", "fp", 1000.0)
    assert store.reserve_sync(new) == (new, True)
    assert store.reserve_sync(IdempotencyRecord.new("s", "create", "o-1", "other", 1001.0)) == (
        new, False)
    done = new.with_state(RecordState.SUCCEEDED, 1002.0, "pi_1")
    assert store.replace_sync(done, expected_key="wrong") is False
    assert store.replace_sync(done, expected_key=new.key) is True
    assert store.get_sync("s", "create", "o-1") == done
    assert store.delete_sync("s", "create", "o-1", expected_key=new.key) is True
    assert store.purge_sync(2000.0) == 0
    viewed = blocking_store(store, "test")
    assert drive(viewed.reserve(new)) == (new, True)


def test_the_sync_faces_are_not_async_ports() -> None:
    """The sync faces' methods return results, not coroutines (and the async ones the opposite):
    mixing them up fails at once, not with a 'never awaited' warning later."""
    fake = SyncInMemoryPayments()
    payment = fake.create(order())
    assert payment.status is PaymentStatus.SUCCEEDED
    assert fake.calls == ["create"]
    assert isinstance(fake, SyncPaymentService)
    assert not asyncio.iscoroutinefunction(SyncStripePayments.create)
    assert asyncio.iscoroutinefunction(StripePayments.create)
    assert isinstance(StripePayments("sk_test_x"), PaymentService)
