"""Optional content codings: ``br`` (the ``brotli`` package) and ``zstd`` (``compression.zstd``
on Python 3.14+, else the ``backports.zstd`` package), decoded under the same caps as gzip.

Each decoder speaks the part of :func:`zlib.decompressobj`'s interface that
:class:`~egress.http._body.BodyReader` uses: ``decompress(data, max_length)`` returning at most
about ``max_length`` bytes, ``unconsumed_tail`` and ``eof``. The reader asks for at most what the
cap still allows plus one byte, so a bomb is stopped after at most that much output. A coding is
advertised in ``Accept-Encoding`` only when its package is installed; the packages are imported
when a response actually uses the coding.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

__all__ = ["ACCEPT_ENCODING", "DecodeError", "optional_decoder"]


class DecodeError(Exception):
    """The compressed data is invalid (translated to a ResponseError by the reader)."""


def _zstd_module() -> Any:
    """``compression.zstd`` (3.14+) or ``backports.zstd``, imported; ``None`` if neither."""
    if _ZSTD_NAME is None:
        return None
    from importlib import import_module

    return import_module(_ZSTD_NAME)


def _find_zstd() -> str | None:
    for parent, name in (("compression", "compression.zstd"), ("backports", "backports.zstd")):
        if find_spec(parent) is not None and find_spec(name) is not None:
            return name
    return None


_ZSTD_NAME = _find_zstd()
HAS_BROTLI = find_spec("brotli") is not None
HAS_ZSTD = _ZSTD_NAME is not None

#: What the client advertises: gzip and deflate always; br and zstd when they can be decoded.
ACCEPT_ENCODING = ", ".join(["gzip", "deflate"] + ["br"] * HAS_BROTLI + ["zstd"] * HAS_ZSTD)


class _Brotli:
    __slots__ = ("_brotli", "_decoder")

    unconsumed_tail = b""

    def __init__(self) -> None:
        import brotli  # type: ignore[import-untyped,import-not-found,unused-ignore]

        self._brotli = brotli
        self._decoder = brotli.Decompressor()

    def decompress(self, data: bytes, max_length: int) -> bytes:
        try:
            # With a limit, brotli stops growing its output at max_length: a bomb yields at
            # most about that much before the reader refuses it.
            out: bytes = self._decoder.process(data, output_buffer_limit=max_length)
        except self._brotli.error:
            raise DecodeError("invalid brotli data") from None
        return out

    @property
    def eof(self) -> bool:
        return bool(self._decoder.is_finished())


class _Zstd:
    __slots__ = ("_decoder", "_error")

    unconsumed_tail = b""

    def __init__(self, zstd: Any) -> None:
        self._decoder = zstd.ZstdDecompressor()
        self._error = zstd.ZstdError

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._decoder.eof:
            return b""  # bytes after the frame are ignored, as zlib ignores them after gzip
        try:
            out: bytes = self._decoder.decompress(data, max_length)
        except (self._error, EOFError):
            raise DecodeError("invalid zstd data") from None
        return out

    @property
    def eof(self) -> bool:
        return bool(self._decoder.eof)


def optional_decoder(coding: str) -> Any | None:
    """A decoder for ``br`` or ``zstd`` when its package is installed, else ``None``."""
    if coding == "br" and HAS_BROTLI:
        return _Brotli()
    if coding == "zstd" and HAS_ZSTD:
        return _Zstd(_zstd_module())
    return None
