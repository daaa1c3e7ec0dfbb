"""FakeStripe's idempotency layer, over HTTP: replay, mismatch, in-use, expiry, layer order."""

from __future__ import annotations

import asyncio

import httpx

from egress.testing import (
    FakeClock,
    fake_stripe_fixture,  # noqa: F401  (registers ``fake_stripe``)
)
from egress.testing.fake_stripe import FakeStripe, RateLimit
from egress.testing.fake_stripe._idempotency import (
    IdempotencyLayer,
    InUse,
    Mismatch,
    Replay,
    Started,
    StoredResponse,
)

VISA = {"amount": "2000", "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true", "metadata[reference]": "order-1"}


def post(api: httpx.Client, key: str | None, data: dict[str, str],
         path: str = "/v1/payment_intents") -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return api.post(path, data=data, headers=headers)


def test_same_key_same_params_replays_the_first_answer(api: httpx.Client,
                                                       fake_stripe: FakeStripe) -> None:
    first = post(api, "k1", VISA)
    second = post(api, "k1", dict(reversed(list(VISA.items()))))  # field order does not matter
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Original-Request"] == first.headers["Request-Id"]
    assert second.headers["Request-Id"] != first.headers["Request-Id"]
    assert second.headers["Idempotency-Key"] == "k1"
    assert len(fake_stripe.ledger.charges) == 1
    assert fake_stripe.stats()["idempotent_replays"] == 1


