"""The part of ApiClient and SyncApiClient that decides: settings, request preparation, the
exchange of one attempt (auth, signing, redirects, a 401 refresh), status handling and error facts.

It does no I/O. One attempt is a generator that *yields* what it needs (a :class:`WireRequest` to
send, or :class:`NeedAuth` for fresh auth headers) and *returns* the :class:`Response`; the async
and sync clients only pump it, which is how both worlds make the same decisions.
"""

from __future__ import annotations

import logging
import math
import os
import ssl
import sys
from collections.abc import Collection, Generator, Iterable, Mapping
from typing import Any

from egress._clock import Clock
from egress._pipeline import CallContext, Pipeline
from egress._redacted import RedactedHeaders, RevealedStr, reveal
from egress._secret import Secret
from egress.errors import (
    AttemptTimeoutError,
    ConfigurationError,
    DeadlineExceededError,
    EgressError,
    ResponseError,
    StatusError,
    UnsafeRequestError,
    UpstreamError,
)
from egress.events import DeadlineExceeded, EventSink, InsecureTransport, RedirectFollowed
from egress.http._auth import Auth, SignableRequest
from egress.http._body import _UNSET, encode_body
from egress.http._codecs import ACCEPT_ENCODING
from egress.http._error_facts import error_excerpt, scrub_headers, secrets_in
from egress.http._headers import (
    SENSITIVE_REQUEST_HEADERS,
    Headers,
    check_header,
    sanitize_response_headers,
)
from egress.http._hints import server_hint
from egress.http._redirect import REDIRECT_STATUSES, next_hop
from egress.http._response import Response
from egress.http._safety import RequestInfo, RetryHook, safety_of
from egress.http._timeouts import AttemptLimits, Timeouts
from egress.http._url import BaseURL, Params
from egress.http._wire import WireOptions, WireRequest, WireResponse

__all__ = ["ClientCore", "NeedAuth", "PreparedCall"]

DEFAULT_DEADLINE = 60.0
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_KEEPALIVE_EXPIRY = 30.0
DEFAULT_MAX_REDIRECTS = 5
DEFAULT_IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255
_KEYED_METHODS = frozenset({"POST", "PATCH"})
_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
_NAME_CACHE_LIMIT = 1024
_LOG = logging.getLogger("egress.http")


def _new_key() -> str:
    raw = os.urandom(16).hex()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


class NeedAuth:
    """Yielded by an attempt: fresh auth headers, ``stale`` being a token the server refused."""

    __slots__ = ("stale",)

    def __init__(self, stale: str | None) -> None:
        self.stale = stale


class PreparedCall:
    """One logical call, prepared once: every attempt sends these exact bytes."""

    __slots__ = ("_info", "body", "expect", "headers", "key", "method", "op", "operation",
                 "plain_url", "secrets", "url")

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                 *, key: str | None, operation: str, secrets: tuple[str, ...] = ()) -> None:
        self.method = method
        self.url = url
        #: The URL without its query string: what errors, events and responses show.
        self.plain_url = url.split("?", 1)[0] if "?" in url else url
        self.headers = headers
        self.body = body
        self.key = key
        self.operation = operation
        #: Non-2xx statuses this call returns as a Response instead of raising StatusError.
        self.expect: frozenset[int] = frozenset()
        #: The call's own secrets (``Secret`` values in params, form, json, headers): an error
        #: answer echoing one of them never shows it.
        self.secrets = secrets
        self._info: RequestInfo | None = None
        #: The client's attempt bound to this call, kept when the call is cached (plain GETs).
        self.op: Any = None

    @property
    def info(self) -> RequestInfo:
        """Built only when someone needs it (an error, a hook): most calls never do."""
        info = self._info
        if info is None:
            info = self._info = RequestInfo(self.method, self.plain_url, self.operation,
                                            safety_of(self.method, self.key), self.key)
        return info

    def __repr__(self) -> str:
        return f"PreparedCall({self.operation!r})"


