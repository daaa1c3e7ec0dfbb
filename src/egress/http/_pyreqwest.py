"""The pyreqwest backend (async, optional): Rust's reqwest/hyper behind the wire port.

Chosen with ``ApiClient(..., backend="pyreqwest")``; needs the ``pyreqwest`` extra and is imported
only when chosen. reqwest is built here with everything egress does itself turned off: no
redirects, no cookies, no decompression (the raw body goes through egress's capped
:class:`~egress.http._body.BodyReader`), no Referer, and no proxies unless ``trust_env``.

Limits: reqwest takes one total timeout per request (no per-request connect or read timeout), so
the attempt's whole time left is passed as the request's timeout (reqwest applies it from connect
to the body's last byte). A watchdog backs it up: should reqwest ever miss it, the call is
cancelled within ``_BACKSTOP + _WATCH_EVERY`` of the limit and fails as a timeout. (One
``asyncio.timeout`` per request did the same with a timer per call and cost a fifth of the
throughput at concurrency 64; a tenth of a second is precise enough for a safety net.)
reqwest's ``max_connections`` is an in-flight cap; its pool timeout (the client's pool limit,
fixed at build) reports a wait for a slot as nothing sent. Trust comes from the client's
:class:`ssl.SSLContext`: its CA certificates are added as roots and ``CERT_NONE`` (an
acknowledged ``verify=False``) turns checks off; see docs/http-client.md for what differs.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import egress.http._wire_errors as failed
from egress.errors import ConfigurationError, EgressError, ResponseError, TLSVerificationError
from egress.http._body import BodyReader
from egress.http._headers import Headers
from egress.http._slots import Slots
from egress.http._timeouts import Timeouts
from egress.http._wire import WireOptions, WireRequest, WireResponse

if TYPE_CHECKING:
    from pyreqwest.client import Client
    from pyreqwest.http import HeaderMap, Url
    from pyreqwest.response import Response

__all__ = ["PyreqwestWire"]

_NO_BODY_STATUSES = frozenset({204, 304})
_URL_CACHE_LIMIT = 1024  # distinct URLs kept parsed (beyond it, parsed per call)
_BACKSTOP = 0.05  # seconds the watchdog waits for reqwest's own timeout to fire first
_WATCH_EVERY = 0.1  # seconds between the watchdog's looks, while any request is in flight
_SLACK = 0.001  # seconds by which the client's default timeout may exceed an attempt's time left
# reqwest's words for a refused certificate (rustls through the platform verifier)
_CERT_WORDS = ("certificate", "UnknownIssuer", "NotValidForName", "Expired")
# reqwest's platform verifier (rustls-native-certs on Linux) reads these whatever it is told
_TRUST_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")


def _causes(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    causes = details.get("causes") if isinstance(details, dict) else None
    return " ".join(str(c.get("message", "")) for c in causes or () if isinstance(c, dict))


def _environment_additions(values: tuple[str | None, ...]) -> list[str]:
    """Which of ``SSL_CERT_FILE``/``SSL_CERT_DIR`` (``values``) name something other than the
    platform's compiled-in store (what egress trusts with ``trust_env=False``)."""
    paths = ssl.get_default_verify_paths()
    compiled = (paths.openssl_cafile, paths.openssl_capath)
    return [name for name, value, default in zip(_TRUST_VARIABLES, values, compiled, strict=True)
            if value and os.path.realpath(value) != os.path.realpath(default or "")]


def _map_error(exc: Exception, where: str, answered: bool) -> EgressError:
    """Every pyreqwest failure, translated once (``answered``: the status line had arrived).

    pyreqwest names the phase badly (a reset after the request was written is a
    ``ConnectError``; its per-request timeout is a ``ConnectTimeoutError`` at any stage), so
    ``sent=False`` is claimed only when reqwest's own cause chain says ``client error
    (Connect)``: everything else may have reached the server. A ``ValueError`` means the
    library refused the request only until the server has answered: after that it is the
    answer that could not be read.
    """
    from pyreqwest import exceptions as px

    if isinstance(exc, EgressError):
        return exc
    if answered and isinstance(exc, ValueError | px.BuilderError):
        return failed.malformed(where, exc)
    causes = _causes(exc)
    connecting = "client error (Connect)" in causes
    if isinstance(exc, px.PoolTimeoutError) or (connecting and isinstance(exc, TimeoutError)):
        return failed.connect_timed_out(where, exc)
    if connecting and any(word in causes for word in _CERT_WORDS):
        return failed.certificate_refused(where)
    if connecting and isinstance(exc, px.ConnectError):
        return failed.not_connected(where, exc)
    if isinstance(exc, TimeoutError):  # reqwest's total, or the backstop
        return failed.timed_out(where, exc)
    if isinstance(exc, px.BuilderError | ValueError):
        return failed.refused_by_library(where, exc)
    if isinstance(exc, px.DecodeError) and not isinstance(exc, px.BodyDecodeError):
        # hyper refused the answer's head (status line, a header line, Content-Length, a head
        # too large): the server answered, badly. Reported as "truncated" before, which it is
        # not (the other backends: malformed). A body that stops early is a BodyDecodeError.
        return failed.malformed(where, exc)
    if isinstance(exc, px.DecodeError | px.ReadError):
        return failed.truncated(where, exc)
    return failed.failed_after_connecting(where, exc)


