"""URL safety: every request stays under the client's base URL.

* ``base_url`` is parsed once: scheme http/https, a host, no credentials, query or fragment.
* A path that is an absolute or scheme-relative URL (``https://evil/x``, ``//evil/x``,
  ``mailto:x``) or holds a backslash, control character, ``?`` or ``#`` is refused before any I/O.
* ``{name}`` placeholders take ``path_params`` values, each encoded as exactly one segment (``/``,
  ``?``, ``%`` and ``.`` included); empty, ``.`` and ``..`` values are refused.
* Dot segments in the literal path are resolved and can never climb above the base path.
* Paths are joined *under* the base path: with ``https://api/v1``, ``"/x"`` is ``/v1/x``.
* A query or form value may be an ``egress.Secret`` (``api_key=``): revealed only into the URL or
  body, whose repr stays masked (:mod:`egress._redacted`); path parameters never take one.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from egress._redacted import RedactedURL, RevealedStr
from egress._secret import Secret
from egress.errors import ConfigurationError, UnsafeRequestError

__all__ = ["BaseURL", "Params", "encode_pairs", "encode_query", "origin_of"]

Scalar = str | int | float | bool | Secret | None
Params = Mapping[str, Scalar | Sequence[Scalar]] | Iterable[tuple[str, Scalar]]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\?#]")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# pchar (RFC 3986) plus "%" so pre-encoded literals stay as written.
_LITERAL_SAFE = "!$&'()*+,;=:@-._~%"
_CACHE_LIMIT = 512
#: The longest request URL any backend is handed. httpx and hyper (pyreqwest) refuse a URL near
#: 64 KiB before sending while aiohttp and http.client send it (and servers cut it off): below
#: all of them, every backend refuses the same URLs, before any I/O.
MAX_URL_LENGTH = 64_000
_DEFAULT_PORTS = {"http": 80, "https": 443}


_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


def _host(host: str) -> str:
    """The base URL's host as every backend is handed it: an IPv6 literal, a dotted-quad IPv4
    address or an ASCII (IDNA) name, checked once at construction.

    Each library had its own rules: a non-ASCII name went to yarl, idna, the url crate or the
    stdlib codec (IDNA 2008, UTS 46 or 2003); reqwest alone refused an IPv6 zone id or a space;
    httpx alone refused a bad ``xn--`` label; the url crate reads ``0x7f.1`` as 127.0.0.1.
    Converted here, every backend connects to the same host or none does."""
    if ":" in host:  # urlsplit checked the literal; a zone id is link-local, never an API
        if "%" in host:
            raise ConfigurationError("base_url: an IPv6 zone id (%) is not supported")
        # Its shortest form: reqwest sends "Host: [::1]" for [0:0:0:0:0:0:0:1], the others
        # sent the literal as written.
        return ipaddress.IPv6Address(host).compressed
    if not host.isascii() or "xn--" in host:
        # Imported only here (its tables are large; most base URLs are ASCII). A declared
        # dependency (aiohttp's yarl needs it too).
        import idna

        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (UnicodeError, ValueError):
            raise ConfigurationError("base_url host is not a valid internationalised domain "
                                     "name") from None
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ConfigurationError("base_url host is not a valid host name (letters, digits, "
                                 "'-' and '_', labels of 1 to 63 characters)")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):  # WHATWG: an IPv4 address, in some spelling
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ConfigurationError("base_url host looks like an IPv4 address but is not "
                                     "written as one (four decimal numbers)") from None
    return host


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute URL, normalised (lower case, default ports)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    return scheme, host, port


class BaseURL:
    """A parsed, validated base URL that builds request URLs safely."""

    __slots__ = ("_cache", "_marker", "_templates", "host", "origin", "path", "port", "scheme",
                 "segments")

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise ConfigurationError("base_url must be a string")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"base_url is not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ConfigurationError("base_url must start with http:// or https://")
        if not parts.hostname:
            raise ConfigurationError("base_url has no host")
        if port == 0:  # was taken for "no port" and became 80 or 443: another server
            raise ConfigurationError("base_url port must be 1 to 65535")
        if parts.username is not None or parts.password is not None:
            raise ConfigurationError("base_url must not carry credentials; use auth=")
        if parts.query or parts.fragment:
            raise ConfigurationError("base_url must not have a query or a fragment; use params=")
        if _FORBIDDEN.search(parts.path):  # "?" and "#" were split off above, and refused
            raise ConfigurationError("base_url path has forbidden characters")
        self.scheme = scheme
        self.host = _host(parts.hostname.lower())
        self.port = port or _DEFAULT_PORTS[scheme]
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = port is None or port == _DEFAULT_PORTS[scheme]
        self.origin = f"{scheme}://{host}" if default else f"{scheme}://{host}:{self.port}"
        self.segments: tuple[str, ...] = tuple(
            quote(s, safe=_LITERAL_SAFE) for s in parts.path.split("/") if s and s != "."
        )
        if ".." in self.segments:
            raise ConfigurationError("base_url path must not contain '..'")
        self.path = "/" + "/".join(self.segments) if self.segments else ""
        self._cache: dict[str, str] = {}
        #: Paths with ``{name}`` placeholders, walked once (see :meth:`_template`).
        self._templates: dict[str, _Template | None] = {}
        self._marker = "egress" + os.urandom(12).hex()

    def url(self, path: str, path_params: Mapping[str, object] | None = None,
            params: Params | None = None) -> str:
        """The absolute URL for ``path`` under this base. Raises :class:`UnsafeRequestError`."""
        try:
            url = self._url(path, path_params, params)
        except UnicodeEncodeError:
            # A lone surrogate ("\ud800", from a bad decode) has no UTF-8 form: quote() raised.
            raise UnsafeRequestError("the path, a path parameter or a query parameter holds "
                                     "text that is not valid Unicode (a lone surrogate)") from None
        if len(url) > MAX_URL_LENGTH:
            raise UnsafeRequestError(f"the request URL is longer than {MAX_URL_LENGTH} "
                                     f"characters; refused before sending")
        return url

    def _url(self, path: str, path_params: Mapping[str, object] | None,
             params: Params | None) -> str:
        if path_params is None:
            url = self._cache.get(path)
            if url is None:
                url = self._build(path, None)
                if len(self._cache) < _CACHE_LIMIT:
                    self._cache[path] = url
        else:
            template = self._templates.get(path, _UNKNOWN)
            if template is _UNKNOWN:
                template = self._template(path)
                if len(self._templates) < _CACHE_LIMIT:
                    self._templates[path] = template
            url = (self._build(path, path_params) if template is None
                   else _fill(template, path_params))
        if params:
            query = encode_query(params)
            if query:
                return RedactedURL(f"{url}?{query}")  # its repr never shows the query
        return url

    def _build(self, path: str, path_params: Mapping[str, object] | None) -> str:
        if not isinstance(path, str):
            raise UnsafeRequestError("path must be a string")
        if _SCHEME.match(path) or path.startswith("//"):
            raise UnsafeRequestError(
                "path is an absolute or scheme-relative URL; only paths under base_url are allowed"
            )
        if _FORBIDDEN.search(path):
            raise UnsafeRequestError(
                "path contains a backslash, a control character, whitespace, '?' or '#'; "
                "pass query parameters with params="
            )
        used: set[str] = set()
        out = list(self.segments)
        floor = len(out)
        for raw in path.split("/"):
            if not raw:
                continue
            if "{" in raw or "}" in raw:
                out.append(_substitute(raw, path_params, used))
                continue
            decoded = unquote(raw)
            if decoded == ".":
                continue
            if decoded == "..":
                if len(out) <= floor:
                    raise UnsafeRequestError("path climbs above the base path with '..'")
                out.pop()
                continue
            out.append(quote(raw, safe=_LITERAL_SAFE))
        _check_used(path_params, used)
        trailing = "/" if path.endswith("/") and out else ""
        return f"{self.origin}/{'/'.join(out)}{trailing}"

    def _template(self, path: str) -> _Template | None:
        """``path`` walked once by :meth:`_build` itself, each placeholder given a marker value:
        the URL's literal text between the placeholders, and the placeholders in the order
        ``_build`` checks them. ``None`` when the walk refuses the path (each call then runs
        ``_build``, which raises as before) or when a marker is found in a literal."""
        probe = _Probe(self._marker)
        try:
            url = self._build(path, probe)
        except UnsafeRequestError:
            return None
        names = tuple(probe.asked)
        texts = url.split(self._marker)
        order: list[int] = []
        for i, text in enumerate(texts[1:], 1):
            index = text[:4]
            if not (index.isdigit() and index.isascii()) or int(index) >= len(names):
                return None
            order.append(int(index))
            texts[i] = text[4:]
        if len(set(order)) != len(order):
            return None
        return names, tuple(texts), tuple(order)

    def __repr__(self) -> str:
        return f"BaseURL({self.origin}{self.path})"


#: ``(names in the order checked, literal texts, which name goes after each text but the last)``
_Template = tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]
_UNKNOWN: Any = object()


class _Probe(Mapping[str, object]):
    """Path parameters for :meth:`BaseURL._template`: each placeholder asked for gets
    ``marker`` and its 4-digit number, unreserved characters that encode as themselves."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.asked: list[str] = []

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)

    def __getitem__(self, name: str) -> str:
        self.asked.append(name)
        return f"{self.marker}{len(self.asked) - 1:04d}"

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(self.asked))

    def __len__(self) -> int:
        return len(set(self.asked))


