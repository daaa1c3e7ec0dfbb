"""Client construction, auth objects and ResilientTransport (no sockets)."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import httpx
import pytest

from egress import Pipeline, Retry, Secret
from egress.errors import (
    ConfigurationError,
    DeadlineExceededError,
    StatusError,
    TransportError,
    UnsafeRequestError,
)
from egress.events import InsecureTransport
from egress.http import (
    ApiClient,
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    HmacSigner,
    OAuth2ClientCredentials,
    ResilientTransport,
    SignableRequest,
    SyncApiClient,
    retry_on,
)
from egress.http._body import _UNSET
from egress.policies import Backoff
from egress.testing import FakeClock, RecordingSink

KEY = "sk_live_" + "Q" * 24


def test_defaults_and_repr_hide_secrets() -> None:
    client = SyncApiClient("https://api.example.com/v1", auth=BearerAuth(Secret(KEY)))
    assert client.backend == "stdlib"
    assert client.base_url == "https://api.example.com/v1"
    for text in (repr(client), str(client), repr(client.pipeline), repr(BearerAuth(Secret(KEY)))):
        assert KEY not in text
    client.close()


@pytest.mark.parametrize(("setting", "value"), [
    ("backend", "aiohttp"), ("max_response_bytes", 0), ("deadline", -1.0),
    ("max_connections", 1.5), ("headers", {"X-A": "a\nb"}), ("auth", "token"),
    ("verify", False), ("timeouts", 5.0), ("rate_limiter", object()), ("trust_env", True),
])
def test_bad_settings_fail_when_built(setting: str, value: Any) -> None:
    with pytest.raises(ConfigurationError):
        SyncApiClient("https://api.example.com", **{setting: value})


def test_header_value_never_echoed_by_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        ApiClient("https://api.example.com", headers={"X-Key": "secret\r\nvalue"})
    assert "secret" not in str(caught.value)


def test_verify_false_needs_explicit_logged_opt_in(caplog: pytest.LogCaptureFixture) -> None:
    sink = RecordingSink()
    with caplog.at_level(logging.WARNING, logger="egress.http"):
        client = SyncApiClient("https://api.example.com", verify=False, allow_insecure=True,
                               sink=sink)
    assert sink.of(InsecureTransport)
    assert "verification is OFF" in caplog.text
    client.close()


def test_static_auths() -> None:
    assert BearerAuth(Secret("t0k3n")).static_headers == {"Authorization": "Bearer t0k3n"}
    api = ApiKeyAuth(Secret("k3y"), header="X-Api-Key", prefix="Key ")
    assert api.static_headers == {"X-Api-Key": "Key k3y"}
    assert api.header_names == frozenset({"x-api-key"})
    basic = BasicAuth("user", Secret("p4ss"))
    assert basic.static_headers == {
        "Authorization": "Basic " + base64.b64encode(b"user:p4ss").decode()}
    with pytest.raises(ConfigurationError):
        BearerAuth("plain string")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        BearerAuth(Secret("bad\nvalue"))
    assert "p4ss" not in repr(basic)


def test_hmac_signer_is_deterministic_under_a_fake_clock() -> None:
    signer = HmacSigner(Secret("whsec_key"), clock=FakeClock(wall=1_700_000_000.0))
    request = SignableRequest("POST", "https://h/v1/x?a=1", {}, b"body")
    first = signer(request)
    assert first == signer(request)
    assert first["X-Signature"].startswith("t=1700000000,v1=")
    assert "whsec_key" not in repr(signer.auth())


class _TokenServer:
    def __init__(self, lifetime: int = 3600) -> None:
        self.calls = 0
        self.lifetime = lifetime

    def answer(self) -> tuple[int, bytes]:
        self.calls += 1
        body = f'{{"access_token": "tok-{self.calls}", "expires_in": {self.lifetime}}}'
        return 200, body.encode()

    async def fetch_async(self, url: str, headers: dict[str, str],
                          body: bytes) -> tuple[int, bytes]:
        await asyncio.sleep(0)
        return self.answer()

    def fetch_sync(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        return self.answer()


def _oauth(skew: float = 30.0) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials("https://auth.example/token", client_id="c",
                                   client_secret=Secret("cs"), skew=skew, send_as="form")


def test_oauth2_token_cached_until_expiry_minus_skew() -> None:
    clock = FakeClock()
    server = _TokenServer(lifetime=100)
    auth = _oauth(skew=30.0)
    assert auth.headers_sync(server.fetch_sync, clock, None) == {"Authorization": "Bearer tok-1"}
    clock.advance(69.0)
    auth.headers_sync(server.fetch_sync, clock, None)
    assert server.calls == 1
    clock.advance(1.0)
    assert auth.headers_sync(server.fetch_sync, clock, None) == {"Authorization": "Bearer tok-2"}
    # A 401 on tok-2 refreshes; a 401 on an older token does not.
    auth.headers_sync(server.fetch_sync, clock, "tok-1")
    assert server.calls == 2
    auth.headers_sync(server.fetch_sync, clock, "tok-2")
    assert server.calls == 3


async def test_oauth2_single_flight_async() -> None:
    clock = FakeClock()
    server = _TokenServer()
    auth = _oauth()
    results = await asyncio.gather(*(auth.headers_async(server.fetch_async, clock, None)
                                     for _ in range(50)))
    assert server.calls == 1 and len({r["Authorization"] for r in results}) == 1


def test_oauth2_bad_token_answers() -> None:
    clock = FakeClock()
    auth = _oauth()
    with pytest.raises(StatusError):
        auth.headers_sync(lambda u, h, b: (400, b'{"error":"invalid_client"}'), clock, None)
    with pytest.raises(Exception, match="access_token"):
        auth.headers_sync(lambda u, h, b: (200, b'{"token_type":"bearer"}'), clock, None)


async def test_path_escapes_refused_before_any_io() -> None:
    async with ApiClient("https://127.0.0.1:9/v1") as client:
        with pytest.raises(UnsafeRequestError):
            await client.get("https://evil.example/x")


# -- ResilientTransport -----------------------------------------------------------------------

FAST = Pipeline(Retry(on=retry_on(), backoff=Backoff(initial=0.0, cap=0.0)))


def _scripted(*outcomes: Any) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(outcomes)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        outcome = queue.pop(0) if queue else 200
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome, json={"n": len(seen)})

    return httpx.MockTransport(handler), seen


async def test_resilient_transport_retries_safe_requests() -> None:
    inner, seen = _scripted(503, httpx.ReadError("reset"), 200)
    async with httpx.AsyncClient(transport=ResilientTransport(inner, pipeline=FAST)) as client:
        resp = await client.get("https://api.example.com/x")
    assert resp.status_code == 200 and len(seen) == 3


def test_resilient_transport_sync_returns_the_last_failing_response() -> None:
    inner, seen = _scripted(503, 503, 503)
    with httpx.Client(transport=ResilientTransport(inner, pipeline=FAST)) as client:
        resp = client.get("https://api.example.com/x")
    assert resp.status_code == 503 and len(seen) == 3


async def test_resilient_transport_respects_safety_classes() -> None:
    inner, seen = _scripted(httpx.ReadError("reset"), 200)
    async with httpx.AsyncClient(transport=ResilientTransport(inner, pipeline=FAST)) as client:
        with pytest.raises(TransportError) as caught:
            await client.post("https://api.example.com/x", json={"a": 1})
        assert caught.value.sent is True and len(seen) == 1
        inner2, seen2 = _scripted(httpx.ReadError("reset"), 200)
    async with httpx.AsyncClient(transport=ResilientTransport(inner2, pipeline=FAST)) as client:
        resp = await client.post("https://api.example.com/x", json={"a": 1},
                                 headers={"Idempotency-Key": "k1"})
        assert resp.status_code == 200
        assert [r.content for r in seen2] == [b'{"a":1}', b'{"a":1}']


async def test_resilient_transport_connect_errors_are_not_sent() -> None:
    inner, seen = _scripted(httpx.ConnectError("refused"), 200)
    async with httpx.AsyncClient(transport=ResilientTransport(inner, pipeline=FAST)) as client:
        resp = await client.post("https://api.example.com/x", json={})
    assert resp.status_code == 200 and len(seen) == 2


async def test_resilient_transport_errors_never_show_url_credentials() -> None:
    inner, _ = _scripted(httpx.ReadError("reset"))
    async with httpx.AsyncClient(transport=ResilientTransport(inner, pipeline=FAST)) as client:
        with pytest.raises(TransportError) as caught:
            await client.post("https://user:pa55w0rd@api.example.com/x?token=t0k3n", json={})
    info = caught.value.request_info
    assert info is not None
    for shown in (str(caught.value), repr(caught.value), info.url, repr(info)):
        assert "pa55w0rd" not in shown and "t0k3n" not in shown
    assert info.url == "https://api.example.com/x"


async def test_resilient_transport_caps_timeouts_by_the_deadline() -> None:
    captured: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request.extensions["timeout"])
        return httpx.Response(200)

    transport = ResilientTransport(httpx.MockTransport(handler), deadline=2.0)
    async with httpx.AsyncClient(transport=transport, timeout=30.0) as client:
        await client.get("https://api.example.com/x")
    assert all(0 < value <= 2.0 for value in captured[0].values())
    with pytest.raises(ConfigurationError):
        ResilientTransport(deadline=0)
    assert DeadlineExceededError  # exported for callers of the transport


def test_per_call_headers_never_leak_into_the_defaults() -> None:
    client = SyncApiClient("https://api.example.com")
    core = client._core
    before = dict(core.default_headers)
    call = core.prepare("DELETE", "/x/{id}", params=None, json=_UNSET, form=None, content=None,
                        headers=None, path_params={"id": "1"}, idempotency_key="k-1",
                        operation=None)
    assert call.headers["Idempotency-Key"] == "k-1"
    core.prepare("PUT", "/y", params=None, json=_UNSET, form=None, content=None,
                 headers={"X-Extra": "1"}, path_params=None, idempotency_key=None,
                 operation=None)
    assert core.default_headers == before
    assert call.info.operation == "DELETE /x/{id}" and call.info.safety.value == "idempotent"
    client.close()


def test_plain_calls_are_prepared_once_and_keyed_calls_never_shared() -> None:
    client = SyncApiClient("https://api.example.com", auto_idempotency_key=True)
    core = client._core

    def prepare(method: str, **extra: Any) -> Any:
        settings: dict[str, Any] = dict(params=None, json=_UNSET, form=None, content=None,
                                        headers=None, path_params=None, idempotency_key=None,
                                        operation=None)
        settings.update(extra)
        return core.prepare(method, "/x", **settings)

    assert prepare("GET") is prepare("GET")
    assert prepare("GET", params={"a": 1}) is not prepare("GET", params={"a": 1})
    first, second = prepare("POST"), prepare("POST")
    assert first is not second and first.key != second.key
    client.close()


async def test_closed_clients_refuse_calls() -> None:
    client = ApiClient("http://127.0.0.1:9")
    await client.aclose()
    with pytest.raises(UnsafeRequestError, match="closed"):
        await client.get("/x")
    sync_client = SyncApiClient("http://127.0.0.1:9")
    sync_client.close()
    with pytest.raises(UnsafeRequestError, match="closed"):
        sync_client.get("/x")
