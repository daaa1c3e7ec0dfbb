"""The ledger: every charge once, grouped by reference, double charges found."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from egress.testing import fake_stripe_fixture  # noqa: F401  (registers ``fake_stripe``)
from egress.testing.fake_stripe import Charge, FakeStripe, Ledger


@pytest.fixture
def api(fake_stripe: FakeStripe) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_stripe.url, timeout=5.0,
                      headers={"Authorization": f"Bearer {fake_stripe.api_key}"}) as client:
        yield client


def pay(api: httpx.Client, reference: str, *, key: str | None = None,
        payment_method: str = "pm_card_visa", **extra: str) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return api.post("/v1/payment_intents", headers=headers, data={
        "amount": "1000", "currency": "usd", "payment_method": payment_method,
        "confirm": "true", "metadata[reference]": reference, **extra})


def test_charges_are_recorded_once_with_their_facts(api: httpx.Client,
                                                    fake_stripe: FakeStripe) -> None:
    pi = pay(api, "a", key="k-a").json()
    pay(api, "a", key="k-a")  # replay: no new charge
    pay(api, "b", payment_method="pm_card_chargeDeclined")
    [charge] = fake_stripe.ledger.charges
    assert (charge.payment_intent, charge.amount, charge.currency, charge.reference) == (
        pi["id"], 1000, "usd", "a")
    assert charge.id == pi["latest_charge"]
    assert (charge.captured, charge.live, charge.net, charge.idempotency_key) == (
        True, True, 1000, "k-a")
    assert fake_stripe.ledger.declines == 1
    assert fake_stripe.ledger.charges_for(pi["id"]) == (charge,)
    assert fake_stripe.ledger.charge(charge.id) == charge


def test_double_charges_are_found(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    pay(api, "once")
    pay(api, "twice")
    pay(api, "twice")
    held = pay(api, "held", capture_method="manual").json()
    pay(api, "held", capture_method="manual")
    api.post(f"/v1/payment_intents/{held['id']}/cancel")
    api.post("/v1/payment_intents", data={"amount": "1000", "currency": "usd",
                                          "payment_method": "pm_card_visa", "confirm": "true"})
    ledger = fake_stripe.ledger
    by_ref = ledger.charges_by_reference()
    assert {ref: len(c) for ref, c in by_ref.items()} == {"once": 1, "twice": 2, "held": 1,
                                                         None: 1}
    assert len(ledger.charges_by_reference(live_only=False)["held"]) == 2
    assert list(ledger.double_charges()) == ["twice"]
    assert ledger.summary() == {"charges": 6, "live_charges": 5, "captured": 4, "refunds": 0,
                                "declines": 0, "double_charged_references": 1}


def test_a_refund_does_not_hide_a_double_charge(api: httpx.Client,
                                                fake_stripe: FakeStripe) -> None:
    pay(api, "dup")
    second = pay(api, "dup").json()
    api.post("/v1/refunds", data={"payment_intent": second["id"], "reason": "duplicate"})
    assert list(fake_stripe.ledger.double_charges()) == ["dup"]
    assert fake_stripe.ledger.total("USD") == 1000


def test_the_ledger_over_http(api: httpx.Client) -> None:
    pay(api, "x")
    pay(api, "x")
    ledger = api.get("/_fake/ledger").json()
    assert [c["reference"] for c in ledger["charges"]] == ["x", "x"]
    assert ledger["summary"]["double_charged_references"] == 1
    assert list(ledger["double_charges"]) == ["x"]


def test_concurrent_retries_through_commit_then_reset_charge_once(
        fake_stripe: FakeStripe) -> None:
    """Many threads, each retrying with its own key through lost answers: one charge each."""
    fake_stripe.faults.load("create: 30% commit-then-reset, 10% reset, 10% 503")
    errors: list[BaseException] = []

    def customer(n: int) -> None:
        with httpx.Client(base_url=fake_stripe.url, timeout=5.0, headers={
                "Authorization": f"Bearer {fake_stripe.api_key}"}) as client:
            for _attempt in range(20):
                try:
                    if pay(client, f"ref-{n}", key=f"key-{n}").status_code == 200:
                        return
                except httpx.TransportError:
                    continue
            errors.append(AssertionError(f"customer {n} never got an answer"))

    threads = [threading.Thread(target=customer, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    assert errors == []
    ledger = fake_stripe.ledger
    assert len(ledger.charges) == 24
    assert not ledger.double_charges()
    assert set(ledger.charges_by_reference()) == {f"ref-{n}" for n in range(24)}
    assert fake_stripe.stats()["fault.commit-then-reset"] > 0


def test_ledger_refuses_to_record_a_charge_twice() -> None:
    ledger = Ledger()
    charge = Charge(id="ch_1", payment_intent="pi_1", amount=1, currency="usd", reference=None)
    ledger.record_charge(charge)
    with pytest.raises(AssertionError):
        ledger.record_charge(charge)
    assert repr(ledger) == "Ledger(charges=1, refunds=0)"


def test_verify_compares_the_clients_account_with_the_money(api: httpx.Client,
                                                            fake_stripe: FakeStripe) -> None:
    for ref in ("a", "b", "c", "d"):
        pay(api, ref)
    pay(api, "b")
    pay(api, "e", payment_method="pm_card_chargeDeclined")
    check = fake_stripe.ledger.verify(["a", "b", "x"], unknown=["c", "e"])
    assert not check.ok
    assert list(check.double_charged) == ["b"]
    assert check.missing == {"x"}
    assert check.unexpected == {"d"}
    assert (check.paid, check.charged, check.unreferenced) == (3, 4, 0)
    assert str(check).startswith("ledger FAILED: 3 reported paid, 4 charged, 1 double-charged")
    clean = FakeStripe().ledger.verify([])
    assert clean.ok
    assert str(clean).startswith("ledger OK")


def test_verify_passes_when_every_payment_was_charged_once(api: httpx.Client,
                                                           fake_stripe: FakeStripe) -> None:
    pay(api, "a", key="ka")
    pay(api, "a", key="ka")
    pay(api, "b", payment_method="pm_card_chargeDeclined")
    assert fake_stripe.ledger.verify(["a"], unknown=["b"]).ok
    api.post("/v1/payment_intents", data={"amount": "1000", "currency": "usd",
                                          "payment_method": "pm_card_visa", "confirm": "true"})
    assert fake_stripe.ledger.verify(["a"]).unreferenced == 1
