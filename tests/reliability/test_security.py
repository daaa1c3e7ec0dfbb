"""Fault matrix, row "Security" (issue 17 §1): hostile paths, redirects, header injection, TLS
and planted secrets, through ApiClient / SyncApiClient on every wire backend, against loopback
servers (plain, self-signed TLS, and TLS from a test CA).
"""

from __future__ import annotations

import io
import logging
import ssl
from collections.abc import Callable, Iterator

import pytest
import test_http_client as _clients
import test_http_wire as _wire
import trustme
from _loopback import Hang, LoopbackServer, Reply
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from test_http_client import FAST, Api

from egress import EgressError, Pipeline, Retry, Secret, attempts
from egress.errors import (
    ConfigurationError,
    ResponseError,
    TLSVerificationError,
    UnsafeRequestError,
)
from egress.events import AttemptFailed, FanOutSink, RedirectFollowed, RetryScheduled
from egress.http import BearerAuth, Timeouts, retry_on
from egress.observability.logging import JsonFormatter, LoggingSink
from egress.observability.otel import OpenTelemetrySink
from egress.observability.prometheus import PrometheusSink
from egress.testing import RecordingSink

make, server, other = _clients.make, _clients.server, _clients.other  # the shared fixtures
# TLS: a self-signed certificate (test_http_wire's, made by openssl) and a certificate from a
# test CA (trustme: ECDSA, fast), which every backend can be told to trust (rustls refuses a
# self-signed leaf).
certificate, self_signed_server = _wire.certificate, _wire.tls_server


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, trustme.CA]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return str(path), authority


