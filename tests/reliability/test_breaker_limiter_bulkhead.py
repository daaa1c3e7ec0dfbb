"""Fault matrix, row "Breaker, limiter, bulkhead" (issue 17 §1): the policies in a client's
pipeline, against loopback servers and FakeStripe, with their events counted.

Breaker waits and limiter spacing are policy time: a FakeClock. The bulkhead scenario is about a
pool held by a hung server, so it runs on the real clock and asserts order, not durations.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
import test_http_client as _clients
from _loopback import Hang, LoopbackServer, Reply
from test_http_client import BACKENDS, Api

from egress import (
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CountWindow,
    DeadlineExceededError,
    Pipeline,
    RateLimitedError,
    RateLimiter,
    StatusError,
)
from egress.adapters.stripe import StripePayments
from egress.errors import OutcomeUnknown, ProviderUnavailable
from egress.events import (
    BulkheadRejected,
    CircuitRejected,
    CircuitStateChanged,
    RateLimitRejected,
)
from egress.payments import Money, PaymentRequest
from egress.payments.breaker import payment_failure
from egress.testing import FakeClock, RecordingSink
from egress.testing.fake_stripe import FakeStripe, Fault

server, other = _clients.server, _clients.other  # the shared fixtures

AREA = "Breaker, limiter, bulkhead"


def _opened(sink: RecordingSink) -> int:
    return sum(1 for e in sink.of(CircuitStateChanged) if e.new == "open")


@pytest.mark.reliability(area=AREA, fault="500 forever; breaker with minimum_calls=5, "
                                          "window 10, threshold 50 %",
                         expected="closed through the first 4 failures (each reaches the "
                                  "wire); opens on the 5th (one state change); the 6th call "
                                  "is refused with CircuitOpenError and no request")
async def test_the_breaker_opens_only_after_minimum_calls(server: LoopbackServer) -> None:
    server.clear()
    clock, sink = FakeClock(), RecordingSink()
    breaker = CircuitBreaker("minimum", window=CountWindow(10), minimum_calls=5,
                             failure_rate_threshold=0.5, wait_in_open=30.0, clock=clock,
                             sink=sink)
    api = Api("async", "aiohttp", server.url + "/v1", clock=clock,
              pipeline=Pipeline(breaker, clock=clock, sink=sink))
    server.route("/v1/fail", lambda request: Reply(500))
    try:
        await _first_six_calls(api, breaker, sink)
    finally:
        await api.close()
    assert len(server.hits("/v1/fail")) == 5
    assert len(sink.of(CircuitRejected)) == 1


async def _first_six_calls(api: Api, breaker: CircuitBreaker, sink: RecordingSink) -> None:
    for call in range(1, 6):
        with pytest.raises(StatusError):
            await api.get("/fail")
        assert breaker.state is (CircuitState.CLOSED if call < 5 else CircuitState.OPEN)
        assert _opened(sink) == (0 if call < 5 else 1)
    with pytest.raises(CircuitOpenError) as caught:
        await api.get("/fail")
    assert caught.value.sent is False and caught.value.retry_after == pytest.approx(30.0)


@pytest.mark.reliability(area=AREA, fault="50 callers racing into a failing upstream, then 50 "
                                          "racing into the half-open breaker (3 probes)",
                         expected="one 'opened' event for 50 concurrent failures; exactly 3 "
                                  "probe requests reach the upstream, 47 get CircuitOpenError "
                                  "(47 circuit.rejected); the probes' successes close it")
async def test_exactly_n_half_open_probes_under_50_racing_callers(
        server: LoopbackServer) -> None:
    backend = "aiohttp"  # the race is in the breaker, above the wire port
    server.clear()
    clock, sink = FakeClock(auto_advance=False), RecordingSink()
    breaker = CircuitBreaker("probes", window=CountWindow(20), minimum_calls=10,
                             wait_in_open=5.0, half_open_calls=3, clock=clock, sink=sink)
    api = Api("async", backend, server.url + "/v1", clock=clock, max_connections=60,
              pipeline=Pipeline(breaker, clock=clock, sink=sink))
    server.route("/v1/fail", lambda request: Reply(503))
    try:
        down = await asyncio.gather(*(api.get("/fail") for _ in range(50)),
                                    return_exceptions=True)
        assert all(isinstance(r, StatusError) for r in down)
        assert breaker.state is CircuitState.OPEN and _opened(sink) == 1
        clock.advance(5.0)
        sink.clear()
        results = await asyncio.gather(*(api.get("/probe") for _ in range(50)),
                                       return_exceptions=True)
    finally:
        await api.close()
    passed = [r for r in results if getattr(r, "status_code", None) == 200]
    refused = [r for r in results if isinstance(r, CircuitOpenError)]
    assert (len(passed), len(refused)) == (3, 47)
    assert len(server.hits("/v1/probe")) == 3
    assert len(sink.of(CircuitRejected)) == 47
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.reliability(area=AREA, fault="the breaker is open when a payment create (POST) "
                                          "is attempted",
                         expected="ProviderUnavailable caused by CircuitOpenError(sent=False): "
                                  "no request reaches Stripe; after the wait the same "
                                  "reference is charged once")
async def test_an_open_breaker_on_a_payment_post_reports_not_sent(
        fake_stripe: FakeStripe) -> None:
    clock, sink = FakeClock(auto_advance=False), RecordingSink()
    breaker = CircuitBreaker("stripe-payments", window=CountWindow(4), minimum_calls=2,
                             wait_in_open=10.0, failure=payment_failure, clock=clock,
                             sink=sink)
    fake_stripe.faults.script("payment_intents.create", Fault.http_status(500),
                              Fault.http_status(500))

    def pay(reference: str) -> PaymentRequest:
        return PaymentRequest(amount=Money("12.00", "EUR"), reference=reference,
                              payment_method="pm_card_visa")

    async with StripePayments(fake_stripe.api_key, base_url=fake_stripe.url, rate_limit=None,
                              pipeline=Pipeline(breaker, clock=clock, sink=sink), clock=clock,
                              check_new_references=False) as stripe:
        for reference in ("open-1", "open-2"):
            with pytest.raises(OutcomeUnknown):  # a 500 after sending: ambiguous
                await stripe.create(pay(reference))
        assert breaker.state is CircuitState.OPEN
        with pytest.raises(ProviderUnavailable) as caught:
            await stripe.create(pay("open-3"))
        cause = caught.value.__cause__
        assert isinstance(cause, CircuitOpenError) and cause.sent is False
        assert not isinstance(caught.value, OutcomeUnknown)
        assert fake_stripe.stats()["route.payment_intents.create"] == 2
        assert len(sink.of(CircuitRejected)) == 1
        clock.advance(10.0)
        payment = await stripe.create(pay("open-3"))
        assert payment.reference == "open-3"
    assert [c.reference for c in fake_stripe.ledger.charges] == ["open-3"]


@pytest.mark.reliability(area=AREA, fault="a burst of 100 concurrent calls into a 25/s "
                                          "limiter (burst 25): first with max_wait 10 s, then "
                                          "with max_wait 1 s",
                         expected="max_wait 10 s: all 100 reach the upstream, spread over >= 3 s "
                                  "of (fake) time; max_wait 1 s: every call either answers or "
                                  "gets RateLimitedError with no request, and "
                                  "ratelimit.rejected counts exactly those: none dropped "
                                  "silently")
async def test_a_burst_is_spread_out_and_none_dropped_silently(server: LoopbackServer) -> None:
    for max_wait in (10.0, 1.0):
        server.clear()
        clock, sink = FakeClock(), RecordingSink()
        limiter = RateLimiter(25.0, burst=25, max_wait=max_wait, name=f"burst-{max_wait}",
                              clock=clock, sink=sink)
        api = Api("async", "aiohttp", server.url + "/v1", clock=clock, max_connections=100,
                  rate_limiter=limiter, pipeline=Pipeline(limiter, clock=clock, sink=sink))
        started = clock.now()
        sent_at: list[float] = []

        async def one(api: Api = api, clock: FakeClock = clock,
                      sent_at: list[float] = sent_at) -> object:
            try:
                response = await api.get("/burst")
            except RateLimitedError as exc:
                return exc
            sent_at.append(clock.now())
            return response

        try:
            results = await asyncio.gather(*(one() for _ in range(100)))
        finally:
            await api.close()
        refused = [r for r in results if isinstance(r, RateLimitedError)]
        answered = [r for r in results if getattr(r, "status_code", None) == 200]
        assert len(answered) + len(refused) == 100
        assert len(server.hits("/v1/burst")) == len(answered)
        assert len(sink.of(RateLimitRejected)) == len(refused)
        assert all(r.sent is False and r.retry_after for r in refused)
        if max_wait == 10.0:
            assert refused == [] and max(sent_at) - started >= 2.95  # 75 calls at 25/s
        else:  # 25 at once, then 25 more within the second it may wait
            assert 45 <= len(answered) <= 55 and max(sent_at) - started <= 1.0 + 1e-6


@pytest.mark.reliability(area=AREA, fault="upstream A hangs every request; A's bulkhead is 2 "
                                          "slots without queue; upstream B is healthy",
                         expected="A's 3 extra callers get BulkheadFullError at once (nothing "
                                  "sent, bulkhead.rejected x3); all of B's calls answer while "
                                  "A's two calls still hang, which end by their deadline; "
                                  "every backend")
async def test_a_hung_upstream_cannot_starve_another(server: LoopbackServer,
                                                     other: LoopbackServer) -> None:
    # Every backend at once, each with its own pair of clients: one wait of the hang, not five.
    # The sync clients run in threads: asyncio's default pool has 6 on this 2-core machine, and
    # the 4 hung sync calls hold 4 of them for the whole deadline, so the other calls (extra and
    # healthy, 16 of them) queued for 2 threads, and on a loaded machine B's answers could come
    # after A's deadline. A pool with a thread for every call measures the bulkhead, not the pool.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=32))
    server.clear()
    other.clear()
    server.route("/v1/hang", lambda request: Hang(6.0))
    pairs = {f"{k}-{b}": (RecordingSink(),) for k, b in BACKENDS}
    clients = {name: (Api(*name.split("-"), server.url + "/v1", max_connections=2,  # type: ignore[misc]
                          pipeline=Pipeline(Bulkhead(2, max_queue=0, name=f"a-{name}"),
                                            sink=sink)),
                      Api(*name.split("-"), other.url + "/v1", max_connections=2))  # type: ignore[misc]
               for name, (sink,) in pairs.items()}

    async def scenario(name: str) -> None:
        hung, healthy = clients[name]
        # The deadline leaves room for a loaded machine: the extra calls must meet A's two
        # calls still holding the bulkhead (seen failing once at 1.5 s under load ~10).
        a_calls = [asyncio.create_task(hung.get("/hang", params={"b": name}, deadline=3.0))
                   for _ in range(2)]
        # Both hung requests are on the wire. Matched exactly: "sync-httpx" is also a substring
        # of "async-httpx", whose two requests then counted too, and a loaded loop that polled
        # only after all four had arrived never saw exactly 2.
        mine = f"/v1/hang?b={name}"
        for _ in range(500):
            if len([r for r in server.hits("/v1/hang") if r.path == mine]) == 2:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"{name}: A's two calls never both reached the server")
        extra = await asyncio.gather(*(hung.get("/hang") for _ in range(3)),
                                     return_exceptions=True)
        assert all(isinstance(r, BulkheadFullError) and r.sent is False for r in extra), name
        b_results = await asyncio.gather(*(healthy.get("/fine") for _ in range(5)))
        assert not any(task.done() for task in a_calls), name  # B answered while A hung
        assert all(r.status_code == 200 for r in b_results), name
        assert len(pairs[name][0].of(BulkheadRejected)) == 3, name
        for outcome in await asyncio.gather(*a_calls, return_exceptions=True):
            assert isinstance(outcome, DeadlineExceededError), (name, outcome)

    try:
        await asyncio.gather(*(scenario(name) for name in clients))
    finally:
        for hung, healthy in clients.values():
            await hung.close()
            await healthy.close()
    assert len(server.hits("/v1/hang")) == 2 * len(clients)