class _Fields:
    """reqwest's header map as a ``HeaderSource``: ``Headers`` asks it for one name at a time
    (copying every pair out costs more than the rest of the backend's own work per call).

    reqwest gives a value only as ``str``, and only when it is visible ASCII: a name with a
    value beyond that (obs-text, e.g. a Latin-1 or UTF-8 byte, which the other backends decode
    as Latin-1) reads as absent, every value of it; the answer itself stands."""

    __slots__ = ("_map",)

    def __init__(self, fields: HeaderMap) -> None:
        self._map = fields

    def values(self, name: str) -> list[str]:
        try:
            return self._map.getall(name)
        except ValueError:
            return []

    def pairs(self) -> list[tuple[str, str]]:
        fields = self._map
        try:
            return list(fields.items())
        except ValueError:
            pairs: list[tuple[str, str]] = []
            for name in dict.fromkeys(fields.keys()):  # (one name per value: each once)
                pairs.extend((name, value) for value in self.values(name))
            return pairs

    def __repr__(self) -> str:  # never the values: they may hold session cookies
        return "_Fields()"


def _require() -> None:
    try:
        import pyreqwest.client  # noqa: F401
    except ImportError:
        raise ConfigurationError("backend='pyreqwest' needs the pyreqwest package: "
                                 "pip install 'egress[pyreqwest]'") from None


def _client(options: WireOptions, connect: float, total: float) -> Client:
    from pyreqwest.client import ClientBuilder

    builder = (
        ClientBuilder()
        .follow_redirects(False)
        .default_cookie_store(False)
        .gzip(False).brotli(False).zstd(False).deflate(False)
        .referer(False)
        .connect_timeout(timedelta(seconds=connect))
        .timeout(timedelta(seconds=total))
        .pool_max_idle_per_host(options.max_connections)
        .pool_idle_timeout(timedelta(seconds=options.keepalive_expiry))
    )
    if not options.trust_env:
        builder = builder.no_proxy()
    context = options.ssl_context
    if context.verify_mode == ssl.CERT_NONE:
        builder = builder.danger_accept_invalid_certs(True)
    else:
        for der in context.get_ca_certs(binary_form=True):
            builder = builder.add_root_certificate_der(der)
    return builder.build()


