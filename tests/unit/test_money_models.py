"""The port's value types: PaymentRequest validation, fingerprints, Payment and Refund."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from egress.errors import InvalidPaymentRequest
from egress.payments import (
    Money,
    Payment,
    PaymentRequest,
    PaymentStatus,
    Refund,
    RefundStatus,
    request_fingerprint,
)
from egress.payments.models import latest_for_reference, looks_like_card_number


def req(**kw: Any) -> PaymentRequest:
    base: dict[str, Any] = {"amount": Money("20.00", "USD"), "reference": "order-1",
                            "payment_method": "pm_card_visa"}
    base.update(kw)
    return PaymentRequest(**base)


@pytest.mark.parametrize(("kw", "param"), [
    ({"amount": Money(0, "USD")}, "amount"),
    ({"amount": "20.00"}, "amount"),
    ({"reference": ""}, "reference"),
    ({"reference": "x" * 201}, "reference"),
    ({"reference": "line\nbreak"}, "reference"),
    ({"payment_method": None}, "payment_method"),  # confirm=True needs one
    ({"payment_method": "4242424242424242"}, "payment_method"),
    ({"payment_method": "4242 4242 4242 4242"}, "payment_method"),
    ({"payment_method": "pm card"}, "payment_method"),
    ({"customer": "x" * 256}, "customer"),
    ({"description": "d" * 1001}, "description"),
    ({"metadata": {"k": 1}}, "metadata"),
    ({"metadata": {"": "v"}}, "metadata"),
    ({"metadata": [("k", "v")]}, "metadata"),
])
def test_invalid_requests(kw: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidPaymentRequest) as info:
        req(**kw)
    assert info.value.param == param
    assert "4242" not in str(info.value)


def test_valid_requests_and_frozen_metadata() -> None:
    metadata = {"b": "2", "a": "1"}
    request = req(metadata=metadata, confirm=False, payment_method=None, capture=False)
    metadata["c"] = "3"  # the request keeps its own copy
    assert dict(request.metadata) == {"a": "1", "b": "2"}
    with pytest.raises(TypeError):
        request.metadata["x"] = "y"  # type: ignore[index]
    with pytest.raises(AttributeError):
        request.reference = "other"  # type: ignore[misc]
    assert req(reference="x" * 200).reference == "x" * 200
    assert req(reference="order 1234567890123456").reference  # long numbers are fine here


def test_canonical_form_and_fingerprint() -> None:
    a = req(metadata={"b": "2", "a": "1"})
    b = req(metadata={"a": "1", "b": "2"})
    assert a.canonical() == b.canonical()
    assert request_fingerprint("create", a.canonical()) == request_fingerprint(
        "create", b.canonical())
    for other in (req(amount=Money("20.01", "USD")), req(amount=Money("20.00", "EUR")),
                  req(payment_method="pm_card_mastercard"), req(capture=False),
                  req(description="x"), req(metadata={"a": "1"})):
        assert request_fingerprint("create", other.canonical()) != request_fingerprint(
            "create", a.canonical())
    assert request_fingerprint("create", a.canonical()) != request_fingerprint(
        "refund", a.canonical())
    assert request_fingerprint("capture", "pi_1", None) != request_fingerprint(
        "capture", "pi_1", "5.00 USD")


def test_the_canonical_form_names_the_amount_exactly() -> None:
    assert b'"amount":"20.00"' in req(amount=Money(20, "USD")).canonical()


def payment(pid: str, created: int, *, reference: str = "r", declined: bool = False) -> Payment:
    return Payment(id=pid, status=(PaymentStatus.REQUIRES_PAYMENT_METHOD if declined
                                   else PaymentStatus.SUCCEEDED),
                   amount=Money(1, "USD"), created=datetime.fromtimestamp(created, tz=UTC),
                   reference=reference, decline_code="card_declined" if declined else None)


def test_payment_times_are_utc() -> None:
    local = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    p = Payment(id="pi", status=PaymentStatus.SUCCEEDED, amount=Money(1, "USD"), created=local)
    assert p.created.tzinfo is UTC and p.created.hour == 10
    with pytest.raises(ValueError, match="aware"):
        Payment(id="pi", status=PaymentStatus.SUCCEEDED, amount=Money(1, "USD"),
                created=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        Refund(id="re", payment_id="pi", amount=Money(1, "USD"),
               status=RefundStatus.PENDING, created=datetime(2026, 1, 1))


def test_latest_for_reference() -> None:
    old, new = payment("pi_old", 100), payment("pi_new", 200)
    declined = payment("pi_declined", 300, declined=True)
    other = payment("pi_other", 400, reference="other")
    assert latest_for_reference([old, new, declined, other], "r") == declined
    assert latest_for_reference([old, new, declined, other], "r", skip_failed=True) == new
    assert latest_for_reference([declined], "r", skip_failed=True) is None
    assert latest_for_reference([], "r") is None
    # Same second: the first met wins (providers list newest first).
    assert latest_for_reference([payment("pi_b", 5), payment("pi_a", 5)], "r").id == "pi_b"


def test_status_finality() -> None:
    assert PaymentStatus.SUCCEEDED.is_final and PaymentStatus.CANCELED.is_final
    assert not PaymentStatus.REQUIRES_CAPTURE.is_final


@pytest.mark.parametrize(("text", "card"), [
    ("4242424242424242", True), ("4242 4242 4242 4242", True), ("4242-4242-4242-4242", True),
    ("pm_card_visa", False), ("order-123456", False), ("123456789012", False),
])
def test_card_number_shapes(text: str, card: bool) -> None:
    assert looks_like_card_number(text) is card
