"""The response object: status, headers, the whole body as bytes, and strict JSON."""

from __future__ import annotations

from typing import Any

from egress._report import Reported
from egress.errors import ResponseError
from egress.http._body import parse_json
from egress.http._headers import Headers

__all__ = ["Response", "REQUEST_ID_HEADERS", "response_of"]

#: Where a request id is looked for, in order.
REQUEST_ID_HEADERS = ("request-id", "x-request-id", "x-amzn-requestid", "x-correlation-id")

# Codecs Python knows that are no body charset: they refuse errors="replace", or decode
# attacker-sized input in quadratic time (punycode). A server naming one gets UTF-8.
_NOT_BODY_CHARSETS = frozenset({"idna", "punycode", "undefined", "unicode_escape",
                                "raw_unicode_escape"})


class Response(Reported):
    """An answer read in full (the body was read inside the attempt, under its time limit).

    ``headers`` is a case-insensitive mapping; ``content`` the decoded body; ``json()`` parses it
    strictly (no NaN, no duplicate keys) and raises :class:`~egress.errors.ResponseError` on bad
    input. ``url`` has no query string. ``report`` (built when read) tells what the call that
    returned it went through.
    """

    __slots__ = ("_request_id_names", "content", "headers", "method", "status_code", "url")

    def __init__(self, status_code: int, headers: Headers, content: bytes, *, method: str = "",
                 url: str = "", request_id_headers: tuple[str, ...] = REQUEST_ID_HEADERS) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.method = method
        self.url = url
        self._request_id_names = request_id_headers

    @property
    def request_id(self) -> str | None:
        """The server's request id (``Request-Id``, ``X-Request-Id``, ...), if it sent one."""
        headers = self.headers
        for name in self._request_id_names:
            value = headers.get(name)
            if value:
                return value[:200]
        return None

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        """The body decoded with the charset of ``Content-Type`` (UTF-8 by default)."""
        charset = "utf-8"
        ctype = self.headers.get("content-type") or ""
        for param in ctype.split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        if charset.lower().replace("-", "_") in _NOT_BODY_CHARSETS:
            charset = "utf-8"
        try:
            return self.content.decode(charset, errors="replace")
        except (LookupError, UnicodeError, ValueError):  # unknown, bytes-only, NUL in the name
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON. Raises :class:`ResponseError` if it is not strict, valid JSON, or if
        ``Content-Type`` names something else than JSON (an HTML page from a proxy, say).

        Accepted: no ``Content-Type`` at all, or a media type ``*/json`` or ``*/*+json``
        (``application/json``, ``application/problem+json``, ``text/json``...), any parameters.
        """
        ctype = self.headers.get("content-type")
        if ctype is not None:
            media = ctype.split(";", 1)[0].strip().lower()
            if not (media.endswith("/json") or media.endswith("+json")):
                raise ResponseError(f"expected a JSON answer, got Content-Type "
                                    f"{media[:60]!r}", reason="malformed")
        return parse_json(self.content)

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object (a ``dict``); anything else raises :class:`ResponseError`."""
        value = self.json()
        if not isinstance(value, dict):
            raise ResponseError(f"expected a JSON object, got {type(value).__name__}",
                                reason="malformed")
        return value

    def __repr__(self) -> str:
        return f"<Response {self.status_code} {self.method} {self.url}>"


_new = object.__new__


def response_of(status_code: int, headers: Headers, content: bytes, method: str, url: str,  # noqa: PLR0917
                request_id_headers: tuple[str, ...]) -> Response:
    """``Response(...)`` as the client builds one on every successful call: the same fields,
    without the keyword call into ``__init__`` (it costs as much as the rest of this, in
    CPU instructions, on Python 3.11)."""
    response = _new(Response)
    response.status_code = status_code
    response.headers = headers
    response.content = content
    response.method = method
    response.url = url
    response._request_id_names = request_id_headers
    return response
