"""Preparing a call, before any I/O: the URL, the merged headers, the body bytes, the
idempotency key, the operation name and the call's own secrets, checked once.

Every attempt of a call then sends these exact bytes. A plain call (no params, body or extra
headers: the usual GET) is prepared once per client and kept.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection, Mapping
from typing import Any

from egress._redacted import RedactedHeaders, RevealedStr, reveal
from egress._secret import Secret
from egress.errors import ConfigurationError, UnsafeRequestError
from egress.http._body import _UNSET, encode_body
from egress.http._codecs import ACCEPT_ENCODING
from egress.http._error_facts import secrets_in
from egress.http._headers import SENSITIVE_REQUEST_HEADERS, check_header
from egress.http._options import ClientOptions, expected_statuses
from egress.http._safety import RequestInfo, safety_of
from egress.http._url import BaseURL, Params

__all__ = ["PreparedCall", "Preparation", "put_header"]

MAX_IDEMPOTENCY_KEY = 255
_KEYED_METHODS = frozenset({"POST", "PATCH"})
#: Methods whose request without a body carries no ``Content-Length`` (aiohttp's list; the rest
#: get ``Content-Length: 0``, see :meth:`Preparation.prepare`).
_BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
_NAME_CACHE_LIMIT = 1024


def _new_key() -> str:
    raw = os.urandom(16).hex()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"



class PreparedCall:
    """One logical call, prepared once: every attempt sends these exact bytes."""

    __slots__ = ("_info", "body", "expect", "headers", "key", "method", "op", "operation",
                 "plain_url", "secrets", "target", "url")

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                 *, key: str | None, operation: str, secrets: tuple[str, ...] = (),
                 target: tuple[str, str] | None = None) -> None:
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
        #: ``(method, server address)`` for the pipeline's events, built once with the call.
        self.target = target

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



class Preparation:
    """The client's request defaults (base URL, headers, key policy) and :meth:`prepare`."""

    base: BaseURL
    expect: frozenset[int]
    auto_idempotency_key: bool | frozenset[str]
    idempotency_header: str
    default_headers: dict[str, str]
    sensitive: frozenset[str]
    _idem_lower: str
    _operations: dict[tuple[str, str], str]
    #: Plain calls (no params, body, extra headers), prepared once: keyed by (method, path).
    prepared: dict[tuple[str, str], PreparedCall]
    _static_secrets: tuple[str, ...]

    def _set_defaults(self, base_url: str, options: ClientOptions) -> None:
        """Validate the base URL and build the headers every request starts from."""
        self.base = BaseURL(base_url)
        self.expect = frozenset(options.expect)
        auto = options.auto_idempotency_key
        self.auto_idempotency_key = auto if isinstance(auto, bool) else frozenset(auto)
        self.idempotency_header = options.idempotency_header
        self._idem_lower = options.idempotency_header.lower()
        self._operations = {}
        self.prepared = {}
        # Every request's headers live in a dict whose repr shows names only (egress._redacted).
        # "Accept: */*" is what aiohttp, httpx and reqwest add on their own; said here, so
        # http.client (which adds none) sends it too.
        defaults: dict[str, str] = RedactedHeaders({"Accept": "*/*",
                                                    "Accept-Encoding": ACCEPT_ENCODING})
        if options.user_agent:
            defaults["User-Agent"] = options.user_agent
        static_secrets: list[str] = []
        if options.headers and not isinstance(options.headers, Mapping):
            raise ConfigurationError("headers must be a mapping of names to values")
        for name, given in (options.headers or {}).items():
            value: str = reveal(given)
            check_header(name, value, ConfigurationError)
            if isinstance(value, RevealedStr) or _credential_name(name):
                static_secrets.append(value)
            put_header(defaults, name, value)
        self._static_secrets = tuple(static_secrets)
        sensitive = set(SENSITIVE_REQUEST_HEADERS) | {self._idem_lower}
        auth = options.auth
        if auth is not None:
            for name, value in (auth.static_headers or {}).items():
                check_header(name, value, ConfigurationError)
                put_header(defaults, name, value)
            sensitive |= auth.header_names
        self.sensitive = frozenset(sensitive)
        self.default_headers = defaults

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
            cached = self.prepared.get((method, path))
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
        # An empty body: each library framed it its own way (aiohttp sent "Content-Length: 0"
        # for a DELETE, httpx and http.client did not; reqwest sent none even for a POST). Said
        # here, every backend sends the same: 0 for an empty body, or no body where the method
        # defines content (RFC 9110 8.6); nothing for a GET, HEAD, OPTIONS or TRACE without one.
        empty = not body and (body is not None or method not in _BODILESS_METHODS)
        if (headers or content_type is not None or idempotency_key is not None
                or method in _KEYED_METHODS or empty):
            merged = RedactedHeaders(merged)
            if empty:
                merged["Content-Length"] = "0"
            if content_type is not None:
                merged["Content-Type"] = content_type
            if headers:
                if type(headers) is not dict and not isinstance(headers, Mapping):
                    raise UnsafeRequestError("headers must be a mapping of names to values")
                for name, given in headers.items():
                    value = reveal(given)  # a str, or a Secret's value (masked repr)
                    check_header(name, value)
                    if name.lower() == self._idem_lower:
                        if idempotency_key is None:
                            idempotency_key = value
                        continue
                    put_header(merged, name, value)
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
                            secrets=secrets, target=(method, self.base.host))
        call.expect = (self.expect if expect is None
                       else self.expect | expected_statuses(expect, UnsafeRequestError))
        if plain and key is None and len(self.prepared) < _NAME_CACHE_LIMIT:
            self.prepared[(method, path)] = call
        return call

    # -- one attempt --------------------------------------------------------------------------


def _check_method(method: str) -> str:
    if not isinstance(method, str):
        raise UnsafeRequestError("method must be a string")
    upper = method.upper()
    if not upper.isascii() or not upper.isalpha():
        raise UnsafeRequestError("method must be an HTTP method name")
    if upper == "CONNECT":
        # A tunnel, not an API call: aiohttp and reqwest send the authority ("host:port") as
        # the target, httpx and http.client the path; none of them then tunnels.
        raise UnsafeRequestError("method CONNECT opens a tunnel; it is not an API call")
    return upper


_CREDENTIAL_NAME = ("auth", "key", "token", "secret", "session", "cookie", "password",
                    "signature")


@functools.lru_cache(maxsize=256)  # asked for every header of every call; pure in the name
def _credential_name(name: str) -> bool:
    """A header name that says it carries a credential (``X-Api-Key``, ``X-Auth-Token``)."""
    lowered = name.lower()
    return any(word in lowered for word in _CREDENTIAL_NAME)


def put_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set ``name`` replacing any existing spelling of it (header names are case-insensitive)."""
    if name not in headers:
        lowered = name.lower()
        for existing in [k for k in headers if k.lower() == lowered]:
            del headers[existing]
    headers[name] = value

