"""Stripe-Signature verification, typed errors, event parsing and de-duplication."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress import Secret
from egress.adapters.stripe import (
    StripeWebhooks,
    parse_event,
    sign_payload,
    verify_signature,
    verify_webhook,
)
from egress.errors import (
    ResponseError,
    WebhookError,
    WebhookSignatureMalformed,
    WebhookSignatureMismatch,
    WebhookSignatureMissing,
    WebhookTimestampStale,
)
from egress.payments import (
    Money,
    PaymentEvent,
    PaymentFailed,
    PaymentStatus,
    PaymentSucceeded,
    RefundUpdated,
    UnhandledEvent,
)
from egress.stores.idempotency_memory import MemoryIdempotencyStore
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
from egress.testing import FakeClock

SECRET = "whsec_test_secret"
NOW = 1_700_000_000
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "stripe" / "fixtures3.json"


def intent(**overrides: Any) -> dict[str, Any]:
    obj = {"id": "pi_1", "object": "payment_intent", "amount": 2000, "currency": "usd",
           "status": "succeeded", "created": NOW - 10, "metadata": {"reference": "o-1"},
           "amount_received": 2000, "livemode": False}
    obj.update(overrides)
    return obj


def event(type_: str = "payment_intent.succeeded", obj: dict[str, Any] | None = None,
          event_id: str = "evt_1") -> bytes:
    doc = {"id": event_id, "object": "event", "type": type_, "created": NOW, "livemode": False,
           "data": {"object": obj if obj is not None else intent()}}
    return json.dumps(doc).encode()


def header_for(payload: bytes, *, t: int = NOW, secret: str = SECRET) -> str:
    return sign_payload(payload, secret, t)


def test_signature_matches_the_documented_recipe() -> None:
    payload = event()
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + payload, hashlib.sha256)
    assert header_for(payload) == f"t={NOW},v1={expected.hexdigest()}"


def test_valid_signature_parses_a_typed_event() -> None:
    payload = event()
    got = verify_webhook(payload, header_for(payload), SECRET, now=NOW + 5)
    assert isinstance(got, PaymentSucceeded)
    assert got.id == "evt_1"
    assert got.payment.status is PaymentStatus.SUCCEEDED
    assert got.payment.reference == "o-1"
    assert got.payment.amount == Money("20.00", "USD")
    assert got.created.tzinfo is not None


def test_secret_may_be_a_secret_object_and_the_header_may_have_spaces() -> None:
    payload = event()
    header = header_for(payload).replace(",", " , ")
    assert verify_signature(payload, header, Secret(SECRET), now=NOW) == NOW


def test_missing_header() -> None:
    for header in (None, "", "   "):
        with pytest.raises(WebhookSignatureMissing):
            verify_webhook(event(), header, SECRET, now=NOW)


def test_no_v1_signature_is_missing() -> None:
    with pytest.raises(WebhookSignatureMissing):
        verify_webhook(event(), f"t={NOW},v0=abc", SECRET, now=NOW)


@pytest.mark.parametrize("header", [
    "garbage", f"v1={'a' * 64}", "t=abc,v1=00", "t=-5,v1=00", f"t={NOW},t={NOW},v1=00",
    "t=١٢٣,v1=00", "x" * 10_000, f"t={'1' * 5000},v1=00",
])
def test_malformed_header(header: str) -> None:
    with pytest.raises(WebhookSignatureMalformed):
        verify_webhook(event(), header, SECRET, now=NOW)


def test_wrong_secret_or_changed_body_is_a_mismatch() -> None:
    payload = event()
    with pytest.raises(WebhookSignatureMismatch):
        verify_webhook(payload, header_for(payload, secret="whsec_other"), SECRET, now=NOW)
    with pytest.raises(WebhookSignatureMismatch):
        verify_webhook(payload + b" ", header_for(payload), SECRET, now=NOW)
    reserialised = json.dumps(json.loads(payload), indent=2).encode()
    with pytest.raises(WebhookSignatureMismatch):
        verify_webhook(reserialised, header_for(payload), SECRET, now=NOW)


def test_signature_with_another_timestamp_is_a_mismatch() -> None:
    payload = event()
    _, sig = header_for(payload).split(",")
    with pytest.raises(WebhookSignatureMismatch):
        verify_webhook(payload, f"t={NOW + 1},{sig}", SECRET, now=NOW)


def test_every_v1_is_checked_so_rotated_secrets_work() -> None:
    payload = event()
    old = header_for(payload, secret="whsec_old").split(",")[1]
    new = header_for(payload, secret="whsec_new").split(",")[1]
    header = f"t={NOW},v1=deadbeef,{old},{new}"
    assert verify_signature(payload, header, "whsec_new", now=NOW) == NOW
    assert verify_signature(payload, header, "whsec_old", now=NOW) == NOW
    # The receiver may also hold both secrets while it rolls.
    only_old = f"t={NOW},{old}"
    assert verify_signature(payload, only_old, ["whsec_new", Secret("whsec_old")], now=NOW)


def test_comparisons_use_compare_digest_for_every_signature(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    payload = event()
    good = header_for(payload).split(",")[1]
    verify_signature(payload, f"t={NOW},{good},v1=00,v1=11", [SECRET, "whsec_b"], now=NOW)
    assert len(calls) == 6  # 3 signatures x 2 secrets, no early exit


def test_stale_timestamp() -> None:
    payload = event()
    header = header_for(payload, t=NOW - 301)
    with pytest.raises(WebhookTimestampStale) as info:
        verify_webhook(payload, header, SECRET, now=NOW)
    assert info.value.age == pytest.approx(301)
    # Within tolerance, a custom tolerance, and the check disabled.
    assert verify_signature(payload, header_for(payload, t=NOW - 300), SECRET, now=NOW)
    assert verify_signature(payload, header, SECRET, tolerance=600, now=NOW)
    assert verify_signature(payload, header, SECRET, tolerance=None, now=NOW)


def test_signature_is_checked_before_the_timestamp() -> None:
    payload = event()
    with pytest.raises(WebhookSignatureMismatch):
        verify_webhook(payload, f"t={NOW - 10_000},v1=00", SECRET, now=NOW)


def test_errors_never_show_the_secret_or_signatures() -> None:
    payload = event()
    header = header_for(payload, secret="whsec_other")
    with pytest.raises(WebhookError) as info:
        verify_webhook(payload, header, SECRET, now=NOW)
    text = str(info.value) + repr(info.value)
    assert SECRET not in text and header.split("v1=")[1] not in text
    assert "whsec" not in text


def test_payload_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        verify_signature(event().decode(), header_for(event()), SECRET)  # type: ignore[arg-type]


def test_failed_payment_event_carries_codes() -> None:
    obj = intent(status="requires_payment_method",
                 last_payment_error={"type": "card_error", "code": "card_declined",
                                     "decline_code": "insufficient_funds"})
    got = parse_event(event("payment_intent.payment_failed", obj))
    assert isinstance(got, PaymentFailed)
    assert got.decline_code == "insufficient_funds"
    assert got.code == "card_declined"
    assert got.payment.decline_code == "insufficient_funds"


def test_refund_event() -> None:
    refund = {"id": "re_1", "object": "refund", "amount": 500, "currency": "usd",
              "payment_intent": "pi_1", "status": "succeeded", "created": NOW,
              "metadata": {"reference": "r-1"}, "reason": "requested_by_customer"}
    got = parse_event(event("refund.created", refund))
    assert isinstance(got, RefundUpdated)
    assert got.refund.reference == "r-1"
    assert got.refund.amount == Money("5.00", "USD")


def test_other_events_are_unhandled_not_errors() -> None:
    got = parse_event(event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert isinstance(got, UnhandledEvent)
    assert got.object_type == "customer"


@pytest.mark.parametrize("payload", [
    b"not json", b"[]", b'{"object": "event"}',
    json.dumps({"id": "evt", "object": "event", "type": "x", "created": 1}).encode(),
    event(obj=intent(status="exploded")),
    event(obj=intent(amount=20.5)),
    b'{"id": "a", "id": "b"}',
])
def test_malformed_events_raise_response_error(payload: bytes) -> None:
    with pytest.raises(ResponseError):
        parse_event(payload)


def test_stripe_fixture_event_parses() -> None:
    fixture = json.loads(FIXTURES.read_text())["resources"]["event"]
    got = parse_event(json.dumps(fixture).encode())
    assert isinstance(got, UnhandledEvent)
    assert got.id == fixture["id"]
    wrapped = dict(fixture, type="payment_intent.created",
                   data={"object": json.loads(FIXTURES.read_text())["resources"]
                         ["payment_intent"]})
    assert parse_event(wrapped).type == "payment_intent.created"


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
async def test_handle_deduplicates_by_event_id(store_kind: str, tmp_path: Path) -> None:
    store = (MemoryIdempotencyStore() if store_kind == "memory"
             else SqliteIdempotencyStore(tmp_path / "hooks.db"))
    clock = FakeClock(wall=NOW)
    hooks = StripeWebhooks(secret=SECRET, store=store, clock=clock)
    seen: list[PaymentEvent] = []

    async def on_event(ev: PaymentEvent) -> None:
        seen.append(ev)

    payload = event()
    assert await hooks.handle(payload, header_for(payload), on_event) is True
    assert await hooks.handle(payload, header_for(payload), on_event) is False
    other = event(event_id="evt_2")
    assert await hooks.handle(other, header_for(other), on_event) is True
    assert [e.id for e in seen] == ["evt_1", "evt_2"]
    assert await hooks.dedup.seen("evt_1")


async def test_a_failing_handler_releases_the_event() -> None:
    clock = FakeClock(wall=NOW)
    hooks = StripeWebhooks(secret=SECRET, store=MemoryIdempotencyStore(), clock=clock)
    calls = 0

    async def flaky(ev: PaymentEvent) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("db down")

    payload = event()
    with pytest.raises(RuntimeError):
        await hooks.handle(payload, header_for(payload), flaky)
    assert await hooks.handle(payload, header_for(payload), flaky) is True
    assert calls == 2


async def test_an_abandoned_claim_is_taken_over_after_the_lease() -> None:
    clock = FakeClock(wall=NOW, auto_advance=False)
    store = MemoryIdempotencyStore()
    hooks = StripeWebhooks(secret=SECRET, store=store, clock=clock)
    token = await hooks.dedup.claim("evt_1")  # a worker claims it, then dies
    assert token is not None
    assert await hooks.dedup.claim("evt_1") is None  # live claim: a duplicate
    clock.advance(hooks.dedup.lease + 1)
    assert await hooks.dedup.claim("evt_1") is not None


async def test_verification_failure_never_reaches_the_handler() -> None:
    hooks = StripeWebhooks(secret=SECRET, store=MemoryIdempotencyStore(),
                           clock=FakeClock(wall=NOW))

    async def boom(ev: PaymentEvent) -> None:
        raise AssertionError("must not run")

    with pytest.raises(WebhookSignatureMismatch):
        await hooks.handle(event(), f"t={NOW},v1=00", boom)


def test_bad_configuration() -> None:
    from egress.errors import ConfigurationError
    with pytest.raises(ConfigurationError):
        StripeWebhooks(secret="", store=MemoryIdempotencyStore())
    with pytest.raises(ConfigurationError):
        StripeWebhooks(secret=[], store=MemoryIdempotencyStore())
    with pytest.raises(ConfigurationError):
        StripeWebhooks(secret=SECRET, store=MemoryIdempotencyStore(), tolerance=-1)


@given(header=st.text(max_size=300))
def test_any_header_fails_only_with_a_typed_error(header: str) -> None:
    with pytest.raises(WebhookError):
        verify_signature(event(), header, SECRET, now=NOW)


@given(body=st.binary(max_size=500), t=st.integers(min_value=0, max_value=2**40),
       secret=st.text(min_size=1, max_size=40))
def test_what_is_signed_verifies_and_nothing_else(body: bytes, t: int, secret: str) -> None:
    header = sign_payload(body, secret, t)
    assert verify_signature(body, header, secret, tolerance=None) == t
    with pytest.raises(WebhookSignatureMismatch):
        verify_signature(body + b"x", header, secret, tolerance=None)
