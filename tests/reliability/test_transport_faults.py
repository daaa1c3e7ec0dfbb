"""Fault matrix, row "Transport" (issue 17 §1): connection and body faults from a purpose-built
loopback server (``tests/integration/_loopback.py``), on every wire backend, through
ApiClient / SyncApiClient and StripePayments; outcome, ``sent`` and event counters asserted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import test_http_client as _clients
from _loopback import (
    Action,
    Chunked,
    Drip,
    LoopbackServer,
    Recorded,
    Reply,
    Reset,
    Truncate,
    gzip_bomb,
)
from test_http_client import BACKENDS, FAST, Api

from egress import DeadlineExceededError, EgressError, Pipeline, Retry, attempts
from egress.adapters.stripe import StripePayments
from egress.errors import ResponseError, TransportError
from egress.events import AttemptFailed, DeadlineExceeded, RetryScheduled
from egress.http import retry_on
from egress.testing import RecordingSink

make, server, other = _clients.make, _clients.server, _clients.other  # the shared fixtures

AREA = "Transport"


def _counted(sink: RecordingSink, n: int = 3) -> Pipeline:
    return Pipeline(Retry(on=retry_on(), backoff=FAST, stop=attempts(n)), sink=sink)


@pytest.mark.reliability(area=AREA, fault="connection refused, and a connection reset as "
                                          "soon as it is accepted (before the request is read), "
                                          "for an unkeyed POST",
                         expected="refused: sent=False, so even the POST is retried (3 "
                                  "attempts, 2 retry.scheduled); reset on accept: retried when "
                                  "the backend proves nothing was sent, else reported sent and "
                                  "not retried; never two requests")
async def test_refused_and_reset_before_sending(make: Callable[..., Api],
                                               server: LoopbackServer) -> None:
    sink = RecordingSink()
    probe = LoopbackServer().start()
    closed_url = probe.url
    probe.stop()  # nothing listens there any more
    api = make(base_url=closed_url, auto_idempotency_key=False, pipeline=_counted(sink))
    with pytest.raises(TransportError) as caught:
        await api.post("/pay", json={"amount": 1})
    assert caught.value.sent is False
    assert len(sink.of(RetryScheduled)) == 2
    sink.clear()
    api = make(auto_idempotency_key=False, pipeline=_counted(sink))
    server.reset_on_accept = 1
    outcome: BaseException | None = None
    try:
        await api.post("/once", json={"amount": 1})
    except TransportError as exc:
        outcome = exc
    if isinstance(outcome, TransportError):  # could not prove it unsent: reported, not resent
        assert outcome.sent is True and sink.of(RetryScheduled) == []
    else:
        assert len(sink.of(RetryScheduled)) == 1  # proved unsent: the retry is safe
    assert len(server.hits("/v1/once")) <= 1


@pytest.mark.reliability(area=AREA, fault="the server reads the request, then resets the "
                                          "connection (RST) without answering",
                         expected="unkeyed POST: TransportError(sent=True, replay_safe=False), "
                                  "one request, never retried; keyed POST: retried with the same "
                                  "key and bytes, answered")
async def test_reset_after_sending_is_ambiguous(make: Callable[..., Api],
                                               server: LoopbackServer) -> None:
    sink = RecordingSink()
    api = make(auto_idempotency_key=False, pipeline=_counted(sink))
    server.script("/v1/charge", Reset(), Reply(200))
    with pytest.raises(TransportError) as caught:
        await api.post("/charge", json={"amount": 2000})
    assert (caught.value.sent, caught.value.replay_safe) == (True, False)
    assert len(server.hits("/v1/charge")) == 1 and sink.of(RetryScheduled) == []
    server.script("/v1/keyed", Reset(), Reply(200, {"id": "ch_1"}))
    response = await api.post("/keyed", json={"amount": 2000}, idempotency_key="order-7")
    assert response.json() == {"id": "ch_1"}
    hits = server.hits("/v1/keyed")
    assert len(hits) == 2 and len(sink.of(RetryScheduled)) == 1
    assert {h.headers["idempotency-key"] for h in hits} == {"order-7"}
    assert hits[0].body == hits[1].body


@pytest.mark.reliability(area=AREA, fault="stale keep-alive: the server closes every idle "
                                          "pooled connection right after its answer",
                         expected="GETs and keyed POSTs keep answering (the dead connection is "
                                  "replaced or the attempt retried, a keyed POST with its one "
                                  "key); an unkeyed POST reaches the server at most once")
async def test_stale_keep_alive(make: Callable[..., Api], server: LoopbackServer) -> None:
    api = make(auto_idempotency_key=False)
    server.close_idle = True
    unkeyed_failures: list[TransportError] = []
    for n in range(3):
        assert (await api.get(f"/again-{n}")).status_code == 200
        await asyncio.sleep(0.02)  # the close lands while the connection idles in the pool
        response = await api.post(f"/keyed-{n}", json={"n": n}, idempotency_key=f"k-{n}")
        assert response.status_code == 200
        await asyncio.sleep(0.02)
        try:
            await api.post(f"/unkeyed-{n}", json={"n": n})
        except TransportError as exc:
            unkeyed_failures.append(exc)
        await asyncio.sleep(0.02)
    assert all(exc.sent for exc in unkeyed_failures)  # unproven: reported, never resent
    for n in range(3):
        assert len(server.hits(f"/v1/again-{n}")) == 1
        keyed = server.hits(f"/v1/keyed-{n}")
        assert len(keyed) == 1 and keyed[0].headers["idempotency-key"] == f"k-{n}"
        assert len(server.hits(f"/v1/unkeyed-{n}")) <= 1


@pytest.mark.reliability(area=AREA, fault="truncated body: Content-Length 1000, 500 bytes sent, "
                                          "then close",
                         expected="a GET is retried and answers; when every attempt is "
                                  "truncated: ResponseError(reason='truncated'), never partial "
                                  "JSON as a success; attempt.failed per cut attempt")
async def test_truncated_body(make: Callable[..., Api], server: LoopbackServer) -> None:
    sink = RecordingSink(per_call=True)
    api = make(pipeline=_counted(sink))
    server.script("/v1/t", Truncate(), Reply(200, {"ok": True}))
    assert (await api.get("/t")).json() == {"ok": True}
    assert len(server.hits("/v1/t")) == 2
    server.script("/v1/t2", Truncate(sent=b'{"ok": true' + b" " * 100), Truncate(), Truncate())
    with pytest.raises(ResponseError) as caught:
        await api.get("/t2")
    assert caught.value.reason == "truncated"
    assert len([e for e in sink.of(AttemptFailed) if e.error == "ResponseError"]) == 4


class Sliced(Action):
    """The whole answer (status line, headers, chunked body) written one byte per segment."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def run(self, server: LoopbackServer, request: Recorded,
                  writer: asyncio.StreamWriter) -> bool:
        half = len(self.body) // 2
        chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n"
                          for part in (self.body[:half], self.body[half:]))
        raw = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\nX-Sliced: yes\r\n\r\n" + chunks + b"0\r\n\r\n")
        for index in range(len(raw)):
            writer.write(raw[index:index + 1])
            await writer.drain()
            await asyncio.sleep(0)
        return False