def test_without_a_key_every_post_is_new(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    post(api, None, VISA)
    post(api, None, VISA)
    assert len(fake_stripe.ledger.charges) == 2
    assert list(fake_stripe.ledger.double_charges()) == ["order-1"]


def test_a_decline_is_replayed_not_retried(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    data = {**VISA, "payment_method": "pm_card_chargeDeclined"}
    first, second = post(api, "d1", data), post(api, "d1", data)
    assert first.status_code == second.status_code == 402
    assert second.content == first.content
    assert fake_stripe.ledger.declines == 1


def test_a_stored_500_is_replayed_even_after_the_fault_is_gone(api: httpx.Client,
                                                              fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("payment_intents.create", "stored-500")
    first, second = post(api, "s1", VISA), post(api, "s1", VISA)
    assert first.status_code == second.status_code == 500
    assert first.headers["Stripe-Should-Retry"] == "false"
    assert second.headers["Stripe-Should-Retry"] == "false"
    assert second.headers["Idempotent-Replayed"] == "true"
    assert fake_stripe.payment_intents() == []
    assert post(api, "s2", VISA).status_code == 200


def test_different_parameters_or_endpoint_are_an_idempotency_error(
        api: httpx.Client, fake_stripe: FakeStripe) -> None:
    assert post(api, "m1", VISA).status_code == 200
    changed = post(api, "m1", {**VISA, "amount": "2001"})
    assert changed.status_code == 400
    assert changed.json()["error"]["type"] == "idempotency_error"
    other_endpoint = post(api, "m1", {"payment_intent": "pi_x"}, path="/v1/refunds")
    assert other_endpoint.status_code == 400
    assert other_endpoint.json()["error"]["type"] == "idempotency_error"
    assert len(fake_stripe.ledger.charges) == 1


def test_a_request_refused_before_executing_is_not_saved(api: httpx.Client,
                                                         fake_stripe: FakeStripe) -> None:
    bad = post(api, "v1", {**VISA, "amount": "not-a-number"})
    assert bad.status_code == 400
    good = post(api, "v1", VISA)
    assert good.status_code == 200
    assert "Idempotent-Replayed" not in good.headers


async def test_a_concurrent_request_with_the_same_key_gets_409(fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("payment_intents.create", "latency seconds=0.3")
    headers = {"Authorization": f"Bearer {fake_stripe.api_key}", "Idempotency-Key": "c1"}
    async with httpx.AsyncClient(base_url=fake_stripe.url, headers=headers) as client:
        slow = asyncio.create_task(client.post("/v1/payment_intents", data=VISA))
        await asyncio.sleep(0.1)
        clash = await client.post("/v1/payment_intents", data=VISA)
        first = await slow
        after = await client.post("/v1/payment_intents", data=VISA)
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "idempotency_key_in_use"
    assert first.status_code == 200
    assert after.headers["Idempotent-Replayed"] == "true"
    assert after.json()["id"] == first.json()["id"]
    assert len(fake_stripe.ledger.charges) == 1


def test_429_is_decided_before_the_idempotency_layer(api: httpx.Client,
                                                     fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("payment_intents.create", "429", "lock-timeout")
    assert post(api, "r1", VISA).status_code == 429
    locked = post(api, "r1", VISA)
    assert (locked.status_code, locked.json()["error"]["code"]) == (429, "lock_timeout")
    ok = post(api, "r1", VISA)
    assert ok.status_code == 200
    assert "Idempotent-Replayed" not in ok.headers
    assert len(fake_stripe.ledger.charges) == 1


def test_the_rate_limiter_runs_before_the_idempotency_layer() -> None:
    with FakeStripe(rate_limit=RateLimit(rate=0.001, burst=1)) as fake, httpx.Client(
            base_url=fake.url, headers={"Authorization": f"Bearer {fake.api_key}"}) as api:
        assert post(api, "l1", VISA).status_code == 200
        limited = post(api, "l2", VISA)
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limit"
        assert "Retry-After" not in limited.headers
        assert fake.stats()["rate_limited"] == 1


def test_keys_expire_after_the_ttl() -> None:
    clock = FakeClock()
    with FakeStripe(idempotency_ttl=60.0, clock=clock) as fake, httpx.Client(
            base_url=fake.url, headers={"Authorization": f"Bearer {fake.api_key}"}) as api:
        first = post(api, "e1", VISA)
        clock.sleep_sync(59.0)
        assert post(api, "e1", VISA).headers["Idempotent-Replayed"] == "true"
        clock.sleep_sync(1.0)
        # Forgotten: the same key now starts a brand-new payment (the 24 h trap).
        again = post(api, "e1", VISA)
        assert "Idempotent-Replayed" not in again.headers
        assert again.json()["id"] != first.json()["id"]
        assert list(fake.ledger.double_charges()) == ["order-1"]


def test_key_length_is_limited(api: httpx.Client) -> None:
    assert post(api, "x" * 255, VISA).status_code == 200
    too_long = post(api, "x" * 256, VISA)
    assert too_long.status_code == 400
    assert too_long.json()["error"]["type"] == "invalid_request_error"


def test_keys_are_ignored_on_get(api: httpx.Client) -> None:
    pi = post(api, "g1", VISA).json()
    for _ in range(2):
        got = api.get(f"/v1/payment_intents/{pi['id']}", headers={"Idempotency-Key": "g1"})
        assert got.status_code == 200
        assert "Idempotent-Replayed" not in got.headers


# -- the layer itself, without HTTP ---------------------------------------------------------


def test_layer_state_machine() -> None:
    now = [0.0]
    layer = IdempotencyLayer(ttl=10.0, now=lambda: now[0])
    stored = StoredResponse(200, b"{}", (), "req_1")
    assert layer.begin("k", "fp") == Started()
    assert layer.begin("k", "fp") == InUse()
    assert layer.begin("k", "other") == InUse()
    layer.complete("k", stored)
    assert layer.begin("k", "fp") == Replay(stored)
    assert layer.begin("k", "other") == Mismatch()
    layer.abandon("k")  # completed: abandoning is a no-op
    assert layer.begin("k", "fp") == Replay(stored)
    assert layer.begin("j", "fp") == Started()
    layer.abandon("j")
    assert layer.begin("j", "other") == Started()
    now[0] = 10.0
    assert layer.begin("k", "other") == Started()
    assert len(layer) == 2
