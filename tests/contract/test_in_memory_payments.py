"""InMemoryPayments' own scripting and inspection (the contract suite covers its behaviour)."""

from __future__ import annotations

import pytest

from egress.errors import (
    AuthenticationFailed,
    InvalidPaymentRequest,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderUnavailable,
)
from egress.payments import Money, PaymentRequest, PaymentStatus
from egress.testing import InMemoryPayments, PaymentFault


def order(reference: str = "o-1", **kw: object) -> PaymentRequest:
    kw.setdefault("payment_method", "pm_card_visa")
    return PaymentRequest(amount=Money("9.99", "GBP"), reference=reference,
                          **kw)  # type: ignore[arg-type]


async def test_decline_next_declines_without_creating() -> None:
    fake = InMemoryPayments()
    fake.decline_next("do_not_honor")
    with pytest.raises(PaymentDeclined) as info:
        await fake.create(order())
    assert info.value.decline_code == "do_not_honor"
    assert fake.payments() == []
    assert (await fake.create(order())).status is PaymentStatus.SUCCEEDED


async def test_fail_next_raises_any_exception_and_targets_an_operation() -> None:
    fake = InMemoryPayments()
    fake.fail_next(AuthenticationFailed("revoked"), operation="capture")
    held = await fake.create(order(capture=False))  # not a capture: unaffected
    with pytest.raises(AuthenticationFailed):
        await fake.capture(held.id)
    assert (await fake.capture(held.id)).status is PaymentStatus.SUCCEEDED


async def test_faults_are_consumed_in_order() -> None:
    fake = InMemoryPayments()
    fake.fail_next(PaymentFault.UNAVAILABLE, PaymentFault.LOST_REPLY)
    with pytest.raises(ProviderUnavailable):
        await fake.create(order())
    with pytest.raises(OutcomeUnknown):
        await fake.create(order())
    assert len(fake.charges("o-1")) == 1
    assert (await fake.create(order())).id == fake.charges("o-1")[0].id


async def test_refused_after_an_earlier_attempt_is_still_unknown() -> None:
    fake = InMemoryPayments()
    fake.fail_next(PaymentFault.LOST_REPLY, PaymentFault.UNAVAILABLE)
    with pytest.raises(OutcomeUnknown):
        await fake.create(order())
    with pytest.raises(OutcomeUnknown):  # nothing sent now, but the first one may count
        await fake.create(order())


async def test_calls_record_what_reached_the_provider() -> None:
    fake = InMemoryPayments()
    payment = await fake.create(order())
    await fake.create(order())  # answered from the local record: one read, no write
    await fake.refund(payment.id, reference="r-1")
    assert fake.calls == ["create", "get", "refund"]
    assert [r.reference for r in fake.refunds()] == ["r-1"]


async def test_complete_action_both_ways() -> None:
    fake = InMemoryPayments()
    ok = await fake.create(order("a", payment_method="pm_card_threeDSecure2Required"))
    assert fake.complete_action(ok.id).status is PaymentStatus.SUCCEEDED
    failed = await fake.create(order("b", payment_method="pm_card_authenticationRequired"))
    after = fake.complete_action(failed.id, succeed=False)
    assert after.status is PaymentStatus.REQUIRES_PAYMENT_METHOD and after.is_failed_attempt
    with pytest.raises(InvalidPaymentRequest):
        fake.complete_action(ok.id)


async def test_restarted_shares_the_provider() -> None:
    fake = InMemoryPayments()
    fake.fail_next(PaymentFault.LOST_REPLY)
    with pytest.raises(OutcomeUnknown):
        await fake.create(order())
    again = fake.restarted()
    assert again.provider is fake.provider
    assert (await again.create(order())).id == fake.payments()[0].id
    assert "1 payments" in repr(again)
