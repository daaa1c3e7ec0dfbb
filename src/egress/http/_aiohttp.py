"""The aiohttp backend (async): one ``ClientSession`` and connection pool for the client's life.

aiohttp keeps its speed under concurrency (see ``bench/http_client.py``), which is why it is the
default.
Its ``ClientTimeout.total`` covers the whole exchange, body included, so a dripping server is
stopped at the attempt's limit. aiohttp has no write timeout: ``total`` bounds a stalled upload.

The fast path. ``ClientSession.request`` spends about 60k CPU instructions per call (more than
the rest of egress costs) on what egress never uses: the cookie jar, redirects, auth and netrc,
environment proxies, middlewares, traces, its retry-on-reconnect loop, the headers merge and the
URL rebuild. On the aiohttp versions whose internals were read and tested
(``_FAST_VERSIONS``), and when the environment is not trusted (``trust_env=False``, the default:
the environment's proxies and netrc need ``ClientSession``), a request goes one level below, as
``ClientSession._request`` itself does for one request: a ``ClientRequest``, the connector's
``connect``, ``set_response_params``, ``send`` and ``start``, under a ``TimerContext`` that the
attempt's total fires, exactly as ``ClientSession`` wires it. Otherwise (another aiohttp, a
changed signature, ``trust_env=True``) the public ``session.request`` path is used; both paths are
run by the aiohttp tests.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest, ClientResponse
from aiohttp.connector import Connection
from aiohttp.helpers import TimerContext
from aiohttp.http_exceptions import BadStatusLine
from multidict import CIMultiDict
from yarl import URL

import egress.http._wire_errors as failed
from egress._redacted import drop_frames
from egress.errors import EgressError
from egress.http._body import BodyReader
from egress.http._headers import Headers
from egress.http._slots import Slots
from egress.http._timeouts import Timeouts
from egress.http._wire import WireOptions, WireRequest, WireResponse

__all__ = ["AiohttpWire"]

_URL_CACHE_LIMIT = 1024
_NO_BODY_STATUSES = frozenset({204, 304})
_BACKSTOP = 0.05  # seconds the total waits for aiohttp's connect and read timers to fire first
_NO_TRACES: list[Any] = []  # the connector only iterates it
# aiohttp warns (ResourceWarning) when given a bytes body larger than this; where warnings are
# errors (test suites, -W error) the warning came out of the send before any I/O and was
# reported as "unexpected failure", sent=True. Larger bodies go as a BytesIO (no copy: it shares
# the bytes until written to), which aiohttp writes chunk by chunk without that warning.
_LARGE_BODY = 1024 * 1024


#: aiohttp labels a body without a Content-Type "application/octet-stream"; no other backend
#: does, so a ``content=`` body goes out as the caller labelled it (or not), as everywhere else.
_SKIP_AUTO = ("Content-Type",)


def _data(body: bytes | None) -> bytes | io.BytesIO | None:
    return io.BytesIO(body) if body is not None and len(body) > _LARGE_BODY else body


def _skip(request: WireRequest) -> tuple[str, ...] | None:
    # Only for a body egress did not label: a skip list costs aiohttp a multidict and a copy
    # of the headers on every request (about 11 k instructions per GET).
    if request.body is None or "Content-Type" in request.headers:
        return None
    return _SKIP_AUTO

# The aiohttp releases whose ClientSession._request was read and on which the aiohttp tests pass
# on both paths (3.13.4, 3.13.5 and the locked 3.14.5 were run): [first, last).
_FAST_VERSIONS = ((3, 13, 4), (3, 15))
# The parameters the fast path passes, by what it calls: a release that renamed one is refused.
_FAST_SIGNATURES: dict[str, tuple[Callable[..., Any], set[str]]] = {
    "ClientRequest.__init__": (ClientRequest.__init__,
                               {"method", "url", "headers", "data", "loop", "response_class",
                                "timer", "session"}),
    "ResponseHandler.set_response_params": (
        ResponseHandler.set_response_params,
        {"timer", "skip_payload", "read_until_eof", "auto_decompress", "read_timeout"}),
    "BaseConnector.connect": (aiohttp.BaseConnector.connect, {"req", "traces", "timeout"}),
    "ClientRequest.send": (ClientRequest.send, {"conn"}),
    "ClientResponse.start": (ClientResponse.start, {"connection"}),
    "TimerContext.__init__": (TimerContext.__init__, {"loop"}),
}
# Tests set this to False to run the public ``session.request`` path (both are tested).
_fast_path_allowed = True
_fast_path_checked: bool | None = None


def fast_path_supported() -> bool:
    """Whether this aiohttp is one the fast path was verified on (checked once per process)."""
    global _fast_path_checked
    if _fast_path_checked is None:
        _fast_path_checked = _check_fast_path()
    return _fast_path_checked and _fast_path_allowed


def _check_fast_path() -> bool:
    import inspect  # only here: not on the import path of every program using egress

    try:
        version = tuple(int(part) for part in aiohttp.__version__.split(".")[:3])
        if not _FAST_VERSIONS[0] <= version < _FAST_VERSIONS[1]:
            return False
        for function, names in _FAST_SIGNATURES.values():
            if not names <= inspect.signature(function).parameters.keys():
                return False
        return callable(getattr(TimerContext, "timeout", None)) and hasattr(
            aiohttp, "ConnectionTimeoutError")
    except (ValueError, TypeError):  # an unusual version string or an unreadable signature
        return False


def _map_error(exc: BaseException, request: WireRequest, reading: bool) -> EgressError:
    """Which fact each aiohttp failure means, built by ``_wire_errors`` as on every backend.
    ``reading``: the headers had arrived."""
    if isinstance(exc, EgressError):
        return exc
    where = request.where()
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return failed.certificate_refused(where)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return failed.not_connected(where, exc)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return failed.connect_timed_out(where, exc)
    if isinstance(exc, TimeoutError):  # sock_read timeout or the total limit
        return failed.timed_out(where, exc)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return failed.truncated(where, exc)
    if isinstance(exc, aiohttp.ClientResponseError):
        # Its request_info holds our request headers (credentials): never chain it.
        return failed.malformed(where, exc)
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return failed.refused_by_library(where, exc)
    if isinstance(exc, aiohttp.ClientError | OSError):
        if reading:
            return failed.truncated(where, exc, "connection lost while reading the body")
        return failed.failed_after_connecting(where, exc, "connection failed after sending")
    return failed.failed_after_connecting(where, exc, "unexpected failure")


def _chainable(exc: BaseException) -> BaseException | None:
    """``exc`` if it may be kept as ``__cause__``: only network failures, never an exception
    that can quote the request (its headers hold credentials)."""
    if isinstance(exc, aiohttp.ClientResponseError | ValueError):
        return None
    if not isinstance(exc, OSError | TimeoutError | aiohttp.ClientConnectionError
                      | aiohttp.ClientPayloadError):
        return None
    return exc


def _timeout(connect: float, read: float, total: float) -> aiohttp.ClientTimeout:
    """aiohttp timers cost time on every request: only those that can fire before ``total``.

    The wait for a pooled connection is bounded by ``Timeouts.pool`` before aiohttp is called.
    """
    # ``total`` is a backstop just after the end, so that the connect and read timers (capped at
    # the end) fire first and say whether anything was sent; it stops only what they cannot.
    return aiohttp.ClientTimeout(total=total + _BACKSTOP, sock_connect=min(connect, total),
                                 sock_read=read if read < total else None)


class AiohttpWire:
    """The aiohttp backend. Build inside or outside a loop; the session opens on first use."""

    name = "aiohttp"

    def __init__(self, options: WireOptions) -> None:
        self._options = options
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self._cap = options.max_response_bytes
        self._now = options.clock.now
        # The ClientTimeout of the client's Timeouts when the deadline does not cap it (usual).
        self._timeouts_for: Timeouts | None = None
        self._timeout = aiohttp.ClientTimeout()
        self._last_headers: dict[str, str] | None = None
        self._last_multidict: CIMultiDict[str] = CIMultiDict()
        # aiohttp has no pool timeout of its own: the wait for a connection happens here, where
        # it is known to send nothing (its connector, with the same limit, never waits).
        self._slots = Slots(options.max_connections)
        # Set when the session opens: the fast path's loop and connector (None: the public path).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connector: aiohttp.BaseConnector | None = None

    def _open(self) -> aiohttp.ClientSession:
        options = self._options
        connector = aiohttp.TCPConnector(
            limit=options.max_connections,
            limit_per_host=0,
            keepalive_timeout=options.keepalive_expiry,
            ssl=options.ssl_context,  # read here, not in __init__: built on first use (_tls)
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=options.trust_env,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None),
            raise_for_status=False,
            requote_redirect_url=False,
        )
        # aiohttp resends GET/HEAD/OPTIONS/PUT/DELETE once, unseen, after a connection error:
        # one egress attempt must be one request on the wire (the budget, the breaker, the
        # events and ``sent`` count attempts). No public switch; aiohttp's own test client
        # turns it off the same way.
        self._session._retry_connection = False
        if not options.trust_env and fast_path_supported():
            self._loop, self._connector = asyncio.get_running_loop(), connector
        else:
            self._loop = self._connector = None
        return self._session

    def _url(self, url: str) -> URL:
        cached = self._urls.get(url)
        if cached is None:
            cached = URL(url, encoded=True)
            if len(self._urls) < _URL_CACHE_LIMIT:
                self._urls[url] = cached
        return cached

    def _multidict(self, headers: dict[str, str]) -> Any:
        if headers is self._last_headers:
            return self._last_multidict  # the client's default headers: converted once
        self._last_headers = headers
        multidict = self._last_multidict = CIMultiDict(headers)
        return multidict

    async def send(self, request: WireRequest) -> WireResponse:
        # One coroutine frame for the whole exchange: each extra layer costs on every call and
        # on every resumption (bench/http_client.py).
        session = self._session or self._open()
        limits = request.limits
        slots = self._slots
        if slots.try_take():  # the usual case: a connection is free, taken without awaiting
            left = None
        else:
            try:
                await slots.take(limits.at(self._now())[3])
            except TimeoutError:
                raise failed.pool_wait_timed_out(request.where()) from None
            left = limits.at(self._now())
        backstop: asyncio.TimerHandle | None = None
        try:
            if left is not None or limits.by_deadline:
                connect, read, _write, _pool, total = left or limits.at(self._now())
                timeout = _timeout(connect, read, total)
            elif limits.timeouts is self._timeouts_for:
                timeout = self._timeout
            else:
                t = self._timeouts_for = limits.timeouts
                timeout = self._timeout = _timeout(t.connect, t.read, t.total)
            error: EgressError | None = None
            cause: BaseException | None = None
            connector = self._connector
            if connector is not None:  # the fast path (module docstring)
                loop = self._loop
                assert loop is not None
                timer = TimerContext(loop)
                # The attempt's total, as ClientSession wires it: it cancels whatever runs
                # under ``timer`` (connect, send and the headers here, each body read in
                # aiohttp's stream), and TimerContext turns that into a TimeoutError.
                backstop = loop.call_at(loop.time() + timeout.total,  # type: ignore[operator]
                                        timer.timeout)  # (_timeout always sets a total)
                req: ClientRequest | None = None
                conn: Connection | None = None
                resp: ClientResponse | None = None
                try:
                    # URL and headers live in the ClientRequest only; it, the connection and
                    # the response are unbound before this frame raises (their reprs hold the
                    # URL; the public path passes them inline for the same reason).
                    req = ClientRequest(
                        request.method, self._urls.get(request.url) or self._url(request.url),
                        headers=self._multidict(request.headers), data=_data(request.body),
                        skip_auto_headers=_skip(request), loop=loop, response_class=ClientResponse,
                        timer=timer, session=session)
                    with timer:
                        try:
                            conn = await connector.connect(req, traces=_NO_TRACES,
                                                           timeout=timeout)
                        except TimeoutError as exc:
                            # what ClientSession raises: nothing was sent
                            raise aiohttp.ConnectionTimeoutError() from exc
                        protocol = conn.protocol
                        assert protocol is not None
                        protocol.set_response_params(
                            timer=timer, skip_payload=request.method == "HEAD",
                            read_until_eof=True, auto_decompress=False,
                            read_timeout=timeout.sock_read)
                        try:
                            resp = await req.send(conn)
                            try:
                                await resp.start(conn)
                            except BaseException:
                                resp.close()
                                raise
                        except BaseException:
                            conn.close()  # never back to the pool: it may hold half a reply
                            raise
                    # (ClientSession would now close the request's payload: for bytes that does
                    # nothing; a large body's BytesIO is in memory, freed with the request.)
                    response = resp
                except Exception as exc:
                    if conn is None and isinstance(exc, TimeoutError):
                        # No connection yet, so nothing was sent, whichever timer fired: on a
                        # loop running late the total can fire just after the connect timer.
                        error = failed.connect_timed_out(request.where(), exc)
                    else:
                        error = _map_error(exc, request, reading=False)
                    cause = _chainable(exc)
                finally:
                    req = conn = protocol = resp = None
            else:
                try:
                    # URL and headers are passed inline, never held in locals: a traceback
                    # rendered with its locals would print yarl's URL (query) and the multidict
                    # (credentials).
                    response = await session.request(
                        request.method, self._urls.get(request.url) or self._url(request.url),
                        headers=self._multidict(request.headers),
                        data=_data(request.body), skip_auto_headers=_skip(request),
                        timeout=timeout, allow_redirects=False,
                        auto_decompress=False,
                    )
                except Exception as exc:
                    error, cause = _map_error(exc, request, reading=False), _chainable(exc)
            if error is not None:
                drop_frames(cause)  # the library's frames hold the raw request in locals
                raise error from cause  # outside the handler: no hidden __context__ either
            try:
                status = response.status
                if status < 100:
                    # llhttp reads any three digits ("099"); no such status exists, and h11,
                    # hyper and http.client refuse the answer as malformed: so does egress.
                    raise failed.malformed(request.where(), BadStatusLine(""))
                length = response.content_length
                if request.method == "HEAD" or status in _NO_BODY_STATUSES:
                    content = b""
                elif (length is not None and length <= self._cap
                      and "Content-Encoding" not in response.headers):
                    content = await response.read()  # aiohttp reads exactly the declared length
                else:
                    reader = BodyReader(self._cap, response.headers.get("Content-Encoding"),
                                        length)
                    stream = response.content
                    while True:
                        chunk = await stream.readany()
                        if not chunk:
                            break
                        reader.feed(chunk)
                    content = reader.finish()
                raw_headers = response.raw_headers
            except asyncio.CancelledError:
                response.close()
                del response
                raise
            except Exception as exc:
                response.close()  # never return a half-read connection to the pool
                del response  # its repr prints the URL with its query and the response headers
                error = _map_error(exc, request, reading=True)
                if error is exc:
                    raise
                cause = _chainable(exc)
            if error is not None:
                drop_frames(cause)
                raise error from cause
            response.release()
            return WireResponse(status, Headers.from_raw(raw_headers), content)
        finally:
            if backstop is not None:
                backstop.cancel()
            slots.give()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        self._loop = self._connector = None  # the next send opens a new session
        if session is not None:
            await session.close()
            # Closing its connections schedules each transport's last callback on the loop; one
            # turn lets them run, so a loop closed right after this (asyncio.run's end, a test's
            # teardown) leaves no transport half-closed, to warn as unclosed when collected.
            await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"AiohttpWire(open={self._session is not None})"
