"""Authentication: static credentials, OAuth2 client credentials, and request signing.

Every credential is an :class:`egress.Secret`; it is revealed only where a header is built. An auth
object declares which header names it fills (``header_names``) so a redirect to another origin
never carries them, and which secret values exist (``secret_values``) so error excerpts can
redact them.

* :class:`BearerAuth`, :class:`ApiKeyAuth`, :class:`BasicAuth`: static headers, computed once.
* :class:`OAuth2ClientCredentials`: a token fetched from ``token_url``, cached until
  ``expires_in - skew``, fetched once however many calls wait for it (single flight, per event
  loop in async code, per client in sync code), and refreshed once when a call gets a 401.
* :class:`SigningAuth`: a hook that adds headers computed from each attempt's method, URL, headers
  and body (HMAC signatures, timestamps); :class:`HmacSigner` is a ready-made one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from egress._clock import Clock
from egress._redacted import RedactedHeaders, RevealedBytes, RevealedStr
from egress._secret import Secret
from egress.errors import ConfigurationError, ResponseError, StatusError
from egress.http._body import parse_json
from egress.http._headers import check_header
from egress.http._url import encode_pairs

__all__ = [
    "ApiKeyAuth",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "HmacSigner",
    "OAuth2ClientCredentials",
    "SignableRequest",
    "SigningAuth",
    "TokenFetch",
]

DEFAULT_TOKEN_SKEW = 30.0
DEFAULT_TOKEN_LIFETIME = 300.0  # when the token endpoint does not say
MAX_TOKEN_LIFETIME = 86400.0  # a longer expires_in is capped (a 401 refreshes earlier anyway)


def _secret(owner: str, name: str, value: Secret) -> Secret:
    if not isinstance(value, Secret):
        raise ConfigurationError(f"{owner}: {name} must be an egress.Secret")
    check_header("X-Check", value.reveal(), ConfigurationError)
    return value


class Auth:
    """Base of every auth. Static auths set ``static_headers``; dynamic ones override
    :meth:`headers_async` / :meth:`headers_sync`; signing ones override :meth:`sign`."""

    #: Headers added to every request to the base origin (computed once), or ``None``.
    static_headers: Mapping[str, str] | None = None
    #: Lower-case names of the headers this auth fills (stripped on cross-origin redirects).
    header_names: frozenset[str] = frozenset({"authorization"})
    #: Whether a 401 should make the client refresh once and try again (OAuth2).
    refreshable: bool = False
    #: Whether :meth:`sign` must run on every attempt.
    signs: bool = False

    def secret_values(self) -> tuple[str, ...]:
        """The revealed secrets, for redaction only."""
        return ()

    async def headers_async(self, fetch: TokenFetchAsync, clock: Clock,
                            stale: str | None) -> Mapping[str, str]:
        """Headers for one attempt; ``stale`` is the token a 401 refused, if any."""
        return self.static_headers or {}

    def headers_sync(self, fetch: TokenFetchSync, clock: Clock,
                     stale: str | None) -> Mapping[str, str]:
        return self.static_headers or {}

    def sign(self, request: SignableRequest) -> Mapping[str, str]:
        return {}


class BearerAuth(Auth):
    """``Authorization: Bearer <token>``."""

    def __init__(self, token: Secret) -> None:
        self._token = _secret("BearerAuth", "token", token)
        self.static_headers = {"Authorization": RevealedStr(f"Bearer {self._token.reveal()}")}

    def secret_values(self) -> tuple[str, ...]:
        return (self._token.reveal(),)

    def __repr__(self) -> str:
        return "BearerAuth(Secret('********'))"


class ApiKeyAuth(Auth):
    """An API key in a header (``X-Api-Key`` by default), optionally with a prefix."""

    def __init__(self, key: Secret, *, header: str = "X-Api-Key", prefix: str = "") -> None:
        self._key = _secret("ApiKeyAuth", "key", key)
        check_header(header, f"{prefix}k", ConfigurationError)  # "Key " ends in a space
        self.header = header
        self.static_headers = {header: RevealedStr(f"{prefix}{self._key.reveal()}")}
        self.header_names = frozenset({header.lower()})

    def secret_values(self) -> tuple[str, ...]:
        return (self._key.reveal(),)

    def __repr__(self) -> str:
        return f"ApiKeyAuth(header={self.header!r})"


class BasicAuth(Auth):
    """HTTP Basic: ``Authorization: Basic base64(username:password)``."""

    def __init__(self, username: str, password: Secret) -> None:
        if not isinstance(username, str) or ":" in username:
            raise ConfigurationError("BasicAuth: username must be a string without ':'")
        self._password = _secret("BasicAuth", "password", password)
        self.username = username
        self._encoded = RevealedStr(base64.b64encode(
            f"{username}:{self._password.reveal()}".encode()).decode("ascii"))
        self.static_headers = {"Authorization": RevealedStr(f"Basic {self._encoded}")}

    def secret_values(self) -> tuple[str, ...]:
        return (self._password.reveal(), self._encoded)

    def __repr__(self) -> str:
        return f"BasicAuth({self.username!r}, Secret('********'))"


# ---------------------------------------------------------------------------------------------
# OAuth2 client credentials

TokenFetchAsync = Callable[[str, dict[str, str], bytes], Awaitable[tuple[int, bytes]]]
TokenFetchSync = Callable[[str, dict[str, str], bytes], tuple[int, bytes]]
TokenFetch = TokenFetchAsync | TokenFetchSync


class _Token:
    __slots__ = ("expires", "value")

    def __init__(self, value: str, expires: float) -> None:
        self.value = value
        self.expires = expires


class OAuth2ClientCredentials(Auth):
    """OAuth2 client credentials grant (RFC 6749 §4.4).

    ==================  ===========  ====================================================
    setting             default      meaning
    ==================  ===========  ====================================================
    ``token_url``       (required)   the token endpoint (absolute https URL)
    ``client_id``       (required)   the client id
    ``client_secret``   (required)   a ``Secret``
    ``scope``           None         space-separated scopes to ask for
    ``skew``            30.0         refresh this many seconds before the token expires
    ``send_as``         ``"basic"``  credentials in HTTP Basic, or ``"form"`` (body)
    ==================  ===========  ====================================================

    The token request goes through the client's wire backend, with the client's timeouts and not
    through its pipeline (so it is never retried behind your back).
    """

    refreshable = True

    def __init__(self, token_url: str, *, client_id: str, client_secret: Secret,
                 scope: str | None = None, skew: float = DEFAULT_TOKEN_SKEW,
                 send_as: str = "basic") -> None:
        if not isinstance(token_url, str) or not token_url.startswith(("https://", "http://")):
            raise ConfigurationError("OAuth2ClientCredentials: token_url must be an http(s) URL")
        if not isinstance(client_id, str) or not client_id:
            raise ConfigurationError("OAuth2ClientCredentials: client_id must be a string")
        if send_as not in ("basic", "form"):
            raise ConfigurationError("OAuth2ClientCredentials: send_as must be 'basic' or 'form'")
        if not isinstance(skew, int | float) or not math.isfinite(skew) or skew < 0:
            raise ConfigurationError("OAuth2ClientCredentials: skew must be >= 0 seconds")
        self.token_url = token_url
        self.client_id = client_id
        self._secret = _secret("OAuth2ClientCredentials", "client_secret", client_secret)
        self.scope = scope
        self.skew = float(skew)
        self.send_as = send_as
        self._token: _Token | None = None
        self._async_locks: dict[int, asyncio.Lock] = {}
        self._sync_lock = threading.Lock()
        #: How many token requests were made (for tests and metrics).
        self.fetches = 0

    def secret_values(self) -> tuple[str, ...]:
        token = self._token
        values = [self._secret.reveal()]
        if token is not None:
            values.append(token.value)
        return tuple(values)

    # Pure parts shared by both drivers --------------------------------------------------------

    def _current(self, clock: Clock, stale: str | None) -> str | None:
        token = self._token
        if token is None or clock.now() >= token.expires:
            return None
        if stale is not None and hmac.compare_digest(token.value, stale):
            return None
        return token.value

    def _token_request(self) -> tuple[dict[str, str], bytes]:
        # Revealed straight into values whose repr stays masked (locals in a traceback).
        fields: list[tuple[str, Any]] = [("grant_type", "client_credentials")]
        if self.scope:
            fields.append(("scope", self.scope))
        headers = RedactedHeaders({"Content-Type": "application/x-www-form-urlencoded",
                                   "Accept": "application/json"})
        if self.send_as == "basic":
            headers["Authorization"] = RevealedStr("Basic " + base64.b64encode(
                f"{self.client_id}:{self._secret.reveal()}".encode()).decode("ascii"))
        else:
            fields += [("client_id", self.client_id), ("client_secret", self._secret)]
        return headers, RevealedBytes(urlencode(encode_pairs(fields)).encode("ascii"))

    def _accept(self, status: int, body: bytes, clock: Clock) -> str:
        self.fetches += 1
        if not 200 <= status < 300:
            raise StatusError(status, method="POST", url=self.token_url)
        data: Any = parse_json(body)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise ResponseError("token endpoint answered without an access_token",
                                reason="malformed")
        check_header("Authorization", token, ResponseError)
        lifetime = data.get("expires_in", DEFAULT_TOKEN_LIFETIME)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        # A 400-digit int overflows float(); 1e400 parses as inf: both are capped, not trusted.
        lifetime = min(lifetime, MAX_TOKEN_LIFETIME)
        token = RevealedStr(token)
        self._token = _Token(token, clock.now() + max(float(lifetime) - self.skew, 0.0))
        return token

    # Drivers ------------------------------------------------------------------------------------

    async def headers_async(self, fetch: TokenFetchAsync, clock: Clock,
                            stale: str | None) -> Mapping[str, str]:
        token = self._current(clock, stale)
        if token is None:
            loop_id = id(asyncio.get_running_loop())
            lock = self._async_locks.get(loop_id)
            if lock is None:
                lock = self._async_locks[loop_id] = asyncio.Lock()
            async with lock:
                token = self._current(clock, stale)  # someone else may have fetched it
                if token is None:
                    headers, body = self._token_request()
                    status, content = await fetch(self.token_url, headers, body)
                    token = self._accept(status, content, clock)
        return RedactedHeaders({"Authorization": RevealedStr(f"Bearer {token}")})

    def headers_sync(self, fetch: TokenFetchSync, clock: Clock,
                     stale: str | None) -> Mapping[str, str]:
        token = self._current(clock, stale)
        if token is None:
            with self._sync_lock:
                token = self._current(clock, stale)
                if token is None:
                    headers, body = self._token_request()
                    status, content = fetch(self.token_url, headers, body)
                    token = self._accept(status, content, clock)
        return RedactedHeaders({"Authorization": RevealedStr(f"Bearer {token}")})

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({self.token_url!r}, client_id={self.client_id!r})"


# ---------------------------------------------------------------------------------------------
# Signing


class SignableRequest:
    """What a signer sees of one attempt: it must not change it, only add headers."""

    __slots__ = ("body", "headers", "method", "url")

    def __init__(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"SignableRequest({self.method} {self.url.split('?', 1)[0]})"


class SigningAuth(Auth):
    """Adds the headers ``signer(request)`` returns to every attempt (after any other auth)."""

    signs = True

    def __init__(self, signer: Callable[[SignableRequest], Mapping[str, str]], *,
                 header_names: frozenset[str] = frozenset(),
                 secrets: tuple[Secret, ...] = ()) -> None:
        if not callable(signer):
            raise ConfigurationError("SigningAuth: signer must be callable")
        self._signer = signer
        self.header_names = frozenset(h.lower() for h in header_names)
        self._secrets = secrets

    def secret_values(self) -> tuple[str, ...]:
        return tuple(s.reveal() for s in self._secrets)

    def sign(self, request: SignableRequest) -> Mapping[str, str]:
        return self._signer(request)

    def __repr__(self) -> str:
        return "SigningAuth(...)"


class HmacSigner:
    """HMAC-SHA256 over ``"{timestamp}.{method}.{path_and_query}.{body}"``.

    Adds ``{header}: t=<unix seconds>,v1=<hex>``. The timestamp comes from ``clock.wall()``.
    """

    def __init__(self, key: Secret, *, header: str = "X-Signature", clock: Clock | None = None,
                 digest: str = "sha256") -> None:
        from egress._clock import SYSTEM_CLOCK

        self._key = _secret("HmacSigner", "key", key)
        check_header(header, "", ConfigurationError)
        if digest not in hashlib.algorithms_guaranteed:
            raise ConfigurationError(f"HmacSigner: unknown digest {digest!r}")
        self.header = header
        self.digest = digest
        self.clock = clock or SYSTEM_CLOCK

    def __call__(self, request: SignableRequest) -> Mapping[str, str]:
        stamp = int(self.clock.wall())
        target = request.url.split("://", 1)[-1]
        target = target[target.find("/"):] if "/" in target else "/"
        message = f"{stamp}.{request.method}.{target}.".encode() + request.body
        mac = hmac.new(self._key.reveal().encode(), message, self.digest).hexdigest()
        return {self.header: f"t={stamp},v1={mac}"}

    def auth(self) -> SigningAuth:
        """This signer as an ``auth=`` value."""
        return SigningAuth(self, header_names=frozenset({self.header}), secrets=(self._key,))

    def __repr__(self) -> str:
        return f"HmacSigner(header={self.header!r})"
