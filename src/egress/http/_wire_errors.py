"""The errors a backend raises for a failed attempt: one class, one ``sent`` and one wording per
fact, whichever HTTP library met it.

Each backend still decides *which* fact its library's exception means (that knowledge is the
library's own: aiohttp's, httpx's, reqwest's or ``http.client``'s exception tree); it builds the
error here, so that a refused certificate, a connect timeout or a cut body reads and retries the
same on every backend. ``where`` is the request's method and URL without its query
(``WireRequest.where()``); ``exc`` is the library's exception, named (never quoted: its text may
hold a header value).
"""

from __future__ import annotations

from egress.errors import (
    AttemptTimeoutError,
    ResponseError,
    TLSVerificationError,
    TransportError,
    UnsafeRequestError,
)

__all__ = [
    "certificate_refused",
    "connect_timed_out",
    "failed_after_connecting",
    "malformed",
    "not_connected",
    "pool_wait_timed_out",
    "refused_by_library",
    "timed_out",
    "truncated",
]


def _name(exc: BaseException) -> str:
    return type(exc).__name__


def certificate_refused(where: str) -> TLSVerificationError:
    """The server's certificate was refused: permanent, nothing sent."""
    return TLSVerificationError(f"{where}: the server's certificate was refused")


def not_connected(where: str, exc: BaseException) -> TransportError:
    """No connection was made: nothing sent."""
    return TransportError(f"{where}: could not connect ({_name(exc)})", sent=False)


def connect_timed_out(where: str, exc: BaseException) -> AttemptTimeoutError:
    """The connection (or a pooled one) was not ready in time: nothing sent."""
    return AttemptTimeoutError(f"{where}: connect timed out ({_name(exc)})", sent=False)


def pool_wait_timed_out(where: str) -> AttemptTimeoutError:
    """No free connection within the pool timeout: nothing sent."""
    return AttemptTimeoutError(f"{where}: no free connection within the pool timeout", sent=False)


def timed_out(where: str, exc: BaseException) -> AttemptTimeoutError:
    """A read, write or the attempt's total ran out after connecting: maybe processed."""
    return AttemptTimeoutError(f"{where}: timed out ({_name(exc)})", sent=True)


def refused_by_library(where: str, exc: BaseException) -> UnsafeRequestError:
    """The HTTP library refused the request as it is (a bad URL, a header it will not send)."""
    return UnsafeRequestError(f"{where}: request refused by the HTTP library ({_name(exc)})")


def truncated(where: str, exc: BaseException, what: str = "response body incomplete"
              ) -> ResponseError:
    """The response began but its body was cut short."""
    return ResponseError(f"{where}: {what} ({_name(exc)})", reason="truncated")


def malformed(where: str, exc: BaseException) -> ResponseError:
    """The server's answer could not be parsed as HTTP."""
    return ResponseError(f"{where}: malformed response ({_name(exc)})", reason="malformed")


def failed_after_connecting(where: str, exc: BaseException,
                            what: str = "connection failed after connecting") -> TransportError:
    """The connection failed once made: the request may have been processed."""
    return TransportError(f"{where}: {what} ({_name(exc)})", sent=True)
