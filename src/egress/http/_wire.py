"""The wire port: the one small interface every HTTP backend implements.

A backend sends one :class:`WireRequest` (method, absolute URL, headers, body bytes, the attempt's
limits) and returns a :class:`WireResponse` with the *whole* body read, decoded and capped inside
the attempt's time limits. It never follows redirects, never stores cookies, and translates its
library's exceptions into the egress tree in exactly one place (``_map_error`` in its module):

* nothing left this host (refused, DNS, pool wait, connect timeout) → ``TransportError(sent=False)``
  or ``AttemptTimeoutError(sent=False)``;
* anything later (reset, stale keep-alive, read timeout) → ``sent=True``;
* a body that stops early → ``ResponseError(reason="truncated")``; too big → ``"oversized"``.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from egress._clock import Clock
from egress.http._headers import Headers
from egress.http._timeouts import AttemptLimits

__all__ = ["AsyncWire", "SyncWire", "WireOptions", "WireRequest", "WireResponse"]


class WireRequest:
    """One HTTP request as it goes onto the wire."""

    __slots__ = ("body", "headers", "limits", "method", "url")

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                 limits: AttemptLimits) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.limits = limits

    def where(self) -> str:
        """``METHOD url`` without the query string: what a backend's error message names."""
        return f"{self.method} {self.url.split('?', 1)[0]}"

    def __repr__(self) -> str:  # never the headers: they hold credentials
        return f"WireRequest({self.where()})"


class WireResponse:
    """One HTTP response, body read in full and decoded."""

    __slots__ = ("content", "headers", "status")

    def __init__(self, status: int, headers: Headers, content: bytes) -> None:
        self.status = status
        self.headers = headers
        self.content = content


@dataclass(frozen=True, slots=True, kw_only=True)
class WireOptions:
    """What every backend is built with (by the client, from its validated settings)."""

    clock: Clock
    #: Gives the TLS context (verifying, unless verify=False was explicitly acknowledged); the
    #: default one is built when first asked for (see ``_tls``): read it when connecting.
    tls: Callable[[], ssl.SSLContext]
    trust_env: bool
    max_connections: int
    keepalive_expiry: float
    max_response_bytes: int

    @property
    def ssl_context(self) -> ssl.SSLContext:
        return self.tls()


class AsyncWire(Protocol):
    """An async backend."""

    async def send(self, request: WireRequest) -> WireResponse: ...

    async def aclose(self) -> None: ...


class SyncWire(Protocol):
    """A sync backend (thread-safe)."""

    def send(self, request: WireRequest) -> WireResponse: ...

    def close(self) -> None: ...