@pytest.mark.reliability(area=AREA, fault="the whole answer (status line, headers, chunk "
                                          "sizes, body) arrives in 1-byte slices",
                         expected="parsed exactly as if it came at once")
async def test_one_byte_slices(make: Callable[..., Api], server: LoopbackServer) -> None:
    document = {"id": "pi_1", "amount": 2000, "metadata": {"reference": "order-1"}}
    server.script("/v1/sliced", Sliced(json.dumps(document).encode()))
    response = await make().get("/sliced")
    assert response.json() == document and response.headers["x-sliced"] == "yes"


@pytest.mark.reliability(area=AREA, fault="a bandwidth-starved body (100 KB dripped a byte at a "
                                          "time) under a 1 s deadline",
                         expected="DeadlineExceededError by 1 s + margin, a deadline.exceeded "
                                  "event (a timeout, not an unknown error); every backend at "
                                  "once")
async def test_a_starved_body_under_a_deadline(server: LoopbackServer) -> None:
    server.clear()
    sinks = {f"{k}-{b}": RecordingSink() for k, b in BACKENDS}
    apis = {name: Api(*name.split("-"), server.url + "/v1",  # type: ignore[misc]
                      pipeline=Pipeline(sink=sinks[name]))
            for name in sinks}
    for name in apis:
        server.script(f"/v1/starved-{name}", Drip(b"x" * 100_000, interval=0.01))

    async def call(name: str) -> Any:
        try:
            return await apis[name].get(f"/starved-{name}", deadline=1.0)
        except Exception as exc:
            return exc

    started = time.monotonic()
    try:
        outcomes = dict(zip(apis, await asyncio.gather(*(call(n) for n in apis)), strict=True))
    finally:
        for api in apis.values():
            await api.close()
    assert time.monotonic() - started < 3.0  # 1 s deadline; the body alone would take 1000 s
    for name, outcome in outcomes.items():
        assert isinstance(outcome, DeadlineExceededError), (name, outcome)
        assert len(sinks[name].of(DeadlineExceeded)) == 1, name


