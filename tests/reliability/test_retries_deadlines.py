"""Fault matrix, row "Retries and deadlines" (issue 17 §1): through ApiClient / SyncApiClient and
StripePayments against loopback servers, outcome and event counters asserted.

Policy time (backoff, budget windows, ``Retry-After``) runs on a FakeClock; the deadline
scenarios are about wall time, so they use the real clock with generous margins and run every
backend at once (one wait of 2 s, not five).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import pytest
import test_http_client as _clients
from _loopback import Hang, LoopbackServer, Reply
from test_http_client import BACKENDS, FAST, Api

from egress import (
    Bulkhead,
    DeadlineExceededError,
    Pipeline,
    Retry,
    RetryBudget,
    StatusError,
    TokenRetryBudget,
    attempts,
)
from egress.adapters.stripe import StripePayments
from egress.errors import OutcomeUnknown, ProviderUnavailable
from egress.events import (
    AttemptStarted,
    BudgetExhausted,
    CallStarted,
    RetryExhausted,
    RetryGivenUp,
    RetryScheduled,
)
from egress.http import Timeouts, retry_on
from egress.payments import Money, PaymentRequest
from egress.testing import FakeClock, RecordingSink
from egress.testing.fake_stripe import FakeStripe, Fault

make, server, other = _clients.make, _clients.server, _clients.other  # the shared fixtures

AREA = "Retries and deadlines"


def _pipeline(clock: FakeClock | None, sink: RecordingSink, n: int = 3, **retry: Any) -> Pipeline:
    retry.setdefault("backoff", FAST)
    kwargs: dict[str, Any] = {"sink": sink}
    if clock is not None:
        kwargs["clock"] = clock
    return Pipeline(Retry(on=retry_on(), stop=attempts(n), **retry), **kwargs)


@pytest.mark.reliability(area=AREA, fault="503 forever",
                         expected="exactly max attempts (3) on the wire, then the typed "
                                  "StatusError(503); retry.scheduled x2, retry.exhausted x1")
async def test_503_forever_makes_exactly_max_attempts(make: Callable[..., Api],
                                                      server: LoopbackServer) -> None:
    sink = RecordingSink(per_call=True)
    api = make(pipeline=_pipeline(None, sink))
    server.route("/v1/down", lambda request: Reply(503, {"error": "down"}))
    with pytest.raises(StatusError) as caught:
        await api.get("/down")
    assert caught.value.status_code == 503
    assert len(server.hits("/v1/down")) == 3
    assert len(sink.of(AttemptStarted)) == 3
    assert [e.attempt for e in sink.of(RetryScheduled)] == [1, 2]
    (exhausted,) = sink.of(RetryExhausted)
    assert exhausted.attempts == 3


@pytest.mark.reliability(area=AREA, fault="1,000 calls during a total outage (503), "
                                          "RetryBudget(10 %, floor 3/s over 10 s)",
                         expected="wire requests <= 1.1 x 1,000 + 30 (3,000 without a budget); "
                                  "every caller gets a typed StatusError; "
                                  "retry.budget_exhausted > 0")
async def test_an_outage_with_a_budget_stays_near_one_times_the_load(
        server: LoopbackServer) -> None:
    server.clear()
    server.route("/v1/outage", lambda request: Reply(503))
    clock, sink = FakeClock(), RecordingSink()
    budget = RetryBudget(percent=0.1, min_per_second=3.0, window=10.0, name="outage")
    pipeline = _pipeline(clock, sink, budget=budget)
    api = Api("async", "aiohttp", server.url + "/v1", pipeline=pipeline, clock=clock)
    calls = 1000
    outcomes: list[BaseException] = []

    async def one() -> None:
        try:
            await api.get("/outage")
        except StatusError as exc:
            outcomes.append(exc)

    try:
        for _ in range(calls // 100):  # 100 callers at a time: an outage under load, bounded
            await asyncio.gather(*(one() for _ in range(100)))
    finally:
        await api.close()
    wire = len(server.hits("/v1/outage"))
    assert len(outcomes) == calls  # nobody got None or a foreign error
    assert all(e.status_code == 503 for e in outcomes)  # type: ignore[attr-defined]
    assert calls < wire <= 1.1 * calls + 30
    assert len(sink.of(BudgetExhausted)) > 0
    assert wire == calls + len(sink.of(RetryScheduled))  # every retry is one request, no more


@pytest.mark.reliability(area=AREA, fault="TokenRetryBudget(500 tokens, 5 per retry) during "
                                          "an outage, then the upstream recovers",
                         expected="50 failing calls (2 retries each) empty the bucket; the "
                                  "51st makes 1 attempt; 5 clean successes buy exactly one "
                                  "retry, and a success after a retry refunds it")
async def test_the_retry_quota_arithmetic(server: LoopbackServer) -> None:
    server.clear()
    sink = RecordingSink()
    budget = TokenRetryBudget(capacity=500, retry_cost=5, name="quota")
    clock = FakeClock()
    api = Api("async", "aiohttp", server.url + "/v1",
              pipeline=_pipeline(clock, sink, budget=budget), clock=clock)
    try:
        server.route("/v1/q", lambda request: Reply(503))
        for _ in range(50):
            with pytest.raises(StatusError):
                await api.get("/q")
        assert len(server.hits("/v1/q")) == 150 and sink.of(BudgetExhausted) == []
        with pytest.raises(StatusError):
            await api.get("/q")  # the bucket is empty: one attempt, no retry
        assert len(server.hits("/v1/q")) == 151
        assert len(sink.of(BudgetExhausted)) == 1
        server.clear()
        for _ in range(5):  # recovery: +1 token per first-try success
            await api.get("/fine")
        server.script("/v1/once", Reply(503))  # then 200: the retry is refunded on success
        assert (await api.get("/once")).status_code == 200
        server.script("/v1/again", Reply(503))
        assert (await api.get("/again")).status_code == 200  # the refund paid this retry
        server.script("/v1/twice", Reply(503), Reply(503))
        with pytest.raises(StatusError):  # 5 tokens: one retry, not two
            await api.get("/twice")
        assert [len(server.hits(f"/v1/{p}")) for p in ("once", "again", "twice")] == [2, 2, 2]
    finally:
        await api.close()


@pytest.mark.reliability(area=AREA, fault="an outage exhausts a RetryBudget, then the "
                                          "upstream comes back",
                         expected="once the window has passed, retries are allowed again "
                                  "(no permanent lockout): a 503-then-200 call succeeds with "
                                  "one retry and no retry.budget_exhausted")
async def test_the_budget_recovers_after_the_outage(server: LoopbackServer) -> None:
    server.clear()
    clock, sink = FakeClock(), RecordingSink()
    budget = RetryBudget(percent=0.1, min_per_second=0.1, window=10.0, name="recovery")
    api = Api("async", "aiohttp", server.url + "/v1",
              pipeline=_pipeline(clock, sink, budget=budget), clock=clock)
    try:
        server.route("/v1/x", lambda request: Reply(503))
        for _ in range(30):
            with pytest.raises(StatusError):
                await api.get("/x")
        assert sink.of(BudgetExhausted)
        server.clear()
        sink.clear()
        clock.advance(11.0)  # the outage's history leaves the window
        server.script("/v1/x", Reply(503))
        assert (await api.get("/x")).status_code == 200
        assert len(server.hits("/v1/x")) == 2
        assert len(sink.of(RetryScheduled)) == 1 and sink.of(BudgetExhausted) == []
    finally:
        await api.close()


# Retry-After forms: (header value or a callable of the clock's wall time, expected outcome).
# "sleep" = the Retry slept exactly that hint; "backoff" = the hint was ignored and the normal
# backoff was used; "refused" = the call failed at once, the error carrying the hint.
RETRY_AFTER = {
    "seconds": ("2", ("sleep", 2.0)),
    "http-date": (lambda wall: formatdate(wall + 30, usegmt=True), ("sleep", 30.0)),
    "past-date": (lambda wall: formatdate(wall - 3600, usegmt=True), ("sleep", 0.0)),
    # RFC 9110 §5.6.7: a recipient MUST accept all three HTTP-date forms; asctime is GMT.
    "rfc850-date": (lambda wall: time.strftime("%A, %d-%b-%y %H:%M:%S GMT",
                                               time.gmtime(wall + 20)), ("sleep", 20.0)),
    "asctime-date": (lambda wall: time.asctime(time.gmtime(wall + 25)), ("sleep", 25.0)),
    "negative": ("-1", ("backoff", None)),
    "huge": ("86400", ("refused", 86400.0)),
    "garbage": ("soon-ish", ("backoff", None)),
    "decimal": ("1.5", ("backoff", None)),
}


@pytest.mark.reliability(area=AREA, fault="429 with Retry-After as seconds, HTTP-date (IMF, "
                                          "RFC 850 and asctime forms), a past date, negative, "
                                          "huge (1 day), garbage, decimal",
                         expected="seconds/date: the retry waits exactly the hint; past: 0; "
                                  "negative/garbage/decimal: ignored, normal backoff; huge: "
                                  "no wait, typed StatusError carrying retry_after, "
                                  "retry.given_up")
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_429_retry_after_forms(server: LoopbackServer, kind: str) -> None:
    # The hint is parsed above the wire port: one async and one sync backend suffice.
    server.clear()
    for form, (value, (outcome, hint)) in RETRY_AFTER.items():
        clock, sink = FakeClock(), RecordingSink()
        api = Api(kind, "aiohttp" if kind == "async" else "stdlib", server.url + "/v1",
                  pipeline=_pipeline(clock, sink), clock=clock)
        header = value(clock.wall()) if callable(value) else value
        path = f"/v1/r-{form}"
        server.script(path, Reply(429, {"error": "slow down"}, headers={"Retry-After": header}))
        if outcome == "refused":
            with pytest.raises(StatusError) as caught:
                await api.get(path[3:])
            assert caught.value.retry_after == hint, form
            assert len(server.hits(path)) == 1 and clock.sleeps == [], form
            assert len(sink.of(RetryGivenUp)) == 1, form
            await api.close()
            continue
        assert (await api.get(path[3:])).status_code == 200, form
        assert len(server.hits(path)) == 2, form
        (scheduled,) = sink.of(RetryScheduled)
        if outcome == "sleep":
            assert scheduled.hinted and scheduled.delay == pytest.approx(hint), form
            assert clock.sleeps == [pytest.approx(hint)], form
        else:
            assert not scheduled.hinted and scheduled.delay <= FAST.cap, form
        await api.close()


@pytest.mark.reliability(area=AREA, fault="400, 401, 403, 404, 405, 410, 422 answers",
                         expected="never retried: one request each, a typed StatusError, "
                                  "no retry.scheduled")
async def test_4xx_is_never_retried(make: Callable[..., Api], server: LoopbackServer) -> None:
    sink = RecordingSink()
    api = make(pipeline=_pipeline(None, sink))
    for status in (400, 401, 403, 404, 405, 410, 422):
        server.script(f"/v1/s{status}", Reply(status, {"error": {"code": "nope"}}))
        with pytest.raises(StatusError) as caught:
            await api.get(f"/s{status}")
        assert caught.value.status_code == status
        server.script(f"/v1/p{status}", Reply(status, {"error": {"code": "nope"}}))
        with pytest.raises(StatusError):
            await api.post(f"/p{status}", json={}, idempotency_key=f"k-{status}")
        assert len(server.hits(f"/v1/s{status}")) == len(server.hits(f"/v1/p{status}")) == 1
    assert sink.of(RetryScheduled) == []


@pytest.mark.reliability(area=AREA, fault="Stripe-Should-Retry: false on a 503, true on a 400 "
                                          "(payment create via StripePayments)",
                         expected="false: one request, nothing retried; true: retried with "
                                  "the same key, one charge in the ledger")
async def test_stripe_should_retry_overrides_the_status(fake_stripe: FakeStripe) -> None:
    sink = RecordingSink()
    async with StripePayments(fake_stripe.api_key, base_url=fake_stripe.url, rate_limit=None,
                              sink=sink) as stripe:
        fake_stripe.faults.script("payment_intents.create",
                                  Fault.http_status(503, should_retry=False))
        with pytest.raises((OutcomeUnknown, ProviderUnavailable)):
            await stripe.create(PaymentRequest(amount=Money("20.00", "EUR"), reference="sr-1",
                                               payment_method="pm_card_visa"))
        assert fake_stripe.stats()["route.payment_intents.create"] == 1
        assert sink.of(RetryScheduled) == []
        fake_stripe.faults.script("payment_intents.create",
                                  Fault.http_status(400, should_retry=True))
        payment = await stripe.create(PaymentRequest(amount=Money("20.00", "EUR"),
                                                     reference="sr-2",
                                                     payment_method="pm_card_visa"))
        assert payment.amount == Money("20.00", "EUR")
        assert len(sink.of(RetryScheduled)) == 1
    assert fake_stripe.stats()["route.payment_intents.create"] == 3
    assert len(fake_stripe.ledger.charges) == 1 and not fake_stripe.ledger.double_charges()


@pytest.mark.reliability(area=AREA, fault="a 2 s deadline; the first attempt black-holed "
                                          "(and, separately, every attempt), each attempt "
                                          "limited to 0.7 s",
                         expected="black-holed first attempt: cut at 0.7 s, the retry answers; "
                                  "all black-holed: DeadlineExceededError at <= 2 s + margin, "
                                  "no attempt starts after the deadline; every backend")
async def test_a_deadline_with_a_black_holed_attempt(server: LoopbackServer) -> None:
    server.clear()
    sinks = {f"{k}-{b}": RecordingSink(per_call=True) for k, b in BACKENDS}
    apis = {name: Api(*name.split("-"), server.url + "/v1",  # type: ignore[misc]
                      timeouts=Timeouts(total=0.7),
                      pipeline=Pipeline(Retry(on=retry_on(), backoff=FAST, stop=attempts(10)),
                                        sink=sinks[name]))
            for name in sinks}
    for name in apis:
        server.script(f"/v1/first-{name}", Hang(4.0))  # then 200
        server.route(f"/v1/all-{name}", lambda request: Hang(4.0))

    async def call(name: str, path: str) -> tuple[str, str, float, Any]:
        started = time.monotonic()
        try:
            result: Any = await apis[name].get(f"/{path}-{name}", deadline=2.0)
        except Exception as exc:
            result = exc
        return name, path, started, result

    try:
        runs = await asyncio.gather(*(call(name, path) for name in apis
                                      for path in ("first", "all")))
        ended = time.monotonic()
    finally:
        for api in apis.values():
            await api.close()
    for name, path, started, result in runs:
        starts = [e.at for e in sinks[name].of(AttemptStarted)
                  if e.operation.endswith(f"/{path}-{name}")]
        # The deadline runs from the call's start: for a sync face, in its worker thread, which a
        # loaded machine may start later than this coroutine (seen once at load 12).
        begun = [e.at for e in sinks[name].of(CallStarted)
                 if e.operation.endswith(f"/{path}-{name}")]
        assert all(at - min(begun, default=started) < 2.0 for at in starts), (name, path)
        if path == "first":
            assert getattr(result, "status_code", None) == 200, (name, result)
            assert len(server.hits(f"/v1/first-{name}")) == 2
        else:
            assert isinstance(result, DeadlineExceededError), (name, result)
            assert 2 <= len(server.hits(f"/v1/all-{name}")) <= 3, name
    # generous: all ten calls ran at once on a loaded 2-core box; the servers hang for 4 s
    assert ended - min(run[2] for run in runs) < 3.5


@pytest.mark.reliability(area=AREA, fault="the caller cancels (asyncio) during the backoff "
                                          "sleep before a retry",
                         expected="CancelledError propagates at once; no further request; the "
                                  "bulkhead slot is given back; no retry.exhausted")
@pytest.mark.parametrize("backend", ["aiohttp", "httpx", "pyreqwest"])
async def test_cancellation_during_backoff(server: LoopbackServer, backend: str) -> None:
    server.clear()
    sink = RecordingSink()
    bulkhead = Bulkhead(2, name=f"cancel-{backend}")
    api = Api("async", backend, server.url + "/v1",
              pipeline=Pipeline(bulkhead, Retry(on=retry_on()), sink=sink))
    server.route("/v1/wait", lambda request: Reply(503, headers={"Retry-After": "30"}))
    try:
        task = asyncio.create_task(api.get("/wait"))
        for _ in range(500):  # until the first answer is in and the retry sleeps
            if sink.of(RetryScheduled):
                break
            await asyncio.sleep(0.01)
        assert sink.of(RetryScheduled)[0].delay == 30.0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5.0)
        await asyncio.sleep(0.2)
        assert len(server.hits("/v1/wait")) == 1
        assert sink.of(RetryExhausted) == []
        assert bulkhead.active == 0 and bulkhead.waiting == 0
    finally:
        await api.close()


@pytest.mark.reliability(area=AREA, fault="the caller cancels (asyncio) while a payment POST "
                                          "is in flight (the provider answers late)",
                         expected="CancelledError to the caller; the key is kept, so the same "
                                  "reference later resolves to the one payment: one charge, "
                                  "never two")
async def test_cancellation_during_an_in_flight_payment(fake_stripe: FakeStripe) -> None:
    request = PaymentRequest(amount=Money("20.00", "EUR"), reference="cancel-1",
                             payment_method="pm_card_visa")
    fake_stripe.faults.script("payment_intents.create", Fault.latency(0.5))
    async with StripePayments(fake_stripe.api_key, base_url=fake_stripe.url,
                              rate_limit=None) as stripe:
        task = asyncio.create_task(stripe.create(request))
        for _ in range(500):
            if fake_stripe.stats().get("route.payment_intents.create"):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5.0)
        await asyncio.sleep(0.8)  # the provider finishes the charge the caller gave up on
        payment = await stripe.create(request)  # the same reference: the same key
        assert payment.reference == "cancel-1"
    assert len(fake_stripe.ledger.charges) == 1 and not fake_stripe.ledger.double_charges()
