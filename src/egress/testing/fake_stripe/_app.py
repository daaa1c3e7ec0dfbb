"""The HTTP side of the fake: an aiohttp application that acts out faults around the state.

One request on ``/v1/…`` goes through these layers, in this order (the order Stripe documents
for the decisions that matter: rate limiting before idempotency)::

    Request-Id -> auth (401) -> route (404) -> fault drawn for the route
      -> edge faults: status, 429, lock_timeout, 409, reset, idle-close, black hole
      -> rate limiter (429 rate_limit)  -> form parsing (400)
      -> idempotency layer: replay / 409 in use / 400 mismatch / start
           -> latency, stored 500, or the operation itself (the commit), commit-then-500
           -> answer saved for the key
      -> answer faults: commit-then-reset, black hole after commit, truncate, slow drip,
         malformed JSON
      -> webhooks for the events the operation emitted

``/_fake/…`` is the control surface (:mod:`._control`); it needs no key and is never faulted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from egress.testing.fake_stripe._control import Control
from egress.testing.fake_stripe._core import Core
from egress.testing.fake_stripe._errors import StripeApiError, invalid
from egress.testing.fake_stripe._faults import (
    Fault,
    FaultKind,
)
from egress.testing.fake_stripe._forms import DecodedForm, FormError, fingerprint, parse_pairs
from egress.testing.fake_stripe._idempotency import (
    MAX_KEY_LENGTH,
    InUse,
    Mismatch,
    Replay,
    StoredResponse,
)
from egress.testing.fake_stripe._state import API_VERSION, RequestIds, StripeState

__all__ = ["build_app"]

_POLL = 0.02
_KEY_PREFIXES = ("sk_test_", "rk_test_")


@dataclass(frozen=True, slots=True)
class _Route:
    name: str
    method: str
    pattern: re.Pattern[str]


_ROUTES = tuple(_Route(n, m, re.compile(p)) for n, m, p in (
    ("payment_intents.create", "POST", r"^/v1/payment_intents$"),
    ("payment_intents.list", "GET", r"^/v1/payment_intents$"),
    ("payment_intents.search", "GET", r"^/v1/payment_intents/search$"),
    ("payment_intents.retrieve", "GET", r"^/v1/payment_intents/(?P<id>[^/]+)$"),
    ("payment_intents.update", "POST", r"^/v1/payment_intents/(?P<id>[^/]+)$"),
    ("payment_intents.confirm", "POST", r"^/v1/payment_intents/(?P<id>[^/]+)/confirm$"),
    ("payment_intents.capture", "POST", r"^/v1/payment_intents/(?P<id>[^/]+)/capture$"),
    ("payment_intents.cancel", "POST", r"^/v1/payment_intents/(?P<id>[^/]+)/cancel$"),
    ("refunds.create", "POST", r"^/v1/refunds$"),
    ("refunds.list", "GET", r"^/v1/refunds$"),
    ("refunds.retrieve", "GET", r"^/v1/refunds/(?P<id>[^/]+)$"),
))


# ---------------------------------------------------------------------------------------------
# Small helpers


def _json_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, indent=2).encode()


def _retry_after_value(fault: Fault, wall: float) -> str | None:
    if fault.retry_after_raw is not None:
        return fault.retry_after_raw
    if fault.retry_after is None:
        return None
    if fault.retry_after_form == "http-date":
        return formatdate(wall + fault.retry_after, usegmt=True)
    return f"{fault.retry_after:g}"


def _cut(request: web.BaseRequest, *, reset: bool) -> None:
    """End the connection without an answer: a TCP reset, or an orderly close (FIN)."""
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


def _dropped() -> web.StreamResponse:
    """What a handler returns after cutting the connection (aiohttp ignores the write)."""
    return web.Response(status=204)


async def _hold(core: Core, request: web.BaseRequest, seconds: float) -> None:
    """Keep the connection open and silent until the client leaves, the server stops, or
    ``seconds`` pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not core.closing and loop.time() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(_POLL)