class PyreqwestWire:
    """The pyreqwest backend: one reqwest ``Client`` (and its pool) for the client's life."""

    name = "pyreqwest"

    def __init__(self, options: WireOptions) -> None:
        _require()  # fails at construction, not at the first call, if pyreqwest is missing
        from pyreqwest.http import HeaderMap

        self._options = options
        self._client: Client | None = None
        self._built_for: Timeouts | None = None  # the Timeouts the client was built with
        self._built_total = 0.0
        self._cap = options.max_response_bytes
        self._now = options.clock.now
        # reqwest has no per-request pool timeout: the wait for a slot happens here, where it
        # is known to send nothing.
        self._slots = Slots(options.max_connections)
        self._checked_env: tuple[str | None, ...] = (None, None)
        self._env_adds: list[str] = []
        # The watchdog: each request in flight, by its task, with the loop time past which it is
        # cancelled; the tasks it cancelled; its next look (None when nothing is in flight).
        self._due: dict[asyncio.Task[Any], float] = {}
        self._overdue: set[asyncio.Task[Any]] = set()
        self._watch: asyncio.TimerHandle | None = None
        # Parsed once, not on every call (reqwest parses a str URL each time: about half the
        # cost of starting a request): URLs, up to a bound, and a header dict sent twice in a
        # row (the client's defaults: the same dict on every call without headers of its own).
        # reqwest copies the map it is given, so a map built for one call only would cost a
        # second copy: a dict seen once is passed as it is.
        self._urls: dict[str, Url] = {}
        self._last_headers: dict[str, str] | None = None
        self._last_map = HeaderMap()
        self._seen_headers: dict[str, str] | None = None

    def _url(self, url: str) -> Url:
        from pyreqwest.http import Url

        parsed = Url(url)
        if len(self._urls) < _URL_CACHE_LIMIT:
            self._urls[url] = parsed
        return parsed

    def _header_map(self, headers: dict[str, str]) -> HeaderMap | dict[str, str]:
        if headers is not self._seen_headers:
            self._seen_headers = headers
            return headers
        from pyreqwest.http import HeaderMap

        self._last_map = fields = HeaderMap(headers)
        self._last_headers = headers
        return fields

    def _open(self, request: WireRequest) -> Client:
        # reqwest's connect timeout is per client: the client's own Timeouts.connect (seen on
        # the first request). Only it makes a connect failure say "(Connect)", i.e. not sent.
        # Its total becomes the client's default timeout, which a request sets for itself only
        # when it has less time left.
        timeouts = request.limits.timeouts
        self._client = _client(self._options, timeouts.connect, timeouts.total)
        self._built_for, self._built_total = timeouts, timeouts.total
        return self._client

    def _refuse_environment_trust(self, request: WireRequest) -> None:
        """With ``trust_env=False`` the environment must not change trust, but reqwest cannot be
        told to ignore ``SSL_CERT_FILE``/``SSL_CERT_DIR``: refuse, before anything is sent,
        when they name anything but the platform's compiled-in store (trusted anyway)."""
        if self._options.trust_env or not request.url.startswith("https:"):
            return
        values = tuple(os.environ.get(name) for name in _TRUST_VARIABLES)
        if values != self._checked_env:  # real paths resolved once per setting, not per call
            self._env_adds = _environment_additions(values)
            self._checked_env = values
        if self._env_adds:
            raise TLSVerificationError(
                f"{request.where()}: {' and '.join(self._env_adds)} point beyond the platform's "
                f"trust store, and the pyreqwest backend cannot ignore them with trust_env=False;"
                f" nothing was sent (unset them, pass trust_env=True, or use another backend)")

    async def send(self, request: WireRequest) -> WireResponse:
        # One frame for the whole exchange (every resumption of a reqwest future passes through
        # each frame above it, three times per request).
        self._refuse_environment_trust(request)
        client = self._client or self._open(request)
        slots = self._slots
        if not slots.try_take():
            try:
                await slots.take(request.limits.at(self._now())[3])
            except TimeoutError:
                raise failed.pool_wait_timed_out(request.where()) from None
        limits = request.limits
        total = limits.at(self._now())[4]
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is not None:
            self._due[task] = loop.time() + total + _BACKSTOP
            if self._watch is None:
                self._watch = loop.call_later(_WATCH_EVERY, self._look, loop)
        error: EgressError | None = None
        answered = False
        try:
            sent = request.headers
            builder = client.request(
                request.method, self._urls.get(request.url) or self._url(request.url),
            ).headers(self._last_map if sent is self._last_headers else self._header_map(sent))
            if limits.timeouts is not self._built_for or total < self._built_total - _SLACK:
                builder = builder.timeout(timedelta(seconds=max(total, 0.001)))
            # (else the client's own timeout, its Timeouts.total, is this attempt's time left
            # to within _SLACK: a fresh attempt with no nearer deadline, the common case)
            if request.body is not None:
                builder = builder.body_bytes(request.body)
            async with builder.build_streamed() as response:
                answered = True
                status = response.status
                headers = Headers.from_source(_Fields(response.headers))
                content = b""
                if request.method != "HEAD" and status not in _NO_BODY_STATUSES:
                    length = response.get_header("content-length")  # (hyper checked: digits)
                    declared = int(length) if length and length.isdigit() else None
                    try:
                        coding = response.get_header("content-encoding")
                    except ValueError:  # not visible ASCII: no coding egress can undo
                        raise ResponseError(f"{request.where()}: response has an unsupported "
                                            "content coding",
                                            reason="encoding") from None
                    if declared is not None and declared <= self._cap and not coding:
                        # hyper frames the body by its Content-Length (it cannot run past it,
                        # and a short one fails as a read error): read in one call
                        content = bytes(await response.body_reader.bytes())
                    else:
                        content = await self._body(response, coding, declared)
        except asyncio.CancelledError:
            if task is None or task not in self._overdue:
                raise  # the caller's cancellation, not the watchdog's
            self._overdue.discard(task)
            task.uncancel()
            error = failed.timed_out(request.where(), TimeoutError())
        except Exception as exc:
            error = _map_error(exc, request.where(), answered)
            if error is exc:
                raise
        finally:
            slots.give()
            if task is not None:
                self._due.pop(task, None)
                if task in self._overdue:  # cancelled by the watchdog as it was finishing
                    self._overdue.discard(task)
                    task.uncancel()
        if error is not None:
            # never chained: pyreqwest's messages may quote the request (URL, header values)
            raise error from None
        return WireResponse(status, headers, content)

    async def _body(self, response: Response, coding: str | None,
                    declared: int | None) -> bytes:
        """A body read chunk by chunk under the cap, decoded as it comes."""
        reader = BodyReader(self._cap, coding, declared)
        body = response.body_reader
        while (chunk := await body.read_chunk()) is not None:
            reader.feed(bytes(chunk))
        return reader.finish()

    def _look(self, loop: asyncio.AbstractEventLoop) -> None:
        """The watchdog: cancels every request past its limit and the backstop (reqwest's own
        timeout should have ended it), then looks again while any is in flight."""
        now = loop.time()
        for task, due in self._due.items():
            if due <= now and task not in self._overdue:
                self._overdue.add(task)
                task.cancel()
        self._watch = loop.call_later(_WATCH_EVERY, self._look, loop) if self._due else None

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def __repr__(self) -> str:
        return f"PyreqwestWire(open={self._client is not None})"
