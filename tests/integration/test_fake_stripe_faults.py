"""Every fault kind, acted out over real HTTP and observed with raw httpx / aiohttp clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from email.utils import parsedate_to_datetime

import aiohttp
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress.errors import ConfigurationError
from egress.testing import (
    FakeClock,
    fake_stripe_fixture,  # noqa: F401  (registers ``fake_stripe``)
)
from egress.testing.fake_stripe import (
    CHAOS_PROFILES,
    FakeStripe,
    Fault,
    FaultKind,
    FaultPlan,
    FaultRule,
    parse_fault,
    parse_rules,
)

VISA = {"amount": "2000", "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true", "metadata[reference]": "order-1"}


def pay(api: httpx.Client, key: str | None = "key-1", **kwargs: float) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return api.post("/v1/payment_intents", data=VISA, headers=headers, **kwargs)  # type: ignore[arg-type]


def nothing_ran(fake: FakeStripe) -> bool:
    return fake.payment_intents() == [] and fake.ledger.charges == ()


# -- answers before anything runs -----------------------------------------------------------


def test_scripted_sequence_then_normal(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.load("payment_intents.create: 500, 500, 429 retry-after=2")
    statuses = [pay(api).status_code for _ in range(4)]
    assert statuses == [500, 500, 429, 200]
    assert fake_stripe.faults.pending() == 0
    assert len(fake_stripe.ledger.charges) == 1
    assert fake_stripe.stats()["fault.500"] == 2


def test_edge_5xx_runs_nothing_and_says_whether_to_retry(api: httpx.Client,
                                                         fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", "503 should-retry=true", "502 should-retry=false", "504")
    answers = [pay(api) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 502, 504]
    assert answers[0].headers["Stripe-Should-Retry"] == "true"
    assert answers[1].headers["Stripe-Should-Retry"] == "false"
    assert "Stripe-Should-Retry" not in answers[2].headers
    assert answers[0].json()["error"]["type"] == "api_error"
    assert nothing_ran(fake_stripe)


def test_retry_after_in_each_form(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", "429 retry-after=2", "429 retry-after=1.5",
                              "429 retry-after-date=30", "429 retry-after-raw=soon", "429")
    answers = [pay(api) for _ in range(5)]
    assert all(a.status_code == 429 for a in answers)
    assert answers[0].json()["error"]["code"] == "rate_limit"
    assert answers[0].headers["Retry-After"] == "2"
    assert answers[1].headers["Retry-After"] == "1.5"
    when = parsedate_to_datetime(answers[2].headers["Retry-After"]).timestamp()
    assert 25 < when - time.time() <= 31
    assert answers[3].headers["Retry-After"] == "soon"
    assert "Retry-After" not in answers[4].headers
    assert nothing_ran(fake_stripe)


def test_lock_timeout_and_key_in_use(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", "lock-timeout", "lock-timeout status=409", "key-in-use")
    lock429, lock409, in_use = pay(api), pay(api), pay(api)
    assert (lock429.status_code, lock429.json()["error"]["code"]) == (429, "lock_timeout")
    assert lock429.headers["Stripe-Should-Retry"] == "true"
    assert (lock409.status_code, lock409.json()["error"]["code"]) == (409, "lock_timeout")
    assert (in_use.status_code, in_use.json()["error"]["code"]) == (409,
                                                                    "idempotency_key_in_use")
    assert nothing_ran(fake_stripe)
    assert pay(api).status_code == 200


def test_latency_delays_then_answers(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", Fault.latency(0.15))
    started = time.perf_counter()
    assert pay(api).status_code == 200
    assert time.perf_counter() - started >= 0.15


def test_latency_past_the_client_timeout_still_commits(api: httpx.Client,
                                                       fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", "latency seconds=0.3")
    with pytest.raises(httpx.ReadTimeout):
        pay(api, timeout=0.1)
    deadline = time.monotonic() + 2.0
    while not fake_stripe.ledger.charges and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fake_stripe.ledger.charges) == 1
    assert pay(api).headers["Idempotent-Replayed"] == "true"


def test_reset_before_processing(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", "reset")
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        pay(api)
    assert nothing_ran(fake_stripe)
    assert pay(api).status_code == 200


def test_idle_close_looks_like_a_stale_keep_alive_connection(api: httpx.Client,
                                                             fake_stripe: FakeStripe) -> None:
    assert api.get("/v1/payment_intents").status_code == 200  # a pooled connection now exists
    fake_stripe.faults.script("create", "idle-close")
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        pay(api)
    assert nothing_ran(fake_stripe)


async def test_the_server_closes_idle_keep_alive_connections() -> None:
    async with FakeStripe(keepalive_timeout=0.05) as fake:
        reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
        writer.write(b"GET /_fake/health HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        assert await asyncio.wait_for(reader.read(), 2.0) == b""  # closed by the server
        writer.close()


def test_black_hole_until_the_client_gives_up(api: httpx.Client,
                                              fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", "black-hole")
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        pay(api, timeout=0.2)
    # The hole never answers: any bound proves the client gave up; a loose one cannot flake.
    assert time.perf_counter() - started < 5.0
    assert nothing_ran(fake_stripe)
    assert pay(api).status_code == 200  # the server is still serving


def test_black_hole_after_commit(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", "black-hole commit=true")
    with pytest.raises(httpx.ReadTimeout):
        pay(api, timeout=0.2)
    # The client's 0.2 s can run out before a starved server thread commits (a loaded box).
    deadline = time.monotonic() + 5.0
    while not fake_stripe.ledger.charges and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fake_stripe.ledger.charges) == 1
    assert pay(api).headers["Idempotent-Replayed"] == "true"


def test_black_hole_with_a_hold_limit_closes_without_answer(api: httpx.Client,
                                                            fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("retrieve", "black-hole seconds=0.1")
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/v1/payment_intents/pi_x")


def test_stopping_releases_a_black_holed_connection() -> None:
    fake = FakeStripe(faults="black-hole").start()
    result: list[BaseException] = []

    async def call() -> None:
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                await client.get(f"{fake.url}/v1/payment_intents",
                                 headers={"Authorization": f"Bearer {fake.api_key}"})
        except httpx.HTTPError as exc:
            result.append(exc)

    async def scenario() -> None:
        task = asyncio.create_task(call())
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        await asyncio.to_thread(fake.stop)
        await asyncio.wait_for(task, 3.0)
        assert time.perf_counter() - started < 3.0

    asyncio.run(scenario())
    assert isinstance(result[0], httpx.RemoteProtocolError)


# -- the operation runs, then the answer goes wrong -----------------------------------------


def test_commit_then_reset(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", Fault.commit_then_reset())
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        pay(api)
    [charge] = fake_stripe.ledger.charges
    retry = pay(api)
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == charge.payment_intent
    assert len(fake_stripe.ledger.charges) == 1


def test_commit_then_500_is_what_the_key_replays(api: httpx.Client,
                                                 fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", "commit-then-500")
    first, second = pay(api), pay(api)
    assert first.status_code == second.status_code == 500
    assert first.headers["Stripe-Should-Retry"] == "false"
    assert second.headers["Idempotent-Replayed"] == "true"
    [charge] = fake_stripe.ledger.charges
    found = api.get("/v1/payment_intents/search",
                    params={"query": "metadata['reference']:'order-1'"}).json()
    assert [p["id"] for p in found["data"]] == [charge.payment_intent]


def test_truncated_body(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", "truncate")
    with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|complete message body"):
        pay(api)
    assert len(fake_stripe.ledger.charges) == 1


def test_malformed_json(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", "malformed-json")
    response = pay(api)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert len(fake_stripe.ledger.charges) == 1


def test_slow_drip(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", Fault.slow_drip(seconds=0.04, chunks=5))
    started = time.perf_counter()
    chunks = []
    with api.stream("POST", "/v1/payment_intents", data=VISA) as response:
        chunks.extend(response.iter_raw())
    assert time.perf_counter() - started >= 0.15
    assert len(chunks) >= 3
    assert json.loads(b"".join(chunks))["status"] == "succeeded"


def test_slow_drip_beats_a_per_read_timeout_but_not_a_deadline(
        api: httpx.Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.script("create", Fault.slow_drip(seconds=0.05, chunks=200))
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        pay(api, timeout=0.03)  # each read waits up to 50 ms for the next piece
    assert time.perf_counter() - started < 5.0  # the whole drip takes 10 s: a loose bound


async def test_faults_through_aiohttp_in_the_running_loop() -> None:
    async with FakeStripe() as fake, aiohttp.ClientSession(
            fake.url, headers={"Authorization": f"Bearer {fake.api_key}"}) as session:
        fake.faults.script("create", "truncate", "reset", "idle-close")
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.post("/v1/payment_intents", data=VISA) as response:
                await response.read()
        for _ in range(2):
            with pytest.raises((aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
                async with session.post("/v1/payment_intents", data=VISA) as response:
                    await response.read()
        async with session.post("/v1/payment_intents", data=VISA) as response:
            assert response.status == 200
        assert len(fake.ledger.charges) == 2  # the truncated one and the last one


# -- routes, shares, windows --------------------------------------------------------------------


def test_faults_are_per_route(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    pi = pay(api, key=None).json()
    fake_stripe.faults.script("payment_intents.retrieve", "503")
    fake_stripe.faults.script("GET", "502")
    assert pay(api, key=None).status_code == 200
    assert api.get(f"/v1/payment_intents/{pi['id']}").status_code == 503
    assert api.get("/v1/payment_intents").status_code == 502
    assert api.get(f"/v1/payment_intents/{pi['id']}").status_code == 200


def test_repeat_syntax_and_ok(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.load("create: 503 x2, ok, 503")
    assert [pay(api, key=None).status_code for _ in range(5)] == [503, 503, 200, 503, 200]


def test_a_share_of_requests_is_deterministic_per_seed() -> None:
    def run(seed: int) -> list[int]:
        with FakeStripe(seed=seed, faults="*: 30% 503") as fake, httpx.Client(
                base_url=fake.url, headers={"Authorization": f"Bearer {fake.api_key}"}) as api:
            return [api.get("/v1/payment_intents").status_code for _ in range(60)]

    first, again, other = run(5), run(5), run(6)
    assert first == again
    assert first != other
    assert 8 <= first.count(503) <= 30


def test_windows_follow_the_clock() -> None:
    clock = FakeClock()
    with FakeStripe(faults="*@10-20: 100% 503", clock=clock) as fake, httpx.Client(
            base_url=fake.url, headers={"Authorization": f"Bearer {fake.api_key}"}) as api:
        statuses = []
        for step in (0.0, 9.0, 1.0, 9.0, 1.0):
            clock.sleep_sync(step)
            statuses.append(api.get("/v1/payment_intents").status_code)
        assert statuses == [200, 200, 503, 503, 200]


def test_draw_shares_match_the_profile() -> None:
    plan = FaultPlan(seed=3, now=lambda: 0.0)
    plan.use_profile(CHAOS_PROFILES["flaky"])
    draws = Counter(str(plan.draw("payment_intents.create", "POST")) for _ in range(20_000))
    assert abs(draws["503"] / 20_000 - 0.05) < 0.01
    assert abs(draws["reset"] / 20_000 - 0.02) < 0.005
    assert abs(draws["None"] / 20_000 - 0.83) < 0.015


def test_chaos_profiles_are_what_their_descriptions_say() -> None:
    assert set(CHAOS_PROFILES) == {"none", "flaky", "outage", "rate-limited", "ambiguous"}
    assert CHAOS_PROFILES["none"].rules == ()
    flaky = {f.kind for r in CHAOS_PROFILES["flaky"].rules for _s, f in r.mix}
    assert not any(kind.commits and kind is not FaultKind.LATENCY for kind in flaky)
    [outage] = CHAOS_PROFILES["outage"].rules
    assert (outage.after, outage.until, outage.mix[0][0]) == (0.5, 3.0, 1.0)
    assert CHAOS_PROFILES["rate-limited"].rate_limit is not None
    ambiguous = CHAOS_PROFILES["ambiguous"].rules
    assert all(r.route == "POST" for r in ambiguous)
    assert all(f.kind.commits or f.commit for r in ambiguous for _s, f in r.mix)


def test_outage_profile_over_http() -> None:
    clock = FakeClock()
    with FakeStripe(chaos="outage", clock=clock) as fake, httpx.Client(
            base_url=fake.url, headers={"Authorization": f"Bearer {fake.api_key}"}) as api:
        statuses = []
        for step in (0.0, 1.0, 1.0, 1.5):
            clock.sleep_sync(step)
            statuses.append(api.get("/v1/payment_intents").status_code)
        assert statuses == [200, 503, 503, 200]


def test_ambiguous_profile_commits_every_faulted_post() -> None:
    with FakeStripe(chaos="ambiguous", seed=11) as fake, httpx.Client(
            base_url=fake.url, timeout=2.0,  # a loaded box must not time out a normal answer
            headers={"Authorization": f"Bearer {fake.api_key}"}) as api:
        failures = 0
        for i in range(80):
            try:
                response = api.post("/v1/payment_intents", data={**VISA,
                                    "metadata[reference]": f"r{i}"})
                json.loads(response.content)
                if response.status_code != 200:
                    failures += 1
            except (httpx.HTTPError, json.JSONDecodeError):
                failures += 1
        assert failures > 0
        assert len(fake.ledger.charges) == 80  # every attempt ran, answered or not
        assert sum(fake.faults.injected.values()) == failures


# -- the control endpoint -----------------------------------------------------------------------


def test_control_endpoint(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    added = api.post("/_fake/faults", content="create: 503; *: 10% reset",
                     headers={"Content-Type": "text/plain"}).json()
    assert added["rules"] == ["create: 503", "*: 10% reset"]
    assert added["pending"] == 1
    replaced = api.post("/_fake/faults", json={
        "replace": True, "seed": 1,
        "rules": [{"route": "payment_intents.create", "script": ["429 retry-after=1"]},
                  {"route": "GET", "mix": [[0.0, "503"]]}]}).json()
    assert replaced["rules"] == ["payment_intents.create: 429 retry-after=1", "GET: 0% 503"]
    assert pay(api).status_code == 429
    assert api.get("/_fake/faults").json()["injected"] == {"429": 1}
    chaos = api.post("/_fake/faults", json={"replace": True, "chaos": "flaky"}).json()
    assert len(chaos["rules"]) == 1
    bad = api.post("/_fake/faults", content="create: explode",
                   headers={"Content-Type": "text/plain"})
    assert bad.status_code == 400
    assert "unknown fault" in bad.json()["error"]["message"]
    assert api.delete("/_fake/faults").json()["rules"] == []
    assert pay(api, key="fresh").status_code == 200


def test_control_endpoint_is_never_faulted_nor_authenticated(fake_stripe: FakeStripe) -> None:
    fake_stripe.faults.load("*: 100% reset; GET: 100% reset")
    assert httpx.get(f"{fake_stripe.url}/_fake/health").json() == {"ok": True}
    stats = httpx.get(f"{fake_stripe.url}/_fake/stats").json()
    assert stats["counters"] == {}


# -- the text form --------------------------------------------------------------------------


def test_parse_rules_examples() -> None:
    rules = parse_rules("""
        payment_intents.create: 500, 500, 429 retry-after=2   # scripted
        *: 5% 503, 2% reset; POST@0.5-3: 100% 503
        refunds.*@2-: 50% black-hole commit=true seconds=1
    """)
    assert [r.route for r in rules] == ["payment_intents.create", "*", "POST", "refunds.*"]
    assert [f.status for f in rules[0].script] == [500, 500, 429]
    assert rules[0].script[2].retry_after == 2.0
    assert rules[1].mix == ((0.05, Fault.http_status(503)), (0.02, Fault.reset()))
    assert (rules[2].after, rules[2].until) == (0.5, 3.0)
    assert (rules[3].after, rules[3].until) == (2.0, None)
    assert rules[3].mix[0][1] == Fault.black_hole(commit=True, seconds=1.0)


@pytest.mark.parametrize(("text", "message"), [
    ("explode", "unknown fault"),
    ("503 colour=red", "unknown fault option"),
    ("503 should-retry=maybe", "true or false"),
    ("latency seconds=soon", "must be a number"),
    ("*: 60% 503, 50% reset", "add up to"),
    ("*: 150% 503", "within 0..1"),
    ("create: 503,, reset", "empty fault"),
    ("999", "400..599"),
])
def test_bad_specs_are_configuration_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_rules(text)


_faults = st.one_of(
    st.builds(Fault.latency, st.floats(0, 5).map(lambda x: round(x, 3))),
    st.builds(Fault.http_status, st.sampled_from([500, 502, 503, 504, 400]),
              should_retry=st.sampled_from([None, True, False]),
              retry_after=st.sampled_from([None, 1.0, 2.5])),
    st.builds(Fault.rate_limited, retry_after=st.sampled_from([None, 0.0, 2.0, 30.0]),
              retry_after_form=st.sampled_from(["seconds", "http-date"])),
    st.builds(Fault.lock_timeout, status=st.sampled_from([409, 429])),
    st.builds(Fault.black_hole, commit=st.booleans(), seconds=st.sampled_from([0.5, 3600.0])),
    st.builds(Fault.slow_drip, seconds=st.sampled_from([0.01, 0.2]),
              chunks=st.integers(1, 50)),
    st.sampled_from([Fault.ok(), Fault.stored_500(), Fault.key_in_use(), Fault.reset(),
                     Fault.idle_close(), Fault.commit_then_reset(), Fault.commit_then_500(),
                     Fault.truncate(), Fault.malformed_json()]),
)


@given(fault=_faults)
def test_fault_text_round_trips(fault: Fault) -> None:
    assert parse_fault(str(fault)) == fault


@given(script=st.lists(_faults, max_size=4),
       mix=st.lists(st.tuples(st.integers(0, 20), _faults), max_size=4),
       route=st.sampled_from(["*", "create", "payment_intents.confirm", "GET", "refunds.*"]))
def test_rule_text_round_trips(script: list[Fault], mix: list[tuple[int, Fault]],
                               route: str) -> None:
    if not script and not mix:
        script = [Fault.reset()]
    rule = FaultRule(route=route, script=tuple(script),
                     mix=tuple((share / 100, fault) for share, fault in mix))
    [parsed] = parse_rules(str(rule))
    assert parsed == rule
