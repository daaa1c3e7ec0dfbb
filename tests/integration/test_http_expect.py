"""``expect=``: statuses a call (or a client) treats as answers: returned as a Response, never
retried, never a breaker failure (issue 15 §7)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from _loopback import LoopbackServer, Reply

from egress import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    ConfigurationError,
    Pipeline,
    StatusError,
)
from egress.errors import UnsafeRequestError
from egress.http import ApiClient, SyncApiClient


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer().start()
    yield srv
    srv.stop()


def test_a_conditional_get_returns_304_when_expected(server: LoopbackServer) -> None:
    server.script("/v1/r", Reply(304, body=b"", headers={"ETag": '"v1"'}),
                  Reply(304, body=b""))
    with SyncApiClient(server.url + "/v1") as api:
        answer = api.get("/r", headers={"If-None-Match": '"v1"'}, expect={200, 304})
        assert (answer.status_code, answer.headers["etag"]) == (304, '"v1"')
        with pytest.raises(StatusError):  # not expected by this call: raised as before
            api.get("/r", headers={"If-None-Match": '"v1"'})


def test_expected_statuses_are_never_retried(server: LoopbackServer) -> None:
    server.script("/v1/busy", Reply(503, headers={"Retry-After": "0"}), Reply(200))

    async def call() -> int:
        async with ApiClient(server.url + "/v1") as api:
            return (await api.get("/busy", expect={503})).status_code

    assert asyncio.run(call()) == 503
    assert len(server.hits("/v1/busy")) == 1


def test_a_client_level_expectation_and_the_breaker(server: LoopbackServer) -> None:
    for _ in range(6):
        server.script("/v1/missing", Reply(404))

    def pipeline() -> tuple[Pipeline, CircuitBreaker]:
        # A 404 is not a breaker failure by default: count every StatusError, to see the
        # difference expect= makes.
        breaker = CircuitBreaker("lookups", minimum_calls=2, store=None,
                                 failure=StatusError)
        return Pipeline(breaker), breaker

    expected, breaker = pipeline()
    with SyncApiClient(server.url + "/v1", expect={404}, pipeline=expected) as api:
        assert [api.get("/missing").status_code for _ in range(3)] == [404] * 3
    assert breaker.state is CircuitState.CLOSED  # an expected answer is not a failure
    control, tripped = pipeline()
    with SyncApiClient(server.url + "/v1", pipeline=control) as api:
        for _ in range(3):
            with pytest.raises((StatusError, CircuitOpenError)):
                api.get("/missing")
    assert tripped.state is CircuitState.OPEN


def test_bad_expectations_are_typed_errors() -> None:
    with pytest.raises(ConfigurationError, match="expect"):
        SyncApiClient("https://api.example.com", expect={"304"})  # type: ignore[arg-type]
    with SyncApiClient("https://api.example.com") as api, \
            pytest.raises(UnsafeRequestError, match="expect"):
        api.get("/x", expect={99})