def _verifying_context(cafile: str | None, trust_env: bool) -> ssl.SSLContext:
    """A certificate- and hostname-checking context (TLS 1.2 at least).

    ``ssl.create_default_context`` lets the environment decide: ``SSL_CERT_FILE``/``SSL_CERT_DIR``
    replace the trust store and ``SSLKEYLOGFILE`` writes session keys to a file. Without
    ``trust_env`` only the caller's CA file, or the platform's compiled-in store, is trusted.
    """
    if trust_env:
        return ssl.create_default_context(cafile=cafile)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname on
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cafile is not None:
        context.load_verify_locations(cafile=cafile)
    elif sys.platform == "win32":  # the system store; OpenSSL's env paths are not used there
        context.load_default_certs()
    else:
        paths = ssl.get_default_verify_paths()  # openssl_*: compiled-in, not the environment
        if paths.openssl_cafile and os.path.isfile(paths.openssl_cafile):
            context.load_verify_locations(cafile=paths.openssl_cafile)
        if paths.openssl_capath and os.path.isdir(paths.openssl_capath):
            context.load_verify_locations(capath=paths.openssl_capath)
    return context


def _ssl_context(verify: bool | str | ssl.SSLContext, allow_insecure: bool,
                 trust_env: bool) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is True:
        return _verifying_context(None, trust_env)
    if isinstance(verify, str):
        try:
            return _verifying_context(verify, trust_env)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"verify: cannot load the CA file ({type(exc).__name__})"
                                     ) from None
    if verify is False:
        if not allow_insecure:
            raise ConfigurationError(
                "verify=False turns off certificate checks (anyone on the path can read and change "
                "the traffic); pass allow_insecure=True as well to confirm"
            )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    raise ConfigurationError("verify must be True, False, a CA file path or an ssl.SSLContext")


def _positive(name: str, value: object, *, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            integer and not isinstance(value, int)):
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be positive and finite, got {value!r}")
    return value


