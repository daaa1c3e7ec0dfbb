"""Whether a failure is a refused server certificate: the one check every httpx-based path
shares (the httpx backend of ApiClient and ResilientTransport), so both judge it permanent."""

from __future__ import annotations

import ssl

__all__ = ["refused_certificate"]


def refused_certificate(exc: BaseException) -> bool:
    """Whether an ssl certificate check is behind ``exc`` (httpx chains httpcore's error)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        current, seen = current.__cause__ or current.__context__, seen + 1
    return False