def _fill(template: _Template, path_params: Mapping[str, object]) -> str:
    """What ``_build`` gives for a path whose walk is ``template``: the same value checks, in
    the same order, the same errors (none of them can come from the path itself)."""
    names, texts, order = template
    if len(names) == 1 and len(order) == 1:  # one placeholder (a resource id): the usual case
        value = _param(names[0], path_params)
        if len(path_params) != 1:
            _check_used(path_params, names)
        return f"{texts[0]}{value}{texts[1]}"
    values = [_param(name, path_params) for name in names]
    _check_used(path_params, names)
    out = [texts[0]]
    for index, text in zip(order, texts[1:], strict=True):
        out.append(values[index])
        out.append(text)
    return "".join(out)


def _check_used(path_params: Mapping[str, object] | None, used: Iterable[str]) -> None:
    if path_params:
        extra = set(path_params) - set(used)
        if extra:
            raise UnsafeRequestError(f"path_params not used by the path: {sorted(extra)}")


def _param(name: str, path_params: Mapping[str, object] | None) -> str:
    """The value of placeholder ``name``, checked and encoded as exactly one segment."""
    if path_params is None or name not in path_params:
        raise UnsafeRequestError(f"path parameter {{{name}}} has no value in path_params")
    value = path_params[name]
    if type(value) is str:  # the usual case, settled without the isinstance chain
        text = value
    else:
        if isinstance(value, Secret):
            raise UnsafeRequestError(f"path parameter {{{name}}}: secrets never go into URLs")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise UnsafeRequestError(f"path parameter {{{name}}} must be a str or an int")
        text = _text(name, value)
    if text in ("", ".", ".."):
        raise UnsafeRequestError(f"path parameter {{{name}}} is empty or a dot segment")
    if text.isascii() and text.replace("_", "").replace("-", "").replace("~", "").isalnum():
        return text  # unreserved characters, no dot: quote() would give it back unchanged
    # One segment, whatever it holds: "/", "?", "%" and "." are all encoded.
    return quote(text, safe="").replace(".", "%2E")


