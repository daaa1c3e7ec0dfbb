"""The settings of an HTTP client: one frozen object, validated once, shared by both clients.

``ApiClient`` and ``SyncApiClient`` take the same keyword arguments; each builds one
:class:`ClientOptions` from them, and everything below the client (the core, the default
pipeline, the wire backend) reads its settings from that object.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from egress._clock import SYSTEM_CLOCK, Clock
from egress.errors import ConfigurationError, EgressError
from egress.events import NULL_SINK, EventSink
from egress.http._auth import Auth
from egress.http._headers import check_header
from egress.http._response import REQUEST_ID_HEADERS
from egress.http._safety import RetryHook
from egress.http._timeouts import DEFAULT_TIMEOUTS, Timeouts

__all__ = ["ClientOptions", "DEFAULT_DEADLINE", "USER_AGENT", "expected_statuses"]

#: Seconds a call may take across all its attempts (``deadline=``).
DEFAULT_DEADLINE = 60.0
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_KEEPALIVE_EXPIRY = 30.0
DEFAULT_MAX_REDIRECTS = 5
DEFAULT_IDEMPOTENCY_HEADER = "Idempotency-Key"


class _DefaultUserAgent(str):
    """The default User-Agent: completed to ``egress/<version>`` when a client is built, so that
    importing the client does not load importlib.metadata (a tenth of its import time)."""

    __slots__ = ()


USER_AGENT: str = _DefaultUserAgent("egress")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientOptions:
    """Every setting of a client (see ``docs/http-client.md``), checked when built.

    Numbers are checked to be positive and finite, objects to be of the kind asked for
    (:class:`~egress.errors.ConfigurationError` names the setting otherwise); collections are
    frozen, so that the object is immutable and can be shared.
    """

    auth: Auth | None = None
    headers: Mapping[str, str] | None = None
    retry_hook: RetryHook | None = None
    rate_limiter: Any = None
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    deadline: float | None = DEFAULT_DEADLINE
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    follow_redirects: bool = False
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    verify: bool | str | ssl.SSLContext = True
    allow_insecure: bool = False
    trust_env: bool = False
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY
    auto_idempotency_key: bool | Iterable[str] = False
    idempotency_header: str = DEFAULT_IDEMPOTENCY_HEADER
    request_id_headers: tuple[str, ...] = REQUEST_ID_HEADERS
    user_agent: str | None = USER_AGENT
    expect: Collection[int] = ()
    clock: Clock = SYSTEM_CLOCK
    sink: EventSink = NULL_SINK

    def __post_init__(self) -> None:
        if self.auth is not None and not isinstance(self.auth, Auth):
            raise ConfigurationError("auth must be an egress.http auth object (BearerAuth, ...)")
        if not isinstance(self.timeouts, Timeouts):
            raise ConfigurationError("timeouts must be an egress.http.Timeouts")
        if self.retry_hook is not None and not callable(self.retry_hook):
            raise ConfigurationError("retry_hook must be callable")
        if self.rate_limiter is not None and not callable(
                getattr(self.rate_limiter, "cooldown", None)):
            raise ConfigurationError("rate_limiter must be a RateLimiter (it needs cooldown())")
        check_header(self.idempotency_header, "", ConfigurationError)
        user_agent = self.user_agent
        if isinstance(user_agent, _DefaultUserAgent):
            import egress

            user_agent = f"egress/{egress.__version__}"
        normal = {
            "deadline": None if self.deadline is None else float(
                _positive("deadline", self.deadline)),
            "max_response_bytes": int(_positive("max_response_bytes", self.max_response_bytes,
                                                integer=True)),
            "max_redirects": int(_positive("max_redirects", self.max_redirects, integer=True)),
            "max_connections": int(_positive("max_connections", self.max_connections,
                                             integer=True)),
            "keepalive_expiry": float(_positive("keepalive_expiry", self.keepalive_expiry)),
            "follow_redirects": bool(self.follow_redirects),
            "trust_env": bool(self.trust_env),
            "auto_idempotency_key": _auto_keys(self.auto_idempotency_key),
            "request_id_headers": tuple(h.lower() for h in self.request_id_headers),
            "expect": expected_statuses(self.expect, ConfigurationError),
            "user_agent": user_agent,
        }
        for name, value in normal.items():  # frozen: set once, here
            object.__setattr__(self, name, value)


def _positive(name: str, value: object, *, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            integer and not isinstance(value, int)):
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be positive and finite, got {value!r}")
    return value


def expected_statuses(statuses: Collection[int], error: type[EgressError]) -> frozenset[int]:
    """``expect=``: HTTP statuses (100-599) a caller treats as answers, not errors."""
    if isinstance(statuses, str | bytes) or not isinstance(statuses, Collection):
        raise error("expect must be a collection of HTTP statuses, e.g. {200, 304}")
    for status in statuses:
        if type(status) is not int or not 100 <= status <= 599:
            raise error(f"expect: {str(status)[:20]!r} is not an HTTP status (100-599)")
    return frozenset(statuses)


def _auto_keys(setting: object) -> bool | frozenset[str]:
    """``auto_idempotency_key``: ``True``/``False``, or the operations (``"POST /orders"``, the
    method and path template, or a call's ``operation=``) whose upstream honours keys."""
    if isinstance(setting, bool):
        return setting
    if isinstance(setting, str) or not isinstance(setting, Iterable):
        raise ConfigurationError("auto_idempotency_key must be True, False or a collection of "
                                 "operation names such as 'POST /orders'")
    routes = frozenset(setting)
    if not all(isinstance(r, str) for r in routes):
        raise ConfigurationError("auto_idempotency_key: operation names must be strings")
    return routes