class ClientCore:
    """Validated settings plus the pure request/response logic, shared by both clients."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None,
        headers: Mapping[str, str] | None,
        retry_hook: RetryHook | None,
        rate_limiter: Any,
        timeouts: Timeouts,
        deadline: float | None,
        max_response_bytes: int,
        follow_redirects: bool,
        max_redirects: int,
        verify: bool | str | ssl.SSLContext,
        allow_insecure: bool,
        trust_env: bool,
        max_connections: int,
        keepalive_expiry: float,
        auto_idempotency_key: bool | Iterable[str],
        idempotency_header: str,
        request_id_headers: tuple[str, ...],
        user_agent: str | None,
        clock: Clock,
        sink: EventSink,
        expect: Collection[int] = (),
    ) -> None:
        self.base = BaseURL(base_url)
        self.expect = expected_statuses(expect, ConfigurationError)
        if auth is not None and not isinstance(auth, Auth):
            raise ConfigurationError("auth must be an egress.http auth object (BearerAuth, ...)")
        if not isinstance(timeouts, Timeouts):
            raise ConfigurationError("timeouts must be an egress.http.Timeouts")
        if retry_hook is not None and not callable(retry_hook):
            raise ConfigurationError("retry_hook must be callable")
        if rate_limiter is not None and not callable(getattr(rate_limiter, "cooldown", None)):
            raise ConfigurationError("rate_limiter must be a RateLimiter (it needs cooldown())")
        self.deadline = None if deadline is None else float(_positive("deadline", deadline))
        self.max_response_bytes = int(_positive("max_response_bytes", max_response_bytes,
                                                integer=True))
        self.max_redirects = int(_positive("max_redirects", max_redirects, integer=True))
        _positive("max_connections", max_connections, integer=True)
        _positive("keepalive_expiry", keepalive_expiry)
        check_header(idempotency_header, "", ConfigurationError)
        self.auth = auth
        self.retry_hook = retry_hook
        self.rate_limiter = rate_limiter
        self.timeouts = timeouts
        self.follow_redirects = bool(follow_redirects)
        self.auto_idempotency_key = _auto_keys(auto_idempotency_key)
        self.idempotency_header = idempotency_header
        self._idem_lower = idempotency_header.lower()
        self._operations: dict[tuple[str, str], str] = {}
        self._prepared: dict[tuple[str, str], PreparedCall] = {}
        self.request_id_headers = tuple(h.lower() for h in request_id_headers)
        self.clock = clock
        self.sink = sink
        self.trust_env = bool(trust_env)

        # Every request's headers live in a dict whose repr shows names only (egress._redacted).
        defaults: dict[str, str] = RedactedHeaders({"Accept-Encoding": ACCEPT_ENCODING})
        if user_agent:
            defaults["User-Agent"] = user_agent
        static_secrets: list[str] = []
        for name, given in (headers or {}).items():
            value: str = reveal(given)
            check_header(name, value, ConfigurationError)
            if isinstance(value, RevealedStr) or _credential_name(name):
                static_secrets.append(value)
            _put(defaults, name, value)
        self._static_secrets = tuple(static_secrets)
        self.dynamic_auth = False
        self.signs = False
        sensitive = set(SENSITIVE_REQUEST_HEADERS) | {self._idem_lower}
        if auth is not None:
            for name, value in (auth.static_headers or {}).items():
                check_header(name, value, ConfigurationError)
                _put(defaults, name, value)
            self.dynamic_auth = auth.static_headers is None and (
                type(auth).headers_async is not Auth.headers_async)
            self.signs = auth.signs
            sensitive |= auth.header_names
        self.sensitive = frozenset(sensitive)
        self.default_headers = defaults
        self._default_lower = {k.lower() for k in defaults}

        context = _ssl_context(verify, allow_insecure, bool(trust_env))
        if verify is False:
            self.sink.emit(InsecureTransport(operation=self.base.origin, at=clock.now()))
            _LOG.warning("egress.http: certificate verification is OFF for %s "
                         "(verify=False, allow_insecure=True)", self.base.origin)
        self.wire_options = WireOptions(
            clock=clock, ssl_context=context, trust_env=self.trust_env,
            max_connections=max_connections, keepalive_expiry=float(keepalive_expiry),
            max_response_bytes=self.max_response_bytes,
        )
        self.base_origin = (self.base.scheme, self.base.host, self.base.port)

    # -- preparing a call (before any I/O) -------------------------------------------------

    def prepare(self, method: str, path: str, *, params: Params | None, json: Any,
                form: Params | None, content: bytes | None, headers: Mapping[str, str] | None,
                path_params: Mapping[str, object] | None, idempotency_key: str | None,
                operation: str | None, expect: Collection[int] | None = None) -> PreparedCall:
        plain = (not params and json is _UNSET and form is None and content is None
                 and not headers and not path_params and idempotency_key is None
                 and operation is None and expect is None)
        if plain:
            # The same GET twice is the same call: prepared once, kept (bounded).
            cached = self._prepared.get((method, path))
            if cached is not None:
                return cached
        if method not in _METHODS:
            method = _check_method(method)
        url = self.base.url(path, path_params, params)
        found: list[str] = []  # Secret values met in json=
        if json is _UNSET and form is None and content is None:
            body, content_type = None, None
        else:
            body, content_type = encode_body(json, form, content, found)
        merged = self.default_headers
        if (headers or content_type is not None or idempotency_key is not None
                or method in _KEYED_METHODS):
            merged = RedactedHeaders(merged)
            if content_type is not None:
                merged["Content-Type"] = content_type
            if headers:
                for name, given in headers.items():
                    value = reveal(given)  # a str, or a Secret's value (masked repr)
                    check_header(name, value)
                    if name.lower() == self._idem_lower:
                        if idempotency_key is None:
                            idempotency_key = value
                        continue
                    _put(merged, name, value)
        if operation is None:
            names = self._operations
            operation = names.get((method, path))
            if operation is None:
                operation = f"{method} {path}"
                if len(names) < _NAME_CACHE_LIMIT:
                    names[(method, path)] = operation
        key = idempotency_key
        auto = self.auto_idempotency_key
        if key is None and method in _KEYED_METHODS and (
                auto is True or (auto and operation in auto)):
            # Only where the caller declared that the upstream honours keys: a key the server
            # ignores would make a retried POST look safe when it is not.
            key = _new_key()
        if key is not None:
            if not isinstance(key, str) or not key or len(key) > MAX_IDEMPOTENCY_KEY:
                raise UnsafeRequestError(f"idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} "
                                         f"characters")
            check_header(self.idempotency_header, key)
            merged[self.idempotency_header] = key
        secrets: tuple[str, ...] = ()
        if not plain:
            secrets = tuple(secrets_in(params, form))
            secrets += tuple(found)
            if headers:
                secrets += tuple(v.reveal() if isinstance(v, Secret) else v
                                 for k, v in headers.items()
                                 if isinstance(v, Secret) or _credential_name(k))
        call = PreparedCall(method, url, merged, body, key=key, operation=operation,
                            secrets=secrets)
        call.expect = (self.expect if expect is None
                       else self.expect | expected_statuses(expect, UnsafeRequestError))
        if plain and key is None and len(self._prepared) < _NAME_CACHE_LIMIT:
            self._prepared[(method, path)] = call
        return call

    # -- one attempt --------------------------------------------------------------------------

    def limits(self, ctx: CallContext | None) -> AttemptLimits:
        return self.timeouts.limits(self.clock.now(), None if ctx is None else ctx.deadline)

    def first_request(self, call: PreparedCall, limits: AttemptLimits) -> WireRequest | None:
        """The request to send first when nothing must be computed per attempt (no OAuth2, no
        signing): the drivers send it and call :meth:`exchange` only for a non-2xx answer."""
        if self.dynamic_auth or self.signs:
            return None
        return WireRequest(call.method, call.url, call.headers, call.body, limits)

    def success(self, method: str, plain_url: str, answer: WireResponse) -> Response | None:
        """The :class:`Response` for a 2xx answer, else ``None``."""
        status = answer.status
        if 200 <= status < 300:
            return Response(status, answer.headers, answer.content, method=method,
                            url=plain_url, request_id_headers=self.request_id_headers)
        return None

    def exchange(self, call: PreparedCall, limits: AttemptLimits,
                 first: WireResponse | None = None,
                 ) -> Generator[WireRequest | NeedAuth, Any, Response]:
        """One attempt: yields what to send (or NeedAuth), receives the answers.

        ``first`` is the answer to :meth:`first_request`, when the driver already sent it.
        """
        method, url, headers, body = call.method, call.url, call.headers, call.body
        auth = self.auth
        same_origin = True
        refreshed = False
        stale: str | None = None
        hops = 0
        while True:
            sent_headers = headers
            token: str | None = None
            if same_origin and auth is not None and (self.dynamic_auth or self.signs):
                sent_headers = RedactedHeaders(headers)
                if self.dynamic_auth:
                    extra: Mapping[str, str] = yield NeedAuth(stale)
                    for name, value in extra.items():
                        check_header(name, value)
                        _put(sent_headers, name, value)
                        if name.lower() == "authorization":
                            token = value
                if self.signs:
                    signable = SignableRequest(method, url, sent_headers, body or b"")
                    for name, value in auth.sign(signable).items():
                        check_header(name, value)
                        _put(sent_headers, name, value)
            answer: WireResponse
            if first is not None:
                answer, first = first, None
            else:
                answer = yield WireRequest(method, url, sent_headers, body, limits)
            response = self.success(method, url.split("?", 1)[0], answer)
            if response is not None:
                return response
            status = answer.status
            if (status == 401 and not refreshed and same_origin and auth is not None
                    and auth.refreshable and token is not None):
                refreshed = True
                stale = RevealedStr(token.removeprefix("Bearer "))
                continue
            location = answer.headers.get("location") if status in REDIRECT_STATUSES else None
            if self.follow_redirects and location:
                hops += 1
                if hops > self.max_redirects:
                    raise ResponseError(f"{call.operation}: more than {self.max_redirects} "
                                        f"redirects", reason="redirect")
                method, url, headers, body, same = next_hop(
                    method, url, headers=headers, body=body, status=status, location=location,
                    base_origin=self.base_origin, sensitive=self.sensitive,
                    key_header=self._idem_lower)
                self.sink.emit(RedirectFollowed(operation=call.operation,
                                                at=self.clock.now(), status=status,
                                                cross_origin=not same))
                same_origin = same_origin and same
                continue
            if status in call.expect:  # normal for this call: a Response, never a failure
                return Response(status, answer.headers, answer.content, method=method,
                                url=url.split("?", 1)[0],
                                request_id_headers=self.request_id_headers)
            raise self.status_error(method, url, answer, call.secrets)

    def status_error(self, method: str, url: str, answer: WireResponse,
                     secrets: tuple[str, ...] = ()) -> StatusError:
        headers: Headers = answer.headers
        known = (*self.secret_values(), *secrets)
        plain_url = url.split("?", 1)[0]
        response = Response(answer.status, headers, answer.content, method=method, url=plain_url,
                            request_id_headers=self.request_id_headers)
        return StatusError(
            answer.status, method=method, url=plain_url, request_id=response.request_id,
            retry_after=server_hint(answer.status, headers, self.clock.wall()),
            body_excerpt=error_excerpt(answer.content, headers.get("content-type"), known),
            headers=scrub_headers(sanitize_response_headers(headers), known), response=response,
        )

    def secret_values(self) -> tuple[str, ...]:
        """The client's own secrets: its auth's and those of its ``headers=``."""
        own = self.auth.secret_values() if self.auth is not None else ()
        return (*own, *self._static_secrets)

    def failed(self, exc: EgressError, call: PreparedCall, limits: AttemptLimits,
               ctx: CallContext | None) -> EgressError:
        """Attach the facts to an attempt's error; a timeout at the deadline becomes one."""
        if isinstance(exc, UpstreamError):
            exc.request_info = call.info
            exc.replay_safe = call.info.replay_safe
            if (isinstance(exc, StatusError) and exc.status_code == 429
                    and self.rate_limiter is not None):
                if exc.retry_after is not None:
                    self.rate_limiter.cooldown(exc.retry_after)
                else:  # no hint (Stripe's usual 429): a short pause, growing while it lasts
                    self.rate_limiter.slow_down()
        if (isinstance(exc, AttemptTimeoutError) and limits.by_deadline
                and self.clock.now() >= limits.end - 1e-3):
            now = self.clock.now()
            if ctx is not None:
                ctx.sink.emit(DeadlineExceeded(operation=call.operation, at=now,
                                               budget=limits.end - limits.start, where="wire"))
            error = DeadlineExceededError(
                f"{call.operation}: deadline exceeded during attempt "
                f"{ctx.attempt if ctx is not None else 1} (sent={exc.sent})")
            error.__cause__ = exc
            return error
        return exc

    def pipeline(self, default: Pipeline | None) -> Pipeline:
        if default is not None:
            if not isinstance(default, Pipeline):
                raise ConfigurationError("pipeline must be an egress.Pipeline")
            return default
        from egress.http._defaults import default_pipeline

        return default_pipeline(self)


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


def _check_method(method: str) -> str:
    if not isinstance(method, str):
        raise UnsafeRequestError("method must be a string")
    upper = method.upper()
    if not upper.isascii() or not upper.isalpha():
        raise UnsafeRequestError("method must be an HTTP method name")
    return upper


_CREDENTIAL_NAME = ("auth", "key", "token", "secret", "session", "cookie", "password",
                    "signature")


def _credential_name(name: str) -> bool:
    """A header name that says it carries a credential (``X-Api-Key``, ``X-Auth-Token``)."""
    lowered = name.lower()
    return any(word in lowered for word in _CREDENTIAL_NAME)


def _put(headers: dict[str, str], name: str, value: str) -> None:
    """Set ``name`` replacing any existing spelling of it (header names are case-insensitive)."""
    if name not in headers:
        lowered = name.lower()
        for existing in [k for k in headers if k.lower() == lowered]:
            del headers[existing]
    headers[name] = value

