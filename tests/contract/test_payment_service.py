"""The PaymentService contract: one suite, every implementation (see conftest.py).

Each test states a rule domain code may rely on whatever the provider behind the port.
"""

from __future__ import annotations

from datetime import UTC

import pytest
from _harness import Harness

from egress.errors import (
    IdempotencyMismatch,
    InvalidPaymentRequest,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderUnavailable,
)
from egress.payments import (
    DEFAULT_SETTLE_AFTER,
    CancellationReason,
    Money,
    Payment,
    PaymentRequest,
    PaymentService,
    PaymentStatus,
    RefundStatus,
    SyncPaymentService,
)

VISA = "pm_card_visa"
DECLINED = "pm_card_chargeDeclined"
NO_FUNDS = "pm_card_chargeDeclinedInsufficientFunds"
THREE_DS = "pm_card_authenticationRequired"


def order(reference: str = "order-1", amount: str = "20.00", currency: str = "USD",
          **kw: object) -> PaymentRequest:
    kw.setdefault("payment_method", VISA)
    return PaymentRequest(amount=Money(amount, currency), reference=reference,
                          **kw)  # type: ignore[arg-type]


async def test_is_a_payment_service(harness: Harness) -> None:
    port = SyncPaymentService if harness.name.endswith("-sync") else PaymentService
    assert isinstance(harness.face, port)


async def test_create_and_confirm(harness: Harness) -> None:
    payment = await harness.service.create(order(description="2 books",
                                                 metadata={"cart": "c-9"}))
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.amount == Money("20.00", "USD")
    assert payment.amount_received == Money("20.00", "USD")
    assert payment.reference == "order-1"
    assert payment.metadata["cart"] == "c-9"
    assert payment.created.tzinfo is UTC
    assert await harness.service.get(payment.id) == payment
    assert harness.charges("order-1") == 1


async def test_zero_decimal_currency(harness: Harness) -> None:
    payment = await harness.service.create(order(amount="500", currency="JPY"))
    assert payment.amount == Money(500, "JPY")


async def test_same_reference_same_request_is_one_payment(harness: Harness) -> None:
    first = await harness.service.create(order())
    second = await harness.service.create(order())
    assert second.id == first.id
    assert harness.charges("order-1") == 1


async def test_same_reference_other_request_is_refused_before_sending(harness: Harness) -> None:
    await harness.service.create(order())
    with pytest.raises(IdempotencyMismatch):
        await harness.service.create(order(amount="25.00"))
    assert harness.charges("order-1") == 1


async def test_decline_then_retry_with_another_card(harness: Harness) -> None:
    with pytest.raises(PaymentDeclined) as info:
        await harness.service.create(order(payment_method=NO_FUNDS))
    assert info.value.decline_code == "insufficient_funds"
    assert harness.charges("order-1") == 0
    payment = await harness.service.create(order())
    assert payment.status is PaymentStatus.SUCCEEDED
    assert harness.charges("order-1") == 1
    assert (await harness.service.find_by_reference("order-1")) == payment


async def test_generic_decline(harness: Harness) -> None:
    with pytest.raises(PaymentDeclined) as info:
        await harness.service.create(order(payment_method=DECLINED))
    assert info.value.decline_code == "generic_decline"


async def test_authorize_then_capture(harness: Harness) -> None:
    held = await harness.service.create(order(capture=False))
    assert held.status is PaymentStatus.REQUIRES_CAPTURE
    assert held.amount_capturable == Money("20.00", "USD")
    captured = await harness.service.capture(held.id)
    assert captured.status is PaymentStatus.SUCCEEDED
    assert captured.amount_received == Money("20.00", "USD")
    again = await harness.service.capture(held.id)  # idempotent: no error, same payment
    assert again.id == held.id and again.status is PaymentStatus.SUCCEEDED


async def test_partial_capture(harness: Harness) -> None:
    held = await harness.service.create(order(capture=False))
    captured = await harness.service.capture(held.id, amount=Money("15.00", "USD"))
    assert captured.amount_received == Money("15.00", "USD")


async def test_capture_in_another_currency_is_refused(harness: Harness) -> None:
    held = await harness.service.create(order(capture=False))
    with pytest.raises(InvalidPaymentRequest):
        await harness.service.capture(held.id, amount=Money("15.00", "EUR"))


async def test_cancel(harness: Harness) -> None:
    held = await harness.service.create(order(capture=False))
    canceled = await harness.service.cancel(held.id,
                                            reason=CancellationReason.REQUESTED_BY_CUSTOMER)
    assert canceled.status is PaymentStatus.CANCELED
    assert (await harness.service.cancel(
        held.id, reason=CancellationReason.REQUESTED_BY_CUSTOMER)).status is (
        PaymentStatus.CANCELED)
    assert harness.charges("order-1") == 0


async def test_cannot_cancel_a_succeeded_payment(harness: Harness) -> None:
    payment = await harness.service.create(order())
    with pytest.raises(InvalidPaymentRequest):
        await harness.service.cancel(payment.id)


async def test_confirm_later(harness: Harness) -> None:
    draft = await harness.service.create(order(confirm=False, payment_method=None))
    assert draft.status is PaymentStatus.REQUIRES_PAYMENT_METHOD
    assert harness.charges("order-1") == 0
    paid = await harness.service.confirm(draft.id, payment_method=VISA)
    assert paid.status is PaymentStatus.SUCCEEDED
    assert harness.charges("order-1") == 1


