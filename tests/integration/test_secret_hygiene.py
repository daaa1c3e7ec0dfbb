"""Issue 9 §6 and issue 10 §6: planted secrets never leak, whatever the call does.

Secrets are planted everywhere a caller or a server can put them (an ``sk_live_`` Stripe key,
bearer and Basic credentials, an API-key header, ``?api_key=``, a webhook secret, an OAuth2
client secret and its access token, a card number and CVC, an email a server echoes) and sent
through succeeding and failing calls on every backend, with every logger at DEBUG. Then every log
record (egress's, httpx's, httpcore's, aiohttp's), every exception's str/repr/notes/facts, every
traceback rendered with its locals (stdlib ``capture_locals`` and rich's ``show_locals``), every
event and the reprs of what the caller holds are searched: zero hits.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from _loopback import LoopbackServer, Recorded, Reply, Reset
from rich.traceback import Traceback

from _sync_faces import async_port, close, stripe
from egress import Pipeline, Secret
from egress.adapters.stripe import verify_webhook
from egress.adapters.stripe.webhooks import sign_payload
from egress.errors import EgressError
from egress.http import (
    ApiClient,
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentials,
    SyncApiClient,
)
from egress.payments import Money, PaymentRequest
from egress.testing import RecordingSink
from egress.testing.fake_stripe import FakeStripe

STRIPE_KEY = "sk_live_PLANTEDstripe51HxQ"
BEARER = "PLANTEDbearer8823tok"
API_KEY = "PLANTEDapikey7781hdr"
CUSTOM_KEY = "PLANTEDcustomKey5512"
QUERY_KEY = "PLANTEDquery4419key"
WEBHOOK_SECRET = "whsec_PLANTEDhook662"
BASIC_PASSWORD = "PLANTEDbasic0937pw"
CLIENT_SECRET = "PLANTEDclient0912sec"
ACCESS_TOKEN = "PLANTEDaccess3341tok"
CARD = "4000056655665556"
CVC = "9731"
EMAIL = "planted.person@example.org"
PHONE = "+15551234567"

PLAIN = [STRIPE_KEY, BEARER, API_KEY, CUSTOM_KEY, QUERY_KEY, WEBHOOK_SECRET, BASIC_PASSWORD,
         CLIENT_SECRET, ACCESS_TOKEN, CARD, EMAIL, PHONE,
         base64.b64encode(f"user:{BASIC_PASSWORD}".encode()).decode(),
         base64.b64encode(f"client:{CLIENT_SECRET}".encode()).decode()]
# Short values are searched with digit boundaries (a port or a timestamp may contain the digits).
PATTERNS = [re.compile(rf"(?<![0-9]){CVC}(?![0-9])")]


def hits(text: str) -> list[str]:
    found = [s for s in PLAIN if s in text]
    found += [p.pattern for p in PATTERNS if p.search(text)]
    return found


class Evidence:
    """Everything a leak could end up in."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.logs: list[str] = []

    def add(self, where: str, text: object) -> None:
        self.texts.append((where, str(text)))

    def exception(self, where: str, exc: BaseException) -> None:
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            self.add(f"{where} str", str(current))
            self.add(f"{where} repr", repr(current))
            self.add(f"{where} notes", getattr(current, "__notes__", ""))
            for name in ("body_excerpt", "headers", "param", "url", "request_info"):
                self.add(f"{where} .{name}", repr(getattr(current, name, None)))
            current = current.__cause__ or current.__context__
        stdlib = traceback.TracebackException.from_exception(exc, capture_locals=True)
        self.add(f"{where} traceback(capture_locals)", "".join(stdlib.format()))
        # rich's show_locals draws exactly these nodes (Traceback.extract); rendering them
        # directly skips the slow syntax highlighting of the source lines.
        trace = Traceback.extract(type(exc), exc, exc.__traceback__, show_locals=True)
        lines = [f"{stack.exc_type}: {stack.exc_value}" for stack in trace.stacks]
        lines += [f"{name} = {node.render(max_width=400)}"
                  for stack in trace.stacks for frame in stack.frames
                  for name, node in (frame.locals or {}).items()]
        self.add(f"{where} rich(show_locals)", "\n".join(lines))

    def assert_clean(self) -> None:
        """Zero hits in everything gathered, log records included."""
        leaks = self.leaks()
        assert not leaks, "\n".join(leaks)

    def leaks(self) -> list[str]:
        found = []
        for where, text in [*self.texts, *(("log", line) for line in self.logs)]:
            for secret in hits(text):
                at = text.find(secret) if secret in text else 0
                found.append(f"{where}: {secret} in ...{text[max(0, at - 300):at + 60]!r}")
        return found


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.lines.append(repr(record.args))


