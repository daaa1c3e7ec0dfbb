"""Bodies: request encoding (once per logical call, so every attempt sends the same bytes) and
bounded response decoding (no decompression bombs, no unbounded buffers).

The response cap applies three times: to the declared ``Content-Length`` (refused before reading),
to the bytes read from the wire, and to the decoded bytes (each ``decompress`` call yields at most
:data:`PIECE` bytes, so memory stays within the cap plus a small constant). At most
:data:`MAX_ENCODINGS` content codings are accepted.
"""

from __future__ import annotations

import io
import json as _json
import math
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from egress._redacted import RevealedBytes
from egress._secret import Secret
from egress.errors import ResponseError, UnsafeRequestError
from egress.http._codecs import DecodeError, optional_decoder
from egress.http._url import Params, encode_pairs

__all__ = ["BodyReader", "MAX_ENCODINGS", "encode_body", "parse_json"]

MAX_ENCODINGS = 2
#: The most one ``decompress`` call may produce: what decoding adds to memory over the body.
PIECE = 64 * 1024
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_UNSET: Any = object()


def encode_body(json: Any = _UNSET, form: Params | None = None,
                content: bytes | None = None, secrets: list[str] | None = None,
                ) -> tuple[bytes | None, str | None]:
    """(body bytes, content type) from exactly one of ``json``, ``form`` or ``content``.

    ``secrets``, if given, receives the value of every ``Secret`` met in ``json``."""
    given = (json is not _UNSET) + (form is not None) + (content is not None)
    if given > 1:
        raise UnsafeRequestError("give at most one of json=, form= and content=")
    if json is not _UNSET:
        try:
            text = _json.dumps(json, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                               default=_reveal_secret if secrets is None else
                               lambda value: _noted(_reveal_secret(value), secrets))
            data = text.encode()
        # RecursionError: nesting deeper than the interpreter's stack; UnicodeEncodeError (a
        # ValueError): a lone surrogate, which has no UTF-8 form.
        except (TypeError, ValueError, RecursionError) as exc:
            raise UnsafeRequestError(f"json= cannot be encoded: {type(exc).__name__}") from None
        return RevealedBytes(data), "application/json"
    # Bodies can hold card data or keys: kept in bytes whose repr shows only their length.
    if form is not None:
        try:
            data = urlencode(encode_pairs(form)).encode("ascii")
        except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form to percent-encode
            raise UnsafeRequestError("form= holds text that is not valid Unicode (a lone "
                                     "surrogate)") from None
        return RevealedBytes(data), "application/x-www-form-urlencoded"
    if content is not None:
        if not isinstance(content, bytes | bytearray | memoryview):
            raise UnsafeRequestError("content= must be bytes")
        return RevealedBytes(content), None
    return None, None


def _reveal_secret(value: object) -> str:
    """``json.dumps`` hook: an ``egress.Secret`` in ``json=`` is sent as its string."""
    if isinstance(value, Secret):
        return value.reveal()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _noted(value: str, found: list[str]) -> str:
    found.append(value)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate keys in a JSON object")
    return result


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf: as non-JSON as the literal Infinity
        raise ValueError("a number too large for a float is not valid JSON here")
    return value


def parse_json(content: bytes) -> Any:
    """Strict JSON: no NaN/Infinity (nor numbers that overflow to it, like ``1e400``), no
    duplicate keys; bad input raises :class:`ResponseError`."""
    try:
        return _json.loads(content, parse_constant=_refuse_constant, parse_float=_finite_float,
                           object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ResponseError(f"response body is not valid JSON ({type(exc).__name__})",
                            reason="malformed") from None


def _oversized(cap: int, what: str) -> ResponseError:
    return ResponseError(f"response body larger than max_response_bytes ({cap}); {what}",
                         reason="oversized")


class BodyReader:
    """Collects a response body, raw chunk by raw chunk, under the cap; decodes as it goes.

    Memory stays within the body (at most the cap) plus a small constant: every ``decompress``
    call yields at most :data:`PIECE` bytes, each layer of a coding chain hands its output on
    piece by piece, and the body grows in one buffer whose bytes become the result without a
    copy (a list of chunks joined at the end would hold the body twice).
    """

    __slots__ = ("_buffer", "_cap", "_decoders", "_first", "_produced", "_raw", "feed", "plain")

    feed: Callable[[bytes], None]

    def __init__(self, cap: int, content_encoding: str | None,
                 content_length: int | None) -> None:
        self._cap = cap
        self._first: bytes | None = None  # a body of one chunk is kept as it came (no copy)
        self._buffer: io.BytesIO | None = None
        self._raw = 0
        self._produced = 0
        if content_length is not None and content_length > cap:
            raise _oversized(cap, f"declared Content-Length {content_length}")
        self._decoders: list[Any] = []
        if content_encoding:
            codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
            codings = [c for c in codings if c != "identity"]
            if len(codings) > MAX_ENCODINGS:
                raise ResponseError(f"response has {len(codings)} content codings; at most "
                                    f"{MAX_ENCODINGS} are accepted", reason="encoding")
            for coding in reversed(codings):  # the last applied is undone first
                wbits = _DECODERS.get(coding)
                decoder = (zlib.decompressobj(wbits) if wbits is not None
                           else optional_decoder(coding))  # br, zstd: when installed
                if decoder is None:
                    raise ResponseError("response has an unsupported content coding",
                                        reason="encoding")
                self._decoders.append(decoder)
        #: No content coding: the raw bytes are the body.
        self.plain = not self._decoders
        self.feed = self._feed_decoded if self._decoders else self._feed_plain

    def _keep(self, part: bytes) -> None:
        if self._first is None and self._buffer is None:
            self._first = part
            return
        buffer = self._buffer
        if buffer is None:
            buffer = self._buffer = io.BytesIO()
            buffer.write(self._first or b"")
            self._first = None
        buffer.write(part)

    def _feed_plain(self, chunk: bytes) -> None:
        self._raw += len(chunk)
        if self._raw > self._cap:
            raise _oversized(self._cap, "while reading")
        self._keep(chunk)

    def _feed_decoded(self, chunk: bytes) -> None:
        self._raw += len(chunk)
        if self._raw > self._cap:
            raise _oversized(self._cap, "while reading")
        try:
            self._inflate(0, chunk)
        except (zlib.error, DecodeError):
            raise ResponseError("response body is not valid compressed data",
                                reason="encoding") from None

    def _inflate(self, level: int, data: bytes) -> None:
        """Decode ``data`` with decoder ``level`` and hand each piece to the next one."""
        decoder = self._decoders[level]
        last = level + 1 == len(self._decoders)
        while True:
            piece = decoder.decompress(data, PIECE)
            if piece:
                if not last:
                    self._inflate(level + 1, piece)
                else:
                    self._produced += len(piece)
                    if self._produced > self._cap:
                        raise _oversized(self._cap, "after decompression")
                    self._keep(piece)
            data = decoder.unconsumed_tail
            # A full piece may leave output pending inside zlib even with no input left.
            if not data and len(piece) < PIECE:
                return

    def finish(self) -> bytes:
        """The decoded body; raises if a compressed stream ended early.

        No bytes at all is an empty body, whatever the content coding says (servers label
        empty answers too); a stream cut short shows as a started but unfinished stream.
        """
        if self._raw == 0:
            return b""
        for decoder in self._decoders:
            if not decoder.eof:
                raise ResponseError("compressed response body ended early", reason="truncated")
        if self._buffer is not None:
            body = self._buffer.getvalue()  # the buffer's own bytes: no copy
            self._buffer = None
            return body
        return self._first or b""
