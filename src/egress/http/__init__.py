"""The HTTP seam: ``ApiClient`` (async) and ``SyncApiClient`` (sync), safe by default.

One pooled client per upstream; every call prepared once (URL safety, header checks, body bytes,
idempotency key) and run through a pipeline (bulkhead, retry with budget, breaker per host) under a
deadline that reaches the wire; typed errors carrying the facts a retry decision needs; secrets
that never show. ``ResilientTransport`` brings a pipeline to your own ``httpx`` client.
See ``docs/http-client.md``.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from egress.http.transport import ResilientTransport

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


def __getattr__(name: str) -> Any:
    # ResilientTransport is for httpx users: importing it (and httpx) waits until it is asked for.
    if name == "ResilientTransport":
        import egress.http._httpx  # noqa: F401  (first: names the extra when httpx is missing)
        from egress.http.transport import ResilientTransport

        return ResilientTransport
    raise AttributeError(f"module 'egress.http' has no attribute {name!r}")
