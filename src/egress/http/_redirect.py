"""Redirects, when the caller turned them on: where the next hop goes and what it may carry.

* Only http/https targets; an https → http downgrade is refused.
* 303, and 301/302 after a POST, become a GET without a body, body headers or idempotency key.
* 307/308 keep the method and body; sending a body of an unsafe method to another origin is
  refused (it would replay a side effect somewhere the caller never named).
* A hop to another origin than the client's base keeps only :data:`CROSS_ORIGIN_HEADERS`
  (Accept*, User-Agent, Content-*): no Authorization, API-key, Cookie, Proxy-Authorization,
  Idempotency-Key, Stripe-Account or any custom header (CVE-2018-20060, CVE-2023-43804,
  CVE-2024-37891).
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from egress._redacted import RedactedHeaders, RedactedURL
from egress.errors import UnsafeRequestError
from egress.http._url import origin_of

__all__ = ["CROSS_ORIGIN_HEADERS", "REDIRECT_STATUSES", "next_hop"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding",
                           "transfer-encoding"})
_CONTROL = re.compile(r"[\x00-\x20\x7f\\]")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: The only headers a hop to another origin keeps: an allow-list, because a deny-list misses
#: whatever the caller invented (``Stripe-Account``, ``X-Auth-Token``, custom key headers...).
CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-encoding", "accept-language", "user-agent",
                                  "content-type", "content-length", "content-language"})


def next_hop(method: str, url: str, *, headers: dict[str, str], body: bytes | None,
             status: int, location: str, base_origin: tuple[str, str, int],
             sensitive: frozenset[str], key_header: str,
             ) -> tuple[str, str, dict[str, str], bytes | None, bool]:
    """(method, url, headers, body, same_origin_as_base) of the next hop, or refuse it.

    ``sensitive`` and ``key_header`` (the client's idempotency header) are lower-case names.
    """
    if _CONTROL.search(location.strip()):
        raise UnsafeRequestError("redirect Location has control characters; refused")
    try:  # a port out of range or a broken IPv6 literal is the server's bad answer
        if _empty_authority(location.strip()):
            raise ValueError  # urljoin would quietly put the current host in ("http://")
        target = urljoin(url, location.strip())
        target = target.split("#", 1)[0]
        scheme, host, port = origin_of(target)
    except ValueError:
        raise UnsafeRequestError("redirect Location is not a valid URL; refused") from None
    if scheme not in ("http", "https") or not host:
        raise UnsafeRequestError("redirect to a non-HTTP URL refused")
    if origin_of(url)[0] == "https" and scheme == "http":
        raise UnsafeRequestError("redirect from https to http refused (it would expose the "
                                 "request in clear text)")
    same = (scheme, host, port) == base_origin
    target = RedactedURL(target)  # headers and URL stay masked in any repr (egress._redacted)
    new_headers = RedactedHeaders(headers)
    if status == 303 or (status in (301, 302) and method == "POST"):
        method = "GET" if method != "HEAD" else method
        body = None
        new_headers = RedactedHeaders({
            k: v for k, v in new_headers.items()
            if k.lower() not in _BODY_HEADERS and k.lower() != key_header})
    elif not same and body is not None and method not in _SAFE_METHODS:
        raise UnsafeRequestError(f"redirect {status} would resend a {method} body to another "
                                 f"origin; refused")
    if not same:
        new_headers = RedactedHeaders({k: v for k, v in new_headers.items()
                                       if k.lower() in CROSS_ORIGIN_HEADERS
                                       and k.lower() not in sensitive})
    return method, target, new_headers, body, same


def _empty_authority(location: str) -> bool:
    """``http://``, ``//`` or ``http:///x``: an authority given, with no host in it."""
    parts = urlsplit(location)
    rest = location[len(parts.scheme) + 1:] if parts.scheme else location
    return rest.startswith("//") and not parts.hostname