def _auth_error(header: str | None, api_keys: frozenset[str] | None) -> StripeApiError | None:
    if not header:
        return StripeApiError(
            401, "invalid_request_error",
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY').", saved=False)
    scheme, _, credentials = header.partition(" ")
    key: str | None = None
    if scheme.lower() == "bearer":
        key = credentials.strip()
    elif scheme.lower() == "basic":
        try:
            key = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            key = None
    if key is None:
        return StripeApiError(
            401, "invalid_request_error",
            "Invalid Authorization header: use Bearer auth with your secret key.", saved=False)
    accepted = key in api_keys if api_keys is not None else (
        key.startswith(_KEY_PREFIXES) and len(key) > len("sk_test_"))
    if not accepted:
        shown = key[-4:] if len(key) > 12 else ""
        masked = "*" * min(len(key), 24)
        return StripeApiError(401, "invalid_request_error",
                              f"Invalid API Key provided: {masked}{shown}", saved=False)
    return None


def _resolve(method: str, path: str) -> tuple[str, str | None] | None:
    for route in _ROUTES:
        if route.method != method:
            continue
        match = route.pattern.match(path)
        if match:
            return route.name, match.groupdict().get("id")
    return None


def _edge_error(fault: Fault, wall: float) -> StripeApiError:
    kind = fault.kind
    headers: dict[str, str] = {}
    if fault.should_retry is not None:
        headers["Stripe-Should-Retry"] = "true" if fault.should_retry else "false"
    retry_after = _retry_after_value(fault, wall)
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if kind is FaultKind.RATE_LIMITED:
        return StripeApiError(
            429, "invalid_request_error",
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.", code="rate_limit", saved=False,
            headers=headers)
    if kind is FaultKind.LOCK_TIMEOUT:
        return StripeApiError(
            fault.status, "invalid_request_error",
            "This object cannot be accessed right now because another API request or Stripe "
            "process is currently accessing it. If you see this error intermittently, retry "
            "the request.", code="lock_timeout", saved=False, headers=headers)
    if kind is FaultKind.KEY_IN_USE:
        return _key_in_use()
    type_ = "api_error" if fault.status >= 500 else "invalid_request_error"
    return StripeApiError(fault.status, type_,
                          f"An error occurred (injected HTTP {fault.status}).",
                          saved=False, headers=headers)


def _key_in_use() -> StripeApiError:
    return StripeApiError(
        409, "idempotency_error",
        "There is currently another in-progress request using this Idempotent Key (that "
        "probably means you submitted twice, and the other request is still going through): "
        "please retry this request after a few seconds.",
        code="idempotency_key_in_use", saved=False)


def _api_500() -> StripeApiError:
    return StripeApiError(500, "api_error",
                          "An unknown error occurred while processing your request.",
                          headers={"Stripe-Should-Retry": "false"})


# ---------------------------------------------------------------------------------------------
# The API handler


_Operation = Callable[[StripeState, str | None, DecodedForm, RequestIds], dict[str, Any]]

_OPERATIONS: dict[str, _Operation] = {
    "payment_intents.create": lambda s, _i, p, r: s.create_intent(p, r),
    "payment_intents.list": lambda s, _i, p, _r: s.list_intents(p),
    "payment_intents.search": lambda s, _i, p, _r: s.search_intents(p),
    "payment_intents.retrieve": lambda s, i, p, _r: s.retrieve_intent(i or "", p),
    "payment_intents.update": lambda s, i, p, r: s.update_intent(i or "", p, r),
    "payment_intents.confirm": lambda s, i, p, r: s.confirm_intent(i or "", p, r),
    "payment_intents.capture": lambda s, i, p, r: s.capture_intent(i or "", p, r),
    "payment_intents.cancel": lambda s, i, p, r: s.cancel_intent(i or "", p, r),
    "refunds.create": lambda s, _i, p, r: s.create_refund(p, r),
    "refunds.list": lambda s, _i, p, _r: s.list_refunds(p),
    "refunds.retrieve": lambda s, i, p, _r: s.retrieve_refund(i or "", p),
}


@dataclass(slots=True)
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str]


