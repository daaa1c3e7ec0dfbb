"""StripePayments against FakeStripe on 127.0.0.1: retries, keys and bytes on the wire, Stripe's
retry signals, ambiguous outcomes, configuration and secrets.

The contract suite (tests/contract) checks the port's rules; this file checks how the adapter
meets them on Stripe's wire.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _recording_wire import header, record

from egress import Secret
from egress.adapters.stripe import StripePayments, SyncStripePayments
from egress.errors import (
    AuthenticationFailed,
    ConfigurationError,
    IdempotencyMismatch,
    InvalidPaymentRequest,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderUnavailable,
    StatusError,
)
from egress.http import Timeouts
from egress.payments import Money, PaymentRequest, PaymentStatus, RecordState
from egress.payments.idempotency import IdempotencyKeyReused, IdempotentReplay
from egress.stores.idempotency_memory import MemoryIdempotencyStore
from egress.testing import RecordingSink
from egress.testing.fake_stripe import FakeStripe, Fault

KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"


def order(reference: str = "order-1", amount: str = "20.00",
          payment_method: str = "pm_card_visa", **kw: Any) -> PaymentRequest:
    return PaymentRequest(amount=Money(amount, "USD"), reference=reference,
                          payment_method=payment_method, **kw)


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    async with FakeStripe(seed=0) as server:
        yield server


@pytest.fixture
async def payments(fake: FakeStripe) -> AsyncIterator[StripePayments]:
    async with StripePayments(fake.api_key, base_url=fake.url, sink=RecordingSink()) as client:
        yield client


def live_charges(fake: FakeStripe, reference: str = "order-1") -> int:
    return sum(1 for c in fake.ledger.charges if c.reference == reference and c.live)


# -- what goes on the wire ---------------------------------------------------------------------


async def test_headers_of_a_create(fake: FakeStripe, payments: StripePayments) -> None:
    wire = record(payments)
    await payments.create(order())
    (post,) = wire.posts()
    assert header(post, "Stripe-Version") == "2024-06-20"
    assert header(post, "Authorization") == f"Bearer {fake.api_key}"
    assert header(post, "Content-Type") == "application/x-www-form-urlencoded"
    key = header(post, "Idempotency-Key")
    assert key is not None and key.startswith("egress-create-") and len(key) <= 255
    assert post.body is not None and b"metadata%5Breference%5D=order-1" in post.body


async def test_a_retry_after_a_reset_keeps_the_key_and_the_bytes(
        fake: FakeStripe, payments: StripePayments) -> None:
    fake.faults.script("payment_intents.create", "reset")
    wire = record(payments)
    payment = await payments.create(order(metadata={"b": "2", "a": "1"}))
    first, second = wire.posts()
    assert header(first, "Idempotency-Key") == header(second, "Idempotency-Key")
    assert first.body == second.body
    assert payment.status is PaymentStatus.SUCCEEDED
    assert live_charges(fake) == 1


async def test_commit_then_reset_is_replayed_not_charged_twice(
        fake: FakeStripe, payments: StripePayments) -> None:
    fake.faults.script("payment_intents.create", "commit-then-reset")
    wire = record(payments)
    payment = await payments.create(order())
    assert len(wire.posts()) == 2
    assert live_charges(fake) == 1
    assert fake.ledger.charges[0].payment_intent == payment.id
    sink = payments.sink
    assert isinstance(sink, RecordingSink) and sink.of(IdempotentReplay)


async def test_a_call_after_a_restart_sends_the_same_bytes(tmp_path: Path,
                                                          fake: FakeStripe) -> None:
    path = tmp_path / "keys.db"
    fake.faults.script("payment_intents.create", *["reset"] * 3)
    async with StripePayments(fake.api_key, base_url=fake.url, store=path) as first:
        wire1 = record(first)
        with pytest.raises(OutcomeUnknown):
            await first.create(order())
    async with StripePayments(fake.api_key, base_url=fake.url, store=path) as second:
        wire2 = record(second)
        await second.create(order())
    bodies = {r.body for r in wire1.posts() + wire2.posts()}
    keys = {header(r, "Idempotency-Key") for r in wire1.posts() + wire2.posts()}
    assert len(wire1.posts()) == 3 and len(wire2.posts()) == 1
    assert len(bodies) == 1 and len(keys) == 1
    assert live_charges(fake) == 1


# -- Stripe's retry signals --------------------------------------------------------------------


async def test_a_decline_is_never_retried(fake: FakeStripe, payments: StripePayments) -> None:
    wire = record(payments)
    with pytest.raises(PaymentDeclined) as info:
        await payments.create(order(payment_method="pm_card_chargeDeclinedFraudulent"))
    assert info.value.decline_code == "fraudulent"
    assert len(wire.posts()) == 1
    record_ = await payments.store.get(payments.scope, "create", "order-1")
    assert record_ is not None and record_.state is RecordState.FAILED


@pytest.mark.parametrize("check", [True, False])
async def test_idempotency_error_is_a_mismatch_and_not_retried(fake: FakeStripe,
                                                               check: bool) -> None:
    # Two clients that do not share a store derive the same key for the same reference. With
    # check_new_references the second finds the payment by search before sending anything;
    # without it, Stripe's own idempotency layer refuses the different parameters.
    async with StripePayments(fake.api_key, base_url=fake.url) as first:
        await first.create(order())
    async with StripePayments(fake.api_key, base_url=fake.url, check_new_references=check,
                              store=MemoryIdempotencyStore()) as second:
        wire = record(second)
        with pytest.raises(IdempotencyMismatch):
            await second.create(order(amount="25.00"))
        assert len(wire.posts()) == (0 if check else 1)
        stored = await second.store.get(second.scope, "create", "order-1")
        if check:
            assert stored is None  # nothing reserved: nothing was sent
        else:
            assert stored is not None and stored.state is RecordState.PENDING  # key kept
    assert live_charges(fake) == 1


@pytest.mark.parametrize("fault", [
    Fault.key_in_use(),  # 409: a request with this key is running
    Fault.lock_timeout(),  # 429 lock_timeout
    Fault.http_status(503),
    Fault.http_status(400, should_retry=True),  # Stripe-Should-Retry: true wins
])
async def test_retried_signals(fault: Fault, fake: FakeStripe,
                               payments: StripePayments) -> None:
    fake.faults.script("payment_intents.create", fault)
    wire = record(payments)
    payment = await payments.create(order())
    assert payment.status is PaymentStatus.SUCCEEDED
    assert len(wire.posts()) == 2
    assert live_charges(fake) == 1


async def test_should_retry_false_is_obeyed(fake: FakeStripe,
                                            payments: StripePayments) -> None:
    fake.faults.script("payment_intents.create", Fault.http_status(503, should_retry=False))
    wire = record(payments)
    with pytest.raises(OutcomeUnknown):
        await payments.create(order())
    assert len(wire.posts()) == 1


async def test_rate_limit_is_retried_with_the_same_key_after_the_hint(
        fake: FakeStripe, payments: StripePayments) -> None:
    fake.faults.script("payment_intents.create", Fault.rate_limited(retry_after=0.2))
    wire = record(payments)
    payment = await payments.create(order())
    assert payment.status is PaymentStatus.SUCCEEDED
    posts = wire.posts()
    assert len(posts) == 2
    assert live_charges(fake) == 1


async def test_rate_limit_to_the_end_is_provider_unavailable(
        fake: FakeStripe, payments: StripePayments) -> None:
    fake.faults.script("payment_intents.create",
                       *[Fault.rate_limited(retry_after=0.1)] * 3)
    wire = record(payments)
    with pytest.raises(ProviderUnavailable) as info:
        await payments.create(order())
    cause = info.value.__cause__
    assert isinstance(cause, StatusError)
    assert cause.status_code == 429
    assert len(wire.posts()) == 3
    assert live_charges(fake) == 0


async def test_a_stored_500_is_settled_by_reconciliation(fake: FakeStripe) -> None:
    clock = _Shift()
    async with StripePayments(fake.api_key, base_url=fake.url, clock=clock) as payments:
        fake.faults.script("payment_intents.create", Fault.stored_500())
        with pytest.raises(OutcomeUnknown):
            await payments.create(order())
        with pytest.raises(OutcomeUnknown):  # the same key replays the saved 500
            await payments.create(order())
        clock.offset += 601
        assert await payments.reconcile("order-1") is None  # proven: nothing was charged
        payment = await payments.create(order())  # a new key
        assert payment.status is PaymentStatus.SUCCEEDED
    assert live_charges(fake) == 1


async def test_commit_then_500_is_found_by_reconciliation(fake: FakeStripe,
                                                          payments: StripePayments) -> None:
    fake.faults.script("payment_intents.create", Fault.commit_then_500())
    with pytest.raises(OutcomeUnknown):
        await payments.create(order())
    found = await payments.reconcile("order-1")
    assert found is not None and found.status is PaymentStatus.SUCCEEDED
    assert (await payments.create(order())).id == found.id
    assert live_charges(fake) == 1


async def test_an_unreadable_success_is_outcome_unknown_then_replayed(
        fake: FakeStripe, payments: StripePayments) -> None:
    fake.faults.script("payment_intents.create", Fault.malformed_json())
    with pytest.raises(OutcomeUnknown):
        await payments.create(order())
    assert (await payments.create(order())).status is PaymentStatus.SUCCEEDED
    assert live_charges(fake) == 1
    sink = payments.sink
    assert isinstance(sink, RecordingSink) and sink.of(IdempotencyKeyReused)


async def test_every_attempt_timing_out_is_outcome_unknown(fake: FakeStripe) -> None:
    fake.faults.script("payment_intents.create", *[Fault.black_hole(commit=True)] * 3)
    async with StripePayments(fake.api_key, base_url=fake.url, deadline=2.0,
                              timeouts=Timeouts(total=0.2, read=0.2)) as payments:
        with pytest.raises(OutcomeUnknown) as info:
            await payments.create(order())
        assert info.value.idempotency_key.startswith("egress-create-")
        found = await payments.reconcile("order-1")
        assert found is not None
    assert live_charges(fake) == 1


async def test_two_workers_with_one_reference_make_one_charge(fake: FakeStripe,
                                                              tmp_path: Path) -> None:
    import asyncio
    path = tmp_path / "keys.db"
    fake.faults.script("payment_intents.create", Fault.latency(0.3))
    async with (StripePayments(fake.api_key, base_url=fake.url, store=path) as a,
                StripePayments(fake.api_key, base_url=fake.url, store=path) as b):
        results = await asyncio.gather(a.create(order()), b.create(order()),
                                       return_exceptions=True)
        ids = {r.id for r in results if not isinstance(r, BaseException)}
        for failure in (r for r in results if isinstance(r, BaseException)):
            assert isinstance(failure, OutcomeUnknown)  # 409 until the first one finished
            ids.add((await b.create(order())).id)
    assert len(ids) == 1
    assert live_charges(fake) == 1


# -- checks before sending ---------------------------------------------------------------------


async def test_three_decimal_amounts_are_refused_before_sending(
        fake: FakeStripe, payments: StripePayments) -> None:
    wire = record(payments)
    with pytest.raises(InvalidPaymentRequest, match="last digit"):
        await payments.create(PaymentRequest(amount=Money("5.125", "KWD"), reference="k-1",
                                             payment_method="pm_card_visa"))
    assert wire.sent == []
    assert await payments.store.get(payments.scope, "create", "k-1") is None
    paid = await payments.create(PaymentRequest(amount=Money("5.120", "KWD"), reference="k-1",
                                                payment_method="pm_card_visa"))
    assert paid.amount == Money("5.120", "KWD")


async def test_partial_capture_checks_the_currency_first(
        fake: FakeStripe, payments: StripePayments) -> None:
    held = await payments.create(order(capture=False))
    wire = record(payments)
    with pytest.raises(InvalidPaymentRequest, match="EUR"):
        await payments.capture(held.id, amount=Money("5.00", "EUR"))
    assert wire.posts(f"/{held.id}/capture") == []


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "mode", "rate"), [
    ("sk_test_abc", "test", 25.0), ("rk_test_abc", "test", 25.0),
    ("sk_live_abc", "live", 100.0), ("rk_live_abc", "live", 100.0),
])
async def test_default_rate_limits(key: str, mode: str, rate: float) -> None:
    async with StripePayments(key) as payments:
        assert payments.rate_limiter is not None
        assert payments.rate_limiter.rate == rate
        assert payments.scope == f"stripe-{mode}"
        assert payments.test_mode is (mode == "test")


async def test_rate_limit_can_be_set_or_removed() -> None:
    async with StripePayments("sk_test_abc", rate_limit=5) as five:
        assert five.rate_limiter is not None and five.rate_limiter.rate == 5
    async with StripePayments("sk_test_abc", rate_limit=None) as none:
        assert none.rate_limiter is None


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"api_key": "pk_test_abc"}, "secret or restricted"),
    ({"api_key": ""}, "api_key"),
    ({"api_key": KEY, "rate_limit": "fast"}, "rate_limit"),
    ({"api_key": KEY, "deadline": 0}, "deadline"),
    ({"api_key": KEY, "max_scan_pages": 0}, "max_scan_pages"),
    ({"api_key": KEY, "payment_method_types": ()}, "payment_method_types"),
    ({"api_key": KEY, "max_key_age": 30 * 3600}, "max_age"),
    ({"api_key": KEY, "store": 42}, "store"),
])
@pytest.mark.parametrize("face", [StripePayments, SyncStripePayments])
def test_configuration_errors(kwargs: dict[str, Any], match: str, face: type[Any]) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        face(**kwargs)
    assert KEY not in str(info.value)


async def test_a_path_store_is_sqlite(tmp_path: Path) -> None:
    from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
    async with StripePayments(KEY, store=tmp_path / "k.db") as payments:
        assert isinstance(payments.store, SqliteIdempotencyStore)


# -- secrets -----------------------------------------------------------------------------------


async def test_keys_never_show(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk_test_TOPSECRETVALUE1234567890"
    caplog.set_level(logging.DEBUG)
    async with FakeStripe(seed=0, api_keys=["sk_test_the_right_one"]) as fake:
        sink = RecordingSink()
        async with StripePayments(Secret(secret), base_url=fake.url, sink=sink) as payments:
            assert secret not in repr(payments) and secret not in str(payments.client)
            with pytest.raises(AuthenticationFailed) as info:
                await payments.create(order())
            with pytest.raises(AuthenticationFailed) as info2:
                await payments.get("pi_1")
    for text in (str(info.value), repr(info.value), str(info2.value),
                 repr(info.value.__cause__), str(info.value.__cause__), caplog.text,
                 repr(sink.events)):
        assert secret not in text
        assert "TOPSECRET" not in text


async def test_card_data_never_reaches_the_wire_or_an_error(
        fake: FakeStripe, payments: StripePayments) -> None:
    with pytest.raises(InvalidPaymentRequest) as info:
        order(payment_method="4242 4242 4242 4242")
    assert "4242" not in str(info.value)
    wire = record(payments)
    with pytest.raises(PaymentDeclined) as declined:
        await payments.create(order(payment_method="pm_card_chargeDeclinedIncorrectCvc"))
    assert declined.value.decline_code == "incorrect_cvc"
    from urllib.parse import parse_qsl
    assert wire.posts()
    for request in wire.posts():
        names = [name for name, _ in parse_qsl((request.body or b"").decode())]
        assert names and not any(("number" in n or "cvc" in n or n.startswith("card"))
                                 for n in names)


class _Shift:
    """The real clock with a wall time tests can move (shared by nothing else here)."""

    def __init__(self) -> None:
        import time
        self._time = time
        self.offset = 0.0

    def now(self) -> float:
        return self._time.monotonic()

    def wall(self) -> float:
        return self._time.time() + self.offset

    async def sleep(self, seconds: float) -> None:
        import asyncio
        await asyncio.sleep(max(0.0, seconds))

    def sleep_sync(self, seconds: float) -> None:
        self._time.sleep(seconds)

    def call_later(self, seconds: float, callback: Any) -> Any:
        import asyncio
        return asyncio.get_running_loop().call_later(max(0.0, seconds), callback)
