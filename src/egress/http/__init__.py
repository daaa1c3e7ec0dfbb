"""The HTTP seam: ``ApiClient`` (async) and ``SyncApiClient`` (sync), safe by default.

One pooled client per upstream; every call prepared once (URL safety, header checks, body bytes,
idempotency key) and run through a pipeline (bulkhead, retry with budget, breaker per host) under a
deadline that reaches the wire; typed errors carrying the facts a retry decision needs; secrets
that never show. ``ResilientTransport`` brings a pipeline to your own ``httpx`` client.
See ``docs/http-client.md``.
"""

from __future__ import annotations

from egress._lazy import lazy_names

# Not ``from typing import TYPE_CHECKING``: see egress/__init__.py.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from egress.http._auth import (
        ApiKeyAuth,
        Auth,
        BasicAuth,
        BearerAuth,
        HmacSigner,
        OAuth2ClientCredentials,
        SignableRequest,
        SigningAuth,
    )
    from egress.http._headers import Headers
    from egress.http._hints import RateLimitInfo, parse_rate_limit, parse_retry_after, server_hint
    from egress.http._options import DEFAULT_DEADLINE
    from egress.http._response import Response
    from egress.http._safety import (
        TRANSIENT_STATUSES,
        RequestInfo,
        RetryHook,
        Safety,
        default_retryable,
        retry_on,
        safety_of,
    )
    from egress.http._timeouts import Timeouts
    from egress.http.client import (
        ASYNC_BACKENDS,
        DEFAULT_ASYNC_BACKEND,
        DEFAULT_SYNC_BACKEND,
        SYNC_BACKENDS,
        ApiClient,
        SyncApiClient,
    )
    from egress.http.transport import ResilientTransport

# Every name loads on first use (PEP 562), as in egress/__init__.py: ``import egress.http`` costs
# nothing, ``from egress.http import Headers`` loads headers only, and ApiClient brings asyncio
# and the request path. No backend library loads before a client opens its wire.
_LAZY = {
    "ApiClient": "egress.http.client",
    "ApiKeyAuth": "egress.http._auth",
    "ASYNC_BACKENDS": "egress.http.client",
    "Auth": "egress.http._auth",
    "BasicAuth": "egress.http._auth",
    "BearerAuth": "egress.http._auth",
    "DEFAULT_ASYNC_BACKEND": "egress.http.client",
    "DEFAULT_DEADLINE": "egress.http._options",
    "default_retryable": "egress.http._safety",
    "DEFAULT_SYNC_BACKEND": "egress.http.client",
    "Headers": "egress.http._headers",
    "HmacSigner": "egress.http._auth",
    "OAuth2ClientCredentials": "egress.http._auth",
    "parse_rate_limit": "egress.http._hints",
    "parse_retry_after": "egress.http._hints",
    "RateLimitInfo": "egress.http._hints",
    "RequestInfo": "egress.http._safety",
    "ResilientTransport": "egress.http.transport",
    "Response": "egress.http._response",
    "retry_on": "egress.http._safety",
    "RetryHook": "egress.http._safety",
    "Safety": "egress.http._safety",
    "safety_of": "egress.http._safety",
    "server_hint": "egress.http._hints",
    "SignableRequest": "egress.http._auth",
    "SigningAuth": "egress.http._auth",
    "SYNC_BACKENDS": "egress.http.client",
    "SyncApiClient": "egress.http.client",
    "Timeouts": "egress.http._timeouts",
    "TRANSIENT_STATUSES": "egress.http._safety",
}

__all__ = [
    "ASYNC_BACKENDS",
    "ApiClient",
    "ApiKeyAuth",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "DEFAULT_ASYNC_BACKEND",
    "DEFAULT_DEADLINE",
    "DEFAULT_SYNC_BACKEND",
    "Headers",
    "HmacSigner",
    "OAuth2ClientCredentials",
    "RateLimitInfo",
    "RequestInfo",
    "ResilientTransport",
    "Response",
    "RetryHook",
    "SYNC_BACKENDS",
    "Safety",
    "SignableRequest",
    "SigningAuth",
    "SyncApiClient",
    "TRANSIENT_STATUSES",
    "Timeouts",
    "default_retryable",
    "parse_rate_limit",
    "parse_retry_after",
    "retry_on",
    "safety_of",
    "server_hint",
]


_lazy_attribute, __dir__ = lazy_names(globals(), _LAZY)


def __getattr__(name: str) -> Any:
    if name == "ResilientTransport":  # for httpx users: first, so a missing httpx names the extra
        from importlib import import_module

        import_module("egress.http._httpx")
    return _lazy_attribute(name)