async def test_confirm_after_a_declined_confirmation(harness: Harness) -> None:
    draft = await harness.service.create(order(confirm=False, payment_method=None))
    with pytest.raises(PaymentDeclined):
        await harness.service.confirm(draft.id, payment_method=DECLINED)
    paid = await harness.service.confirm(draft.id, payment_method=VISA)
    assert paid.status is PaymentStatus.SUCCEEDED


async def test_authentication_required(harness: Harness) -> None:
    payment = await harness.service.create(order(payment_method=THREE_DS))
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    harness.complete_action(payment.id)
    assert (await harness.service.get(payment.id)).status is PaymentStatus.SUCCEEDED


async def test_refunds(harness: Harness) -> None:
    payment = await harness.service.create(order())
    part = await harness.service.refund(payment.id, reference="refund-1",
                                        amount=Money("5.00", "USD"))
    assert part.amount == Money("5.00", "USD")
    assert part.payment_id == payment.id
    assert part.reference == "refund-1"
    assert part.status is RefundStatus.SUCCEEDED
    again = await harness.service.refund(payment.id, reference="refund-1",
                                         amount=Money("5.00", "USD"))
    assert again.id == part.id  # the same refund reference never refunds twice
    with pytest.raises(IdempotencyMismatch):
        await harness.service.refund(payment.id, reference="refund-1",
                                     amount=Money("6.00", "USD"))
    rest = await harness.service.refund(payment.id, reference="refund-2")
    assert rest.amount == Money("15.00", "USD")
    with pytest.raises(InvalidPaymentRequest):
        await harness.service.refund(payment.id, reference="refund-3",
                                     amount=Money("0.01", "USD"))


async def test_unknown_payment(harness: Harness) -> None:
    with pytest.raises(InvalidPaymentRequest):
        await harness.service.get("pi_does_not_exist")
    assert await harness.service.find_by_reference("nobody") is None


async def test_lost_reply_is_outcome_unknown_and_calling_again_is_safe(
        harness: Harness) -> None:
    harness.lose_reply()
    with pytest.raises(OutcomeUnknown) as info:
        await harness.service.create(order())
    assert info.value.reference == "order-1"
    assert info.value.operation == "create"
    assert info.value.idempotency_key
    assert harness.charges("order-1") == 1  # it happened: the answer was lost
    payment = await harness.service.create(order())  # same key: the provider replays
    assert payment.status is PaymentStatus.SUCCEEDED
    assert harness.charges("order-1") == 1


async def test_lost_reply_then_reconcile_finds_the_payment(harness: Harness) -> None:
    harness.lose_reply()
    with pytest.raises(OutcomeUnknown):
        await harness.service.create(order())
    found = await harness.service.reconcile("order-1")
    assert isinstance(found, Payment) and found.reference == "order-1"
    assert (await harness.service.create(order())).id == found.id
    assert harness.charges("order-1") == 1


async def test_lost_request_then_reconcile_proves_absence(harness: Harness) -> None:
    harness.lose_request()
    with pytest.raises(OutcomeUnknown):
        await harness.service.create(order())
    assert harness.charges("order-1") == 0
    with pytest.raises(OutcomeUnknown):  # too soon: the request might still be in flight
        await harness.service.reconcile("order-1")
    harness.clock.advance(DEFAULT_SETTLE_AFTER + 1)
    assert await harness.service.reconcile("order-1") is None
    payment = await harness.service.create(order())  # now under a new key
    assert payment.status is PaymentStatus.SUCCEEDED
    assert harness.charges("order-1") == 1


async def test_refused_before_sending_is_provider_unavailable(harness: Harness) -> None:
    harness.refuse()
    with pytest.raises(ProviderUnavailable):
        await harness.service.create(order())
    assert harness.charges("order-1") == 0
    assert (await harness.service.create(order())).status is PaymentStatus.SUCCEEDED
    assert harness.charges("order-1") == 1


async def test_lost_capture_reply_then_capture_again(harness: Harness) -> None:
    held = await harness.service.create(order(capture=False))
    harness.lose_reply("capture")
    with pytest.raises(OutcomeUnknown) as info:
        await harness.service.capture(held.id)
    assert info.value.operation == "capture"
    captured = await harness.service.capture(held.id)
    assert captured.status is PaymentStatus.SUCCEEDED


async def test_lost_refund_reply_never_refunds_twice(harness: Harness) -> None:
    payment = await harness.service.create(order())
    harness.lose_reply("refund")
    with pytest.raises(OutcomeUnknown):
        await harness.service.refund(payment.id, reference="refund-1")
    refund = await harness.service.refund(payment.id, reference="refund-1")
    assert refund.amount == Money("20.00", "USD")
    with pytest.raises(InvalidPaymentRequest):  # nothing left: the first refund happened once
        await harness.service.refund(payment.id, reference="refund-2")


async def test_restart_resumes_with_the_stored_key(harness: Harness) -> None:
    harness.lose_reply()
    with pytest.raises(OutcomeUnknown):
        await harness.service.create(order())
    service = harness.restart()
    payment = await service.create(order())
    assert payment.status is PaymentStatus.SUCCEEDED
    assert harness.charges("order-1") == 1
    with pytest.raises(IdempotencyMismatch):  # the restarted client remembers the request
        await service.create(order(amount="1.00"))


async def test_reconcile_of_an_unknown_reference(harness: Harness) -> None:
    assert await harness.service.reconcile("never-seen") is None


async def test_reconcile_of_a_settled_reference_returns_it(harness: Harness) -> None:
    payment = await harness.service.create(order())
    assert await harness.service.reconcile("order-1") == payment