class _Api:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def handle(self, request: web.Request) -> web.StreamResponse:
        core = self.core
        request_id = core.request_id()
        headers = {"Request-Id": request_id,
                   "Stripe-Version": request.headers.get("Stripe-Version", API_VERSION),
                   "Cache-Control": "no-cache, no-store"}
        core.count("requests")
        auth = _auth_error(request.headers.get("Authorization"), core.api_keys)
        if auth is not None:  # counted once, by _error
            headers["WWW-Authenticate"] = 'Basic realm="Stripe"'
            return self._error(auth, request_id, headers)
        resolved = _resolve(request.method, request.path)
        if resolved is None:
            return self._error(StripeApiError(
                404, "invalid_request_error",
                f"Unrecognized request URL ({request.method}: {request.path[:200]}). Please "
                "see https://stripe.com/docs or we can help at https://support.stripe.com/.",
                saved=False), request_id, headers)
        route, ident = resolved
        core.count(f"route.{route}")
        fault = core.faults.draw(route, request.method)
        body = await request.read()
        if fault is not None:
            early = await self._edge_fault(fault, request, request_id, headers)
            if early is not None:
                return early
        if core.limiter is not None and core.limiter.take() is not None:
            core.count("rate_limited")
            return self._error(_edge_error(Fault.rate_limited(), core.wall()), request_id,
                               headers)
        raw = request.query_string if request.method == "GET" else body.decode("utf-8", "replace")
        try:
            params = parse_pairs(parse_qsl(raw, keep_blank_values=True))
        except FormError as exc:
            return self._error(invalid(str(exc), param=exc.param), request_id, headers)
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if key is not None:
            headers["Idempotency-Key"] = key
            if len(key) > MAX_KEY_LENGTH or not key:
                return self._error(invalid(
                    f"Keys for idempotent requests can only be {MAX_KEY_LENGTH} characters "
                    "long and must not be empty."), request_id, headers)
            decision = core.idempotency.begin(key, fingerprint(request.method, request.path,
                                                                params))
            if isinstance(decision, Replay):
                core.count("idempotent_replays")
                return await self._replay(decision.response, fault, request, headers)
            if isinstance(decision, InUse):
                core.count("idempotency_key_in_use")
                return self._error(_key_in_use(), request_id, headers)
            if isinstance(decision, Mismatch):
                core.count("idempotency_mismatch")
                return self._error(StripeApiError(
                    400, "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with. Try using a key other than "
                    f"'{key[:MAX_KEY_LENGTH]}' if you meant to execute a different request.",
                    saved=False), request_id, headers)
        answer = await self._execute(route, ident, params, fault=fault, key=key,
                                     request_id=request_id, headers=headers)
        return await self._send(answer, fault, request)

    async def _edge_fault(self, fault: Fault, request: web.Request, request_id: str,
                          headers: dict[str, str]) -> web.StreamResponse | None:
        kind = fault.kind
        if kind in (FaultKind.STATUS, FaultKind.RATE_LIMITED, FaultKind.LOCK_TIMEOUT,
                    FaultKind.KEY_IN_USE):
            return self._error(_edge_error(fault, self.core.wall()), request_id, headers)
        if kind in (FaultKind.RESET, FaultKind.IDLE_CLOSE):
            _cut(request, reset=kind is FaultKind.RESET)
            return _dropped()
        if kind is FaultKind.BLACK_HOLE and not fault.commit:
            await _hold(self.core, request, fault.seconds)
            _cut(request, reset=False)
            return _dropped()
        return None

    async def _execute(self, route: str, ident: str | None, params: DecodedForm, *,
                       fault: Fault | None, key: str | None, request_id: str,
                       headers: dict[str, str]) -> _Answer:
        core = self.core
        kind = fault.kind if fault is not None else None
        saved = True
        try:
            if fault is not None and kind is FaultKind.LATENCY:
                await asyncio.sleep(fault.seconds)
            try:
                if kind is FaultKind.STORED_500:
                    raise _api_500()
                result = _OPERATIONS[route](core.state, ident, params,
                                            RequestIds(request_id, key))
                status, body, extra = 200, result, {}
            except StripeApiError as refusal:
                saved = refusal.saved
                status, body, extra = refusal.status, refusal.body(request_id), refusal.headers
            if kind is FaultKind.COMMIT_THEN_500:
                failure = _api_500()
                status, body, extra = 500, failure.body(request_id), failure.headers
            answer = _Answer(status, _json_bytes(body), {**headers, **extra})
            if key is not None and saved:
                core.idempotency.complete(key, StoredResponse(
                    status, answer.body, tuple(extra.items()), request_id))
            core.count(f"status.{status}")
            return answer
        finally:
            if key is not None:
                core.idempotency.abandon(key)  # no-op once completed
            events = core.state.take_events()
            if core.webhooks is not None and events:
                core.webhooks.submit(events)

    async def _replay(self, stored: StoredResponse, fault: Fault | None, request: web.Request,
                      headers: dict[str, str]) -> web.StreamResponse:
        headers = {**headers, **dict(stored.headers), "Idempotent-Replayed": "true",
                   "Original-Request": stored.request_id}
        self.core.count(f"status.{stored.status}")
        if fault is not None and fault.kind is FaultKind.COMMIT_THEN_500:
            fault = None
        return await self._send(_Answer(stored.status, stored.body, headers), fault, request)

    async def _send(self, answer: _Answer, fault: Fault | None,
                    request: web.Request) -> web.StreamResponse:
        headers = {**answer.headers, "Content-Type": "application/json"}
        kind = fault.kind if fault is not None else None
        if fault is None or kind not in (FaultKind.COMMIT_THEN_RESET, FaultKind.BLACK_HOLE,
                                         FaultKind.TRUNCATE, FaultKind.SLOW_DRIP,
                                         FaultKind.MALFORMED_JSON):
            return web.Response(status=answer.status, body=answer.body, headers=headers)
        if kind is FaultKind.COMMIT_THEN_RESET:
            _cut(request, reset=True)
            return _dropped()
        if kind is FaultKind.BLACK_HOLE:
            await _hold(self.core, request, fault.seconds)
            _cut(request, reset=False)
            return _dropped()
        if kind is FaultKind.MALFORMED_JSON:
            half = answer.body[: max(1, len(answer.body) // 2)]
            return web.Response(status=answer.status, headers=headers,
                                body=half + b"\n<html><body>502 Bad Gateway</body></html>")
        response = web.StreamResponse(status=answer.status, headers=headers)
        response.content_length = len(answer.body)
        await response.prepare(request)
        if kind is FaultKind.TRUNCATE:
            await response.write(answer.body[: len(answer.body) // 2])
            _cut(request, reset=False)
            return response
        size = -(-len(answer.body) // fault.chunks)
        for start in range(0, len(answer.body), size):
            transport = request.transport
            if transport is None or transport.is_closing():
                return response
            await response.write(answer.body[start:start + size])
            await asyncio.sleep(fault.seconds)
        return response

    def _error(self, error: StripeApiError, request_id: str,
               headers: dict[str, str]) -> web.Response:
        self.core.count(f"status.{error.status}")
        return web.Response(status=error.status, body=_json_bytes(error.body(request_id)),
                            headers={**headers, **error.headers,
                                     "Content-Type": "application/json"})


def build_app(core: Core, *, reset: Callable[[], None]) -> web.Application:
    """The aiohttp application for ``core``; ``reset`` is what ``POST /_fake/reset`` calls."""
    app = web.Application(client_max_size=1024 * 1024)
    api = _Api(core)
    control = Control(core, reset)
    handlers: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
        ("GET", "/_fake/health", control.health),
        ("GET", "/_fake/faults", control.get_faults),
        ("POST", "/_fake/faults", control.post_faults),
        ("DELETE", "/_fake/faults", control.delete_faults),
        ("GET", "/_fake/ledger", control.ledger),
        ("GET", "/_fake/events", control.events),
        ("GET", "/_fake/stats", control.stats),
        ("POST", "/_fake/reset", control.reset),
        ("POST", "/_fake/payment_intents/{id}/complete_action", control.complete_action),
    ]
    for method, path, handler in handlers:
        app.router.add_route(method, path, handler)
    app.router.add_route("*", "/v1/{tail:.*}", api.handle)
    app.router.add_route("*", "/{tail:.*}", api.handle)
    return app