@pytest.mark.reliability(area=AREA, fault="oversized body: 5,000 bytes declared over a 1,000 "
                                          "byte cap; an endless chunked body over a 256 KiB cap",
                         expected="ResponseError(reason='oversized') both times; the declared "
                                  "one refused without reading; not retried")
async def test_oversized_body(make: Callable[..., Api], server: LoopbackServer) -> None:
    sink = RecordingSink(per_call=True)
    api = make(max_response_bytes=1000, pipeline=_counted(sink))
    server.script("/v1/big", Reply(200, b"x" * 5000))
    with pytest.raises(ResponseError) as caught:
        await api.get("/big")
    assert caught.value.reason == "oversized"
    api = make(max_response_bytes=256 * 1024, pipeline=_counted(sink))
    server.script("/v1/endless", Chunked(chunks=2000, size=65536))  # 128 MiB if read whole
    with pytest.raises(ResponseError) as caught:
        await api.get("/endless")
    assert caught.value.reason == "oversized"
    assert len(server.hits("/v1/big")) == len(server.hits("/v1/endless")) == 1
    assert sink.of(RetryScheduled) == []


BOMB = gzip_bomb(20 * 1024 * 1024)  # ~20 KB on the wire


@pytest.mark.reliability(area=AREA, fault="gzip bomb: 20 MiB of zeros in ~20 KB, under a 1 MiB "
                                          "cap",
                         expected="ResponseError(reason='oversized') at the decoded cap; "
                                  "not retried")
async def test_gzip_bomb(make: Callable[..., Api], server: LoopbackServer) -> None:
    sink = RecordingSink()
    api = make(max_response_bytes=1024 * 1024, pipeline=_counted(sink))
    server.script("/v1/bomb", Reply(200, BOMB, headers={"Content-Encoding": "gzip",
                                                        "Content-Type": "application/json"}))
    with pytest.raises(ResponseError) as caught:
        await api.get("/bomb")
    assert caught.value.reason == "oversized"
    assert len(server.hits("/v1/bomb")) == 1 and sink.of(RetryScheduled) == []


HOSTILE_JSON = {
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "huge integer": b'{"amount": ' + b"9" * 5000 + b"}",
    "NaN": b'{"amount": NaN}',
    "1e400": b'{"amount": 1e400}',
    "duplicate keys": b'{"status": "succeeded", "status": "canceled"}',
    "invalid UTF-8": b'{"id": "pi_\xff\xfe"}',
}


@pytest.mark.reliability(area=AREA, fault="hostile JSON: 100k-deep nesting, a 5,000-digit "
                                          "integer, NaN, 1e400, duplicate keys, invalid UTF-8",
                         expected="Response.json() raises ResponseError(reason='malformed') "
                                  "for each: never RecursionError, ValueError or a float")
async def test_hostile_json_gives_typed_errors(make: Callable[..., Api],
                                              server: LoopbackServer) -> None:
    api = make()
    for name, body in HOSTILE_JSON.items():
        path = "/v1/json-" + name.replace(" ", "-")
        server.script(path, Reply(200, body, headers={"Content-Type": "application/json"}))
        response = await api.get(path[3:])
        with pytest.raises(ResponseError) as caught:
            response.json()
        assert caught.value.reason == "malformed", name


STRIPE_AMOUNTS = {
    "float": b"1999.5",
    "exponent": b"2e3",
    "1e400": b"1e400",
    "NaN": b"NaN",
    "huge": b"9" * 40,
    "string": b'"2000"',
    "boolean": b"true",
}


@pytest.mark.reliability(area=AREA, fault="a Stripe PaymentIntent whose amount is a float, an "
                                          "exponent, 1e400, NaN, 40 digits, a string or a "
                                          "boolean",
                         expected="StripePayments.get raises a typed egress error for each; "
                                  "never a Payment with a float or unbounded amount, never a "
                                  "bare built-in exception")
async def test_hostile_amounts_never_become_a_payment(server: LoopbackServer) -> None:
    server.clear()
    async with StripePayments("sk_test_reliability", base_url=server.url, rate_limit=None,
                              pipeline=Pipeline()) as stripe:
        for name, amount in STRIPE_AMOUNTS.items():
            body = (b'{"id": "pi_1", "object": "payment_intent", "amount": ' + amount +
                    b', "currency": "eur", "status": "succeeded", "created": 1700000000, '
                    b'"metadata": {}}')
            server.script("/v1/payment_intents/pi_1", Reply(
                200, body, headers={"Content-Type": "application/json", "Request-Id": "req_1"}))
            with pytest.raises(EgressError) as caught:
                await stripe.get("pi_1")
            assert not isinstance(caught.value, RecursionError | OverflowError), name
    assert len(server.hits("/v1/payment_intents/pi_1")) == len(STRIPE_AMOUNTS)
