"""Bodies: request encoding (once per logical call, so every attempt sends the same bytes) and
bounded response decoding (no decompression bombs, no unbounded buffers).

The response cap applies three times: to the declared ``Content-Length`` (refused before reading),
to the bytes read from the wire, and to the decoded bytes (each ``decompress`` call is asked for at
most what the cap still allows). At most :data:`MAX_ENCODINGS` content codings are accepted.
"""

from __future__ import annotations

import json as _json
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from egress.errors import ResponseError, UnsafeRequestError
from egress.http._codecs import DecodeError, optional_decoder
from egress.http._url import Params, encode_pairs

__all__ = ["BodyReader", "MAX_ENCODINGS", "encode_body", "parse_json"]

MAX_ENCODINGS = 2
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_UNSET: Any = object()


def encode_body(json: Any = _UNSET, form: Params | None = None,
                content: bytes | None = None) -> tuple[bytes | None, str | None]:
    """(body bytes, content type) from exactly one of ``json``, ``form`` or ``content``."""
    given = (json is not _UNSET) + (form is not None) + (content is not None)
    if given > 1:
        raise UnsafeRequestError("give at most one of json=, form= and content=")
    if json is not _UNSET:
        try:
            text = _json.dumps(json, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise UnsafeRequestError(f"json= cannot be encoded: {type(exc).__name__}") from None
        return text.encode(), "application/json"
    if form is not None:
        return urlencode(encode_pairs(form)).encode("ascii"), "application/x-www-form-urlencoded"
    if content is not None:
        if not isinstance(content, bytes | bytearray | memoryview):
            raise UnsafeRequestError("content= must be bytes")
        return bytes(content), None
    return None, None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate keys in a JSON object")
    return result


def parse_json(content: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no duplicate keys; bad input raises :class:`ResponseError`."""
    try:
        return _json.loads(content, parse_constant=_refuse_constant,
                           object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ResponseError(f"response body is not valid JSON ({type(exc).__name__})",
                            reason="malformed") from None


def _oversized(cap: int, what: str) -> ResponseError:
    return ResponseError(f"response body larger than max_response_bytes ({cap}); {what}",
                         reason="oversized")


class BodyReader:
    """Collects a response body, raw chunk by raw chunk, under the cap; decodes as it goes."""

    __slots__ = ("_cap", "_chunks", "_decoders", "_produced", "_raw", "feed", "plain")

    feed: Callable[[bytes], None]

    def __init__(self, cap: int, content_encoding: str | None,
                 content_length: int | None) -> None:
        self._cap = cap
        self._chunks: list[bytes] = []
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

    def _feed_plain(self, chunk: bytes) -> None:
        self._raw += len(chunk)
        if self._raw > self._cap:
            raise _oversized(self._cap, "while reading")
        self._chunks.append(chunk)

    def _feed_decoded(self, chunk: bytes) -> None:
        self._raw += len(chunk)
        if self._raw > self._cap:
            raise _oversized(self._cap, "while reading")
        data = [chunk]
        for decoder in self._decoders:
            data = [part for piece in data for part in self._inflate(decoder, piece)]
        for part in data:
            self._produced += len(part)
            if self._produced > self._cap:
                raise _oversized(self._cap, "after decompression")
            self._chunks.append(part)

    def _inflate(self, decoder: Any, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        produced = self._produced
        try:
            while data:
                # Never ask for more than the cap still allows, plus one byte to detect overflow.
                piece = decoder.decompress(data, self._cap - produced + 1)
                produced += len(piece)
                if produced > self._cap:
                    raise _oversized(self._cap, "after decompression")
                out.append(piece)
                data = decoder.unconsumed_tail
        except (zlib.error, DecodeError):
            raise ResponseError("response body is not valid compressed data",
                                reason="encoding") from None
        return out

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
        chunks = self._chunks
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)