def _substitute(segment: str, path_params: Mapping[str, object] | None, used: set[str]) -> str:
    pieces = _PLACEHOLDER.split(segment)  # literal, name, literal, name, ..., literal
    if any("{" in p or "}" in p for p in pieces[::2]):
        raise UnsafeRequestError("path has an unbalanced '{' or '}'")
    out: list[str] = []
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            if piece:
                out.append(quote(piece, safe=_LITERAL_SAFE))
            continue
        out.append(_param(piece, path_params))
        used.add(piece)
    return "".join(out)


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return _text(name, value)
    if isinstance(value, float):
        if not math.isfinite(value):  # "nan" or "inf" in a query is a bug upstream, not data
            raise UnsafeRequestError(f"parameter {name!r}: {value!r} is not a finite number")
        return str(value)
    if isinstance(value, Secret):
        # A key the API wants in the query or a form (``api_key=``, card fields): revealed
        # only here, into a value whose repr stays masked (see egress._redacted).
        return RevealedStr(value.reveal())
    raise UnsafeRequestError(f"parameter {name!r}: unsupported value type {type(value).__name__}")


def _text(name: str, value: object) -> str:
    """``str(value)`` of a str or int; an int of more than 4300 digits raises ValueError."""
    try:
        return str(value)
    except ValueError:
        raise UnsafeRequestError(f"parameter {name!r}: the int is too large to send") from None


def encode_pairs(data: Params) -> list[tuple[str, str]]:
    """Flatten a mapping (lists repeat the key) or a sequence of pairs; ``None`` values dropped."""
    if isinstance(data, str | bytes) or not isinstance(data, Mapping | Iterable):
        raise UnsafeRequestError("parameters must be a mapping or a sequence of (name, value) "
                                 "pairs")
    items: Iterable[tuple[str, Any]] = data.items() if isinstance(data, Mapping) else data
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise UnsafeRequestError("parameters must be a mapping or a sequence of (name, "
                                     "value) pairs")
        key, value = item
        if not isinstance(key, str):
            raise UnsafeRequestError("parameter names must be strings")
        if value is None:
            continue
        if isinstance(value, list | tuple):
            pairs.extend((key, _scalar(key, v)) for v in value if v is not None)
        else:
            pairs.append((key, _scalar(key, value)))
    return pairs


def encode_query(params: Params) -> str:
    """``params`` as a query string (``%20`` for spaces, every reserved character encoded)."""
    return urlencode(encode_pairs(params), quote_via=quote)