@pytest.fixture(scope="module")
def tls_server(ca_file: tuple[str, trustme.CA]) -> Iterator[LoopbackServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca_file[1].issue_cert("127.0.0.1").configure_cert(context)
    srv = LoopbackServer(ssl_context=context).start()
    yield srv
    srv.stop()

AREA = "Security"
TOKEN = "sk_live_51PlantedReliabilityToken"


@pytest.mark.reliability(area=AREA, fault="absolute and scheme-relative URLs as the path "
                                          "(http://, https://, //host, https:x, \\\\host)",
                         expected="UnsafeRequestError before any I/O: the base server and the "
                                  "other origin receive nothing; the token goes nowhere")
async def test_absolute_and_scheme_relative_paths_are_refused(
        make: Callable[..., Api], server: LoopbackServer, other: LoopbackServer) -> None:
    api = make(auth=BearerAuth(Secret(TOKEN)))
    target = other.url.split("://", 1)[1]
    for path in (f"http://{target}/x", f"https://{target}/x", f"//{target}/x", "https:x",
                 f"\\\\{target}\\x", f"HTTP://{target}/x"):
        with pytest.raises(UnsafeRequestError):
            await api.get(path)
        with pytest.raises(UnsafeRequestError):
            await api.post(path, json={}, idempotency_key="k-1")
    assert server.requests == [] and other.requests == []


ESCAPING_VALUES = ("..", "../admin", "../../admin", "%2e%2e", "%2E%2E%2Fadmin", "a/b", "?x=1",
                   "#frag", "@evil", "\\evil", ".", "a\x00b")


@pytest.mark.reliability(area=AREA, fault="dot segments and encoded escapes: raw paths "
                                          "(../admin, /a/../../admin, %2e%2e/admin) and path "
                                          "parameters (.., ../admin, %2e%2e, a/b, ?x, #frag, "
                                          "@evil, \\evil, NUL)",
                         expected="a raw escaping path is refused before I/O; a parameter is "
                                  "percent-encoded as one segment: every request that leaves "
                                  "stays under the base path /v1/items/")
async def test_dot_segments_and_encoded_escapes(make: Callable[..., Api],
                                               server: LoopbackServer) -> None:
    api = make()
    for path in ("../admin", "/a/../../admin", "%2e%2e/admin", "/%2E%2E/admin", "./../admin"):
        with pytest.raises(UnsafeRequestError):
            await api.get(path)
    assert server.requests == []
    for value in ESCAPING_VALUES:
        try:
            await api.get("/items/{id}", path_params={"id": value})
        except UnsafeRequestError:
            continue  # refused before I/O is as good as encoded
        sent = server.requests[-1].path
        assert sent.startswith("/v1/items/"), (value, sent)
        segment = sent[len("/v1/items/"):]
        assert "/" not in segment and "?" not in segment and "#" not in segment, (value, sent)
        assert segment not in (".", ".."), (value, sent)
    assert all(r.path.startswith("/v1/items/") for r in server.requests)


@pytest.mark.reliability(area=AREA, fault="redirects: off by default; when on, a cross-origin "
                                          "302/307, a 307 POST to another origin, https -> http, "
                                          "a redirect loop",
                         expected="off: the 302 is a StatusError, the target gets nothing; on: "
                                  "credentials, cookies, API-key, Stripe-Account and "
                                  "Idempotency-Key headers stripped cross-origin; a body never "
                                  "replayed to another origin and a downgrade refused "
                                  "(ResponseError('redirect')); a loop ends as "
                                  "ResponseError('redirect')")
async def test_redirects_across_origins_and_to_http(
        make: Callable[..., Api], server: LoopbackServer, other: LoopbackServer,
        tls_server: LoopbackServer, ca_file: tuple[str, trustme.CA]) -> None:
    tls_server.clear()
    from egress import StatusError

    plain = make()
    server.script("/v1/r", Reply(302, headers={"Location": other.url + "/landing"}))
    with pytest.raises(StatusError):
        await plain.get("/r")
    assert other.requests == []

    sink = RecordingSink()
    headers = {"Cookie": "session=s3cr3t", "X-Api-Key": "key-s3cr3t", "Stripe-Account": "acct_1",
               "Proxy-Authorization": "Basic czNjcjN0"}
    api = make(auth=BearerAuth(Secret(TOKEN)), follow_redirects=True, headers=headers,
               max_redirects=5, sink=sink, pipeline=Pipeline(sink=sink))
    for status in (302, 307):
        server.script(f"/v1/r{status}", Reply(status, headers={
            "Location": f"{other.url}/landing-{status}"}))
        await api.get(f"/r{status}", idempotency_key=f"key-{status}")
        landed = other.hits(f"/landing-{status}")[0]
        for name in ("authorization", "cookie", "x-api-key", "stripe-account",
                     "proxy-authorization", "idempotency-key"):
            assert name not in landed.headers, (status, name)
    assert [e.cross_origin for e in sink.of(RedirectFollowed)] == [True, True]
    server.script("/v1/p", Reply(307, headers={"Location": other.url + "/post-landing"}))
    with pytest.raises(ResponseError, match="redirect"):
        await api.post("/p", json={"amount": 1}, idempotency_key="k-p")
    assert other.hits("/post-landing") == []
    server.route("/v1/loop", lambda request: Reply(302, headers={"Location": "/v1/loop"}))
    with pytest.raises(ResponseError) as caught:
        await api.get("/loop")
    assert caught.value.reason == "redirect"
    assert 1 <= len(server.hits("/v1/loop")) <= 6

    secure = make(base_url=tls_server.url, verify=ca_file[0], follow_redirects=True,
                  auth=BearerAuth(Secret(TOKEN)))
    tls_server.script("/down", Reply(302, headers={"Location": f"{server.url}/v1/plain"}))
    with pytest.raises(ResponseError, match="redirect"):
        await secure.get("/down")
    assert server.hits("/v1/plain") == []
    assert len(tls_server.hits("/down")) == 1


BAD_HEADER_VALUES = ("v\r\nX-Injected: 1", "v\nX-Injected: 1", "v\rX", "v\x00x", " s3cr3tLead",
                     "s3cr3tTrail ")


@pytest.mark.reliability(area=AREA, fault="CR, LF, NUL and edge whitespace in a header value, an "
                                          "idempotency key and a bearer token",
                         expected="UnsafeRequestError before any I/O (ConfigurationError for a "
                                  "token, when the auth is built), never retried, the message "
                                  "naming the header but never echoing the value")
async def test_cr_lf_nul_in_headers_are_refused_before_io(make: Callable[..., Api],
                                                         server: LoopbackServer) -> None:
    sink = RecordingSink()
    api = make(pipeline=Pipeline(Retry(on=retry_on(lambda exc, info: True), backoff=FAST),
                                 sink=sink))
    for value in BAD_HEADER_VALUES:
        with pytest.raises(UnsafeRequestError) as caught:
            await api.get("/x", headers={"X-Note": value})
        assert value.strip() not in str(caught.value) and "X-Injected" not in str(caught.value)
        with pytest.raises(UnsafeRequestError) as caught:
            await api.post("/x", json={}, idempotency_key=value)
        assert "X-Injected" not in str(caught.value)
        if value.startswith(" "):
            continue  # "Bearer  token": a space inside the header value is legal
        with pytest.raises(ConfigurationError) as built:
            BearerAuth(Secret(TOKEN + value))
        assert TOKEN not in str(built.value)
    assert server.requests == [] and sink.of(RetryScheduled) == []


@pytest.mark.reliability(area=AREA, fault="TLS to a self-signed certificate (not trusted), "
                                          "with a retry hook that says 'always retry'",
                         expected="TLSVerificationError(sent=False, permanent): fails closed, "
                                  "one attempt per call, no retry.scheduled, the server "
                                  "receives no request")
async def test_tls_to_a_self_signed_certificate_fails_closed(
        make: Callable[..., Api], self_signed_server: LoopbackServer) -> None:
    self_signed_server.clear()
    sink = RecordingSink(per_call=True)
    api = make(base_url=self_signed_server.url, auth=BearerAuth(Secret(TOKEN)),
               pipeline=Pipeline(Retry(on=retry_on(lambda exc, info: True), backoff=FAST,
                                       stop=attempts(5)), sink=sink))
    with pytest.raises(TLSVerificationError) as refused_get:
        await api.get("/ok")
    with pytest.raises(TLSVerificationError) as refused_post:
        await api.post("/pay", json={}, idempotency_key="k-tls")
    for caught in (refused_get, refused_post):
        assert caught.value.sent is False and caught.value.permanent is True
    assert len(sink.of(AttemptFailed)) == 2 and sink.of(RetryScheduled) == []
    assert self_signed_server.requests == []


PAN, CVC = "4242424242424242", "cvc=318"
PLANTED = (TOKEN, "whsec_plantedReliability", "key-planted-s3cr3t", PAN, CVC)


@pytest.mark.reliability(area=AREA, fault="planted secrets (bearer token, API key in the query, "
                                          "a custom key header, card number and CVC in the body, "
                                          "an upstream echoing them) through a 500, a timeout, a "
                                          "malformed answer and a success, with every sink at "
                                          "DEBUG",
                         expected="zero occurrences in log records (egress's and the backends', "
                                  "no redacting filter), str/repr/notes of every error, the "
                                  "client's and pipeline's repr, metric labels and span "
                                  "attributes")
async def test_planted_secrets_never_leave_their_destination(
        make: Callable[..., Api], server: LoopbackServer) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    sink = FanOutSink([LoggingSink(per_call=True), PrometheusSink(registry=registry),
                       OpenTelemetrySink(tracer_provider=provider)])
    pipeline = Pipeline(Retry(on=retry_on(None), backoff=FAST, stop=attempts(2)), sink=sink)
    echo = {"error": {"message": f"bad key {TOKEN} card {PAN} {CVC}",
                      "type": "card_error", "param": f"card[number]={PAN}"}}
    server.route("/v1/echo", lambda request: Reply(500, echo))
    server.route("/v1/hang", lambda request: Hang(2.0))
    server.route("/v1/mangled", lambda request: Reply(200, f'{{"card": "{PAN}",'.encode(),
                                                      headers={"Content-Type":
                                                               "application/json"}))
    api = make(auth=BearerAuth(Secret(TOKEN)), pipeline=pipeline, sink=sink,
               timeouts=Timeouts(total=0.3),
               headers={"X-Api-Key": Secret("key-planted-s3cr3t")})  # type: ignore[dict-item]
    query = {"api_key": "whsec_plantedReliability"}
    body = {"card": {"number": PAN, "cvc": CVC}}
    errors: list[BaseException] = []
    try:
        for path in ("/echo", "/hang", "/mangled", "/fine"):
            try:
                response = await api.post(path, json=body, params=query, idempotency_key="k-s")
                response.json()
            except EgressError as exc:
                errors.append(exc)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        provider.shutdown()
    assert len(errors) == 3  # the 500, the timeout, the malformed body
    texts = {
        "logs": stream.getvalue(),
        "errors": repr([(str(e), repr(e), getattr(e, "__notes__", None),
                         getattr(e, "body_excerpt", None), getattr(e, "url", None),
                         getattr(e, "request_info", None)) for e in errors]),
        "reprs": repr(api.client) + repr(pipeline),
        "metrics": generate_latest(registry).decode(),
        "spans": repr([(s.name, dict(s.attributes or {}), [dict(ev.attributes or {})
                                                          for ev in s.events])
                       for s in exporter.get_finished_spans()]),
    }
    assert "retry.scheduled" in texts["logs"] and exporter.get_finished_spans()
    for where, text in texts.items():
        for secret in PLANTED:
            assert secret not in text, (where, secret)
    assert len(server.hits("/v1/echo")) == 2  # the secrets did reach their destination
