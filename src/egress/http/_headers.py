"""Headers: a case-insensitive view of response headers, and the checks on request headers.

Request header names must be HTTP tokens and values printable ASCII (inner spaces and tabs
allowed; no CR, LF, NUL or other control character, no leading or trailing whitespace, nothing
outside ASCII); both are checked before any I/O, with errors that name the header but never show the
value. Response headers are kept as the raw pairs the backend read and turned into a
case-insensitive mapping only when someone asks (most successful calls never do).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, TypeVar, overload

from egress.errors import UnsafeRequestError

__all__ = ["FRAMING_REQUEST_HEADERS", "HeaderSource", "Headers", "check_header",
           "SENSITIVE_REQUEST_HEADERS",
           "sanitize_response_headers"]

T = TypeVar("T")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
# Printable ASCII and inner spaces/tabs only: every backend sends exactly these bytes (httpx
# refuses non-ASCII, aiohttp would send UTF-8, http.client Latin-1), and h11 refuses leading or
# trailing whitespace at send time, with the value in its message.
_GOOD_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?")

#: Request headers that carry credentials or one-call identity: never sent across origins.
SENSITIVE_REQUEST_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "idempotency-key", "x-api-key"}
)

#: Request headers the HTTP library owns: the message's framing (Content-Length,
#: Transfer-Encoding), its target (Host) and the connection's handling. Set by a caller, each
#: backend did something else with them (aiohttp and httpx sent a Transfer-Encoding beside the
#: Content-Length they computed, a request smuggling shape; a wrong Content-Length hung the call;
#: aiohttp waited for a "100 Continue" the others never asked for): refused before any I/O.
FRAMING_REQUEST_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive",
     "proxy-connection", "upgrade", "te", "trailer", "expect"}
)

# Response headers never copied into an exception (they can carry session secrets).
_HIDDEN_RESPONSE_HEADERS = frozenset({"set-cookie", "set-cookie2", "authorization",
                                      "proxy-authenticate", "www-authenticate"})


def check_header(name: str, value: str, error: type[Exception] = UnsafeRequestError) -> None:
    """Refuse a header whose name is not a token or whose value has CR, LF or NUL.

    The error names the header, never the value (it may be a secret, or an attacker's payload).
    """
    # On every header of every call: two C string tests stand in for the regexes when they
    # settle it (a name already found valid; a value of printable ASCII with no space at either
    # end, which the value pattern accepts); anything else takes the patterns, as before.
    if (type(name) is str and name in _VALID_NAMES and type(value) is str
            and value.isascii() and value.isprintable() and value[:1] != " "
            and value[-1:] != " "):
        return
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise error(f"header name {name[:40]!r} is not a valid HTTP token"
                    if isinstance(name, str) else "header names must be strings")
    if name.lower() in FRAMING_REQUEST_HEADERS:
        raise error(f"header {name!r} is set by the HTTP library (framing, target or "
                    f"connection); refused before sending")
    if not isinstance(value, str):
        raise error(f"header {name!r}: the value must be a string")
    if not _GOOD_VALUE.fullmatch(value):
        if _BAD_VALUE.search(value):
            raise error(f"header {name!r}: the value contains CR, LF or NUL; refused before "
                        f"sending")
        if value != value.strip(" \t"):
            raise error(f"header {name!r}: the value has leading or trailing whitespace; "
                        f"refused before sending")
        raise error(f"header {name!r}: the value must be printable ASCII (encode other "
                    f"characters first, e.g. percent-encoding); refused before sending")
    if type(name) is str and len(_VALID_NAMES) < _VALID_NAMES_LIMIT:
        _VALID_NAMES.add(name)


#: Header names that passed the token pattern (bounded: names come from code, not from data).
_VALID_NAMES: set[str] = set()
_VALID_NAMES_LIMIT = 256


def sanitize_response_headers(headers: Headers) -> tuple[tuple[str, str], ...]:
    """The response headers safe to keep on an exception (no cookies, no auth challenges)."""
    hidden = _HIDDEN_RESPONSE_HEADERS
    return tuple((k, v) for k, v in headers.items_all() if k.lower() not in hidden)


_new = object.__new__


class HeaderSource(Protocol):
    """A backend's own header map, read through only as far as asked (``Headers.from_source``)."""

    def values(self, name: str) -> list[str]:
        """Every value of ``name`` (case-insensitive), in order; empty if absent."""
        ...

    def pairs(self) -> list[tuple[str, str]]:
        """Every (name, value) pair, in order."""
        ...


class Headers(Mapping[str, str]):
    """Response headers: a read-only, case-insensitive mapping.

    ``headers["content-type"]`` gives the first value; :meth:`get_all` gives every value of a
    repeated header. Built from the raw pairs the backend read (bytes are decoded as Latin-1, as
    HTTP/1.1 specifies), lazily.
    """

    __slots__ = ("_index", "_pairs", "_raw", "_source")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._raw: tuple[tuple[bytes, bytes], ...] | None = None
        self._source: HeaderSource | None = None
        self._pairs: list[tuple[str, str]] | None = list(pairs)
        self._index: dict[str, list[str]] | None = None

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """From byte pairs, decoded only when first read."""
        headers = _new(cls)  # (once per response: no __init__, no tuple() of a tuple)
        headers._raw = raw if type(raw) is tuple else tuple(raw)
        headers._source = headers._pairs = headers._index = None
        return headers

    @classmethod
    def from_source(cls, source: HeaderSource) -> Headers:
        """Over a backend's own map: a lookup asks it for one name (what most callers need,
        if anything); only iterating copies every pair out."""
        headers = _new(cls)
        headers._source = source
        headers._raw = headers._pairs = headers._index = None
        return headers

    def items_all(self) -> list[tuple[str, str]]:
        """Every (name, value) pair in the order received, names as sent."""
        if self._pairs is None:
            if self._source is not None:
                self._pairs = self._source.pairs()
            else:
                self._pairs = [(k.decode("latin-1"), v.decode("latin-1"))
                               for k, v in self._raw or ()]
        return self._pairs

    def _values(self, name: str) -> list[str] | None:
        """Every value of ``name``, or None/empty if absent (not a copy: do not change it)."""
        source = self._source
        if source is not None and self._index is None:
            return source.values(name)
        return self._lookup().get(name.lower())

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for key, value in self.items_all():
                index.setdefault(key.lower(), []).append(value)
            self._index = index
        return index

    def __getitem__(self, name: str) -> str:
        values = self._values(name)
        if not values:
            raise KeyError(name)
        return values[0]

    @overload
    def get(self, name: str, /) -> str | None: ...

    @overload
    def get(self, name: str, default: str, /) -> str: ...

    @overload
    def get(self, name: str, default: T, /) -> str | T: ...

    def get(self, name: str, default: object = None, /) -> object:
        values = self._values(name)
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` (case-insensitive), in order; empty if absent."""
        return list(self._values(name) or ())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._values(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __len__(self) -> int:
        return len(self._lookup())

    def __repr__(self) -> str:
        return f"Headers({len(self)} fields)"
