"""Redirects, when the caller turned them on: where the next hop goes and what it may carry.

* Only http/https targets; an https → http downgrade is refused.
* 303, and 301/302 after a POST, become a GET without a body, body headers or idempotency key.
* 307/308 keep the method and body; sending a body of an unsafe method to another origin is
  refused (it would replay a side effect somewhere the caller never named).
* A Location beyond ASCII (its bytes, read as Latin-1) is percent-encoded byte for byte, as a
  browser sends it: no HTTP library can send such a URL as it is (http.client refused it as
  "request refused by the HTTP library", aiohttp sent bytes the server could not read).
* Every refusal is a ``ResponseError(reason="redirect")``: the request that drew the redirect
  was sent and answered, so it is never an ``UnsafeRequestError`` ("refused before any I/O"),
  which would tell the caller that nothing had reached the server.
* A hop to another origin than the client's base keeps only :data:`CROSS_ORIGIN_HEADERS`
  (Accept*, User-Agent, Content-*): no Authorization, API-key, Cookie, Proxy-Authorization,
  Idempotency-Key, Stripe-Account or any custom header (CVE-2018-20060, CVE-2023-43804,
  CVE-2024-37891).
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from egress._redacted import RedactedHeaders, RedactedURL
from egress.errors import ResponseError
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
    location = location.strip()
    if _CONTROL.search(location):
        raise _refused("redirect Location has control characters; refused")
    if not location.isascii():
        location = _percent_encoded(location)
    try:  # a port out of range or a broken IPv6 literal is the server's bad answer
        if _empty_authority(location):
            raise ValueError  # urljoin would quietly put the current host in ("http://")
        target = urljoin(url, location)
        target = target.split("#", 1)[0]
        scheme, host, port = origin_of(target)
    except ValueError:
        raise _refused("redirect Location is not a valid URL; refused") from None
    if scheme not in ("http", "https") or not host:
        raise _refused("redirect to a non-HTTP URL refused")
    if origin_of(url)[0] == "https" and scheme == "http":
        raise _refused("redirect from https to http refused (it would expose the request in "
                       "clear text)")
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
        raise _refused(f"redirect {status} would resend a {method} body to another origin; "
                       f"refused")
    if not same:
        new_headers = RedactedHeaders({k: v for k, v in new_headers.items()
                                       if k.lower() in CROSS_ORIGIN_HEADERS
                                       and k.lower() not in sensitive})
    return method, target, new_headers, body, same


def _refused(message: str) -> ResponseError:
    """The server's redirect cannot be followed: its answer is unusable (the request was sent)."""
    return ResponseError(message, reason="redirect")


def _percent_encoded(location: str) -> str:
    """``location`` with every character beyond ASCII percent-encoded as the byte(s) it came
    from: a header value is read as Latin-1, so each such character is one byte on the wire (a
    UTF-8 ``é`` arrives as two and goes out as ``%C3%A9``); a wider one (from no backend) as
    UTF-8."""
    return "".join(
        c if c.isascii() else "".join(
            f"%{b:02X}" for b in c.encode("latin-1" if ord(c) < 256 else "utf-8"))
        for c in location)


def _empty_authority(location: str) -> bool:
    """``http://``, ``//`` or ``http:///x``: an authority given, with no host in it."""
    parts = urlsplit(location)
    rest = location[len(parts.scheme) + 1:] if parts.scheme else location
    return rest.startswith("//") and not parts.hostname