@pytest.fixture
def evidence() -> Iterator[Evidence]:
    handler = Records()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    names = ("egress", "httpx", "httpcore", "aiohttp", "asyncio", "urllib3", "pyreqwest")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    found = Evidence()
    found.logs = handler.lines
    try:
        yield found
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def echo(request: Recorded) -> Reply:
    """A 400 that echoes everything the caller sent (as some servers do), plus PII."""
    doc = {"error": {"type": "invalid_request_error", "code": "parameter_invalid",
                     "message": f"bad value for {EMAIL} / {PHONE} in {request.body[:300]!r}",
                     "param": f"card[number]={CARD}", "headers": request.headers,
                     "path": request.path}}
    echoed = {f"X-Echo-{k}": v for k, v in request.headers.items() if k != "content-length"}
    return Reply(400, doc, headers={**echoed, "Request-Id": "req_1", "Location": request.path})


def token(request: Recorded) -> Reply:
    return Reply(200, {"access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 60})


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    loop = LoopbackServer().start()
    loop.route("/v1/fail", echo)
    loop.route("/token", token)
    loop.route("/v1/reset", lambda r: Reset())
    loop.route("/v1/hop", lambda r: Reply(307, b"", headers={"Location": "/v1/fail?hop=1"}))
    try:
        yield loop
    finally:
        loop.stop()


AUTHS: dict[str, Any] = {
    "bearer": lambda url: BearerAuth(Secret(BEARER)),
    "apikey": lambda url: ApiKeyAuth(Secret(API_KEY), header="X-Api-Key"),
    "basic": lambda url: BasicAuth("user", Secret(BASIC_PASSWORD)),
    "oauth2": lambda url: OAuth2ClientCredentials(f"{url}/token", client_id="client",
                                                  client_secret=Secret(CLIENT_SECRET)),
    "oauth2-form": lambda url: OAuth2ClientCredentials(
        f"{url}/token", client_id="client", client_secret=Secret(CLIENT_SECRET),
        send_as="form"),
}
CALL_ARGS: dict[str, Any] = {
    "params": {"api_key": Secret(QUERY_KEY), "page": "2"},
    "headers": {"X-Custom-Key": Secret(CUSTOM_KEY)},
}
BODIES: list[dict[str, Any]] = [
    {"form": {"card[number]": Secret(CARD), "card[cvc]": Secret(CVC)}},
    {"json": {"card": {"number": Secret(CARD), "cvc": Secret(CVC)}}},
]


def calls() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path in ("/v1/ok", "/v1/fail", "/v1/reset", "/v1/hop"):
        out.append(("GET", path, dict(CALL_ARGS)))
        for body in BODIES:
            out.append(("POST", path, {**CALL_ARGS, **body, "idempotency_key": "k1"}))
    return out


@pytest.mark.parametrize("auth", list(AUTHS))
@pytest.mark.parametrize("backend", ["aiohttp", "httpx", "pyreqwest"])
async def test_async_clients_leak_nothing(server: LoopbackServer, evidence: Evidence,
                                          backend: str, auth: str) -> None:
    sink = RecordingSink()
    async with ApiClient(f"{server.url}/v1", backend=backend, auth=AUTHS[auth](server.url),
                         headers={"X-Static-Key": Secret(CUSTOM_KEY)}, sink=sink,
                         pipeline=Pipeline(), follow_redirects=True) as client:
        evidence.add("client repr", repr(client))
        for method, path, kw in calls():
            try:
                response = await client.request(method, path.removeprefix("/v1"), **kw)
                evidence.add("response repr", repr(response))
            except EgressError as exc:
                evidence.exception(f"{backend} {auth} {method} {path}", exc)
    for event in sink.events:
        evidence.add("event", repr(event))
    if backend == "httpx":  # its own INFO and DEBUG records were searched too
        assert any(line.startswith("httpx INFO HTTP Request") for line in evidence.logs)
        assert any(line.startswith("httpcore.http11 DEBUG receive_response_headers")
                   for line in evidence.logs)
    evidence.assert_clean()


@pytest.mark.parametrize("auth", list(AUTHS))
@pytest.mark.parametrize("backend", ["stdlib", "httpx"])
def test_sync_clients_leak_nothing(server: LoopbackServer, evidence: Evidence,
                                   backend: str, auth: str) -> None:
    sink = RecordingSink()
    with SyncApiClient(f"{server.url}/v1", backend=backend, auth=AUTHS[auth](server.url),
                       headers={"X-Static-Key": Secret(CUSTOM_KEY)}, sink=sink,
                       pipeline=Pipeline(), follow_redirects=True) as client:
        evidence.add("client repr", repr(client))
        for method, path, kw in calls():
            try:
                response = client.request(method, path.removeprefix("/v1"), **kw)
                evidence.add("response repr", repr(response))
            except EgressError as exc:
                evidence.exception(f"{backend} {auth} {method} {path}", exc)
    for event in sink.events:
        evidence.add("event", repr(event))
    evidence.assert_clean()


@pytest.mark.parametrize(("face", "backend"), [("async", "aiohttp"), ("async", "httpx"),
                                             ("sync", "stdlib")])
async def test_stripe_and_webhooks_leak_nothing(evidence: Evidence, face: str,
                                                backend: str) -> None:
    sink = RecordingSink()
    async with FakeStripe(seed=0, api_keys=[STRIPE_KEY]) as fake:
        payments = stripe(face, Secret(STRIPE_KEY), base_url=fake.url, sink=sink,
                          backend=backend, pipeline=Pipeline())
        evidence.add("payments repr", repr(payments))
        for reference, method in (("ok", "pm_card_visa"),
                                  ("declined", "pm_card_chargeDeclined"),
                                  ("bad", "pm_does_not_exist")):
            request = PaymentRequest(amount=Money("10.00", "USD"), reference=reference,
                                     payment_method=method)
            evidence.add("request repr", repr(request))
            try:
                evidence.add("payment repr", repr(await async_port(payments).create(request)))
            except EgressError as exc:
                evidence.exception(f"stripe {reference}", exc)
        await close(payments)
        unreachable = stripe(face, Secret(STRIPE_KEY), base_url="http://127.0.0.1:9",
                             backend=backend, pipeline=Pipeline())
        try:
            await async_port(unreachable).get("pi_1")
        except EgressError as exc:
            evidence.exception("stripe unreachable", exc)
        await close(unreachable)
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "x", "created": 10**20,
                          "data": {"object": {}}}).encode()
    for header in (sign_payload(payload, WEBHOOK_SECRET, 1700000000), "t=1700000000,v1=00",
                   "garbage"):
        try:
            verify_webhook(payload, header, Secret(WEBHOOK_SECRET), now=1700000000)
        except EgressError as exc:
            evidence.exception(f"webhook {header[:10]}", exc)
        try:
            verify_webhook(payload, header, [Secret("whsec_old"), Secret(WEBHOOK_SECRET)],
                           now=1700000000)
        except EgressError as exc:
            evidence.exception(f"webhook rolled {header[:10]}", exc)
    for event in sink.events:
        evidence.add("event", repr(event))
    evidence.assert_clean()


def test_a_card_number_typed_into_a_payment_request_does_not_leak(evidence: Evidence) -> None:
    for field in ("payment_method", "customer"):
        try:
            PaymentRequest(amount=Money("10.00", "USD"), reference="r",
                           **{"payment_method": "pm_card_visa", field: CARD})
        except EgressError as exc:
            # The caller's frame and PaymentRequest.__init__'s (which checks in place) hold the
            # caller's own arguments: no code can clear them. Every frame of egress's validation
            # below __init__ is searched (its checks return findings, so none is left), with
            # the error itself.
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code is not PaymentRequest.__init__.__code__:
                tb = tb.tb_next
            assert tb is not None
            evidence.exception(f"PaymentRequest {field}", exc.with_traceback(tb.tb_next))
        else:
            raise AssertionError("card data accepted")
    evidence.assert_clean()
