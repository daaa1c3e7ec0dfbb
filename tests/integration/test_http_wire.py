"""The wire tells the truth (issue 10, issue 9 §5), on every backend, against a loopback server.

* a POST carries and relies on an idempotency key only where the caller gave one or declared
  that the upstream honours keys;
* one egress attempt is exactly one request on the wire (no hidden resend by the backend);
* ``sent`` is a fact: bad header values are refused before any I/O, a pool wait is ``sent=False``;
* trust is what the caller configured (environment, redirects, certificates);
* no backend hangs past its deadline, whatever the server does;
* bodies: strict JSON, bounded decompression.

The ``make`` fixture (every test runs on aiohttp, httpx async, stdlib and httpx sync) comes from
``test_http_client``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _loopback import LoopbackServer, Reply, Reset
from test_http_client import FAST, Api, make, other, server  # noqa: F401  (fixtures)

from egress import Pipeline, Retry
from egress.errors import ConfigurationError, TransportError
from egress.http import retry_on
from egress.policies import attempts

# -- 1. a POST is retried only where a retry cannot hurt ---------------------------------------


def _retrying(n: int = 3) -> Pipeline:
    return Pipeline(Retry(on=retry_on(), backoff=FAST, stop=attempts(n)))


async def test_a_generic_post_carries_no_key_and_is_sent_once(
        make: Callable[..., Api], server: LoopbackServer) -> None:
    api = make(pipeline=_retrying())
    server.route("/v1/ship", lambda r: Reset())
    with pytest.raises(TransportError) as caught:
        await api.post("/ship", json={"parcel": 1})
    assert caught.value.sent is True and caught.value.replay_safe is False
    hits = server.hits("/v1/ship")
    assert len(hits) == 1  # two shipments if it had been retried
    assert "idempotency-key" not in hits[0].headers


async def test_a_declared_keyed_upstream_gets_one_key_and_retries(
        make: Callable[..., Api], server: LoopbackServer) -> None:
    api = make(pipeline=_retrying(), auto_idempotency_key=True)
    server.script("/v1/pay", Reset(), Reply(200))
    await api.post("/pay", json={"amount": 1})
    hits = server.hits("/v1/pay")
    assert len(hits) == 2
    assert len({h.headers["idempotency-key"] for h in hits}) == 1


async def test_keys_declared_per_route(make: Callable[..., Api],
                                       server: LoopbackServer) -> None:
    api = make(pipeline=_retrying(), auto_idempotency_key={"POST /orders/{id}/pay"})
    server.script("/v1/orders/7/pay", Reset(), Reply(200))
    await api.post("/orders/{id}/pay", path_params={"id": 7}, json={})
    assert len(server.hits("/v1/orders/7/pay")) == 2
    server.route("/v1/orders/7/ship", lambda r: Reset())
    with pytest.raises(TransportError):
        await api.post("/orders/{id}/ship", path_params={"id": 7}, json={})
    (hit,) = server.hits("/v1/orders/7/ship")
    assert "idempotency-key" not in hit.headers


async def test_a_key_the_caller_passes_is_sent_and_relied_on(
        make: Callable[..., Api], server: LoopbackServer) -> None:
    api = make(pipeline=_retrying())
    server.script("/v1/pay", Reset(), Reply(200))
    await api.post("/pay", json={}, idempotency_key="k-1")
    assert [h.headers["idempotency-key"] for h in server.hits("/v1/pay")] == ["k-1", "k-1"]
    server.script("/v1/pay2", Reset(), Reply(200))
    await api.post("/pay2", json={}, headers={"Idempotency-Key": "k-2"})
    assert len(server.hits("/v1/pay2")) == 2


# The documented table (docs/http-client.md): method x key x sent -> attempts on the wire.
@pytest.mark.parametrize(("method", "key", "hits"), [
    ("GET", None, 3), ("HEAD", None, 3), ("OPTIONS", None, 3), ("PUT", None, 3),
    ("DELETE", None, 3), ("POST", None, 1), ("PATCH", None, 1), ("POST", "k", 3),
    ("PATCH", "k", 3),
])
async def test_the_retry_table_after_a_sent_request(
        make: Callable[..., Api], server: LoopbackServer, method: str, key: str | None,
        hits: int) -> None:
    api = make(pipeline=_retrying())
    server.route("/v1/x", lambda r: Reset())
    kwargs = {} if method in ("GET", "HEAD", "OPTIONS") else {"json": {}}
    with pytest.raises(TransportError) as caught:
        await api.request(method, "/x", idempotency_key=key, **kwargs)
    assert caught.value.sent is True
    assert len(server.hits("/v1/x")) == hits


def test_auto_idempotency_key_setting_is_checked() -> None:
    from egress.http import ApiClient

    for bad in ("POST /x", 3, [1]):
        with pytest.raises(ConfigurationError):
            ApiClient("http://127.0.0.1:1", auto_idempotency_key=bad)  # type: ignore[arg-type]


# -- 2. one attempt is one request on the wire -----------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
@pytest.mark.parametrize("tries", [1, 3])
async def test_one_attempt_is_one_request_on_the_wire(
        make: Callable[..., Api], server: LoopbackServer, method: str, tries: int) -> None:
    api = make(pipeline=_retrying(tries) if tries > 1 else Pipeline())
    server.route("/v1/rst", lambda r: Reset())
    with pytest.raises(TransportError):
        await api.request(method, "/rst")
    assert len(server.hits("/v1/rst")) == tries
