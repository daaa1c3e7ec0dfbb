"""Redaction of text that leaves the seam in an exception (body excerpts).

Known secrets (the client's own credentials) are removed by value; API-key-shaped strings, bearer
tokens, card numbers and JSON fields with secret-sounding names are masked by shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["EXCERPT_LENGTH", "excerpt", "redact"]

EXCERPT_LENGTH = 200

_KEY = re.compile(r"\b((?:sk|rk|pk|whsec|sess|tok)_(?:live_|test_)?)[A-Za-z0-9]{6,}")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")
_CARD = re.compile(r"\b\d(?:[ -]?\d){11,18}\b")
_FIELD = re.compile(
    r'(?i)("(?:password|passwd|secret|client_secret|token|access_token|refresh_token|api_key|'
    r'apikey|authorization|cvc|cvv|card_number)"\s*:\s*)"[^"]*"'
)


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "****" + digits[-4:]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with known secret values and secret-shaped substrings masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _KEY.sub(r"\1[redacted]", text)
    text = _BEARER.sub(r"\1 [redacted]", text)
    text = _FIELD.sub(r'\1"[redacted]"', text)
    return _CARD.sub(_mask_card, text)


def excerpt(body: bytes, secrets: Iterable[str] = (), limit: int = EXCERPT_LENGTH) -> str:
    """A short, printable, redacted prefix of ``body`` for logs and exceptions."""
    # Redact a little more than the limit so a secret cut at the edge is still recognised.
    text = body[: limit * 4].decode("utf-8", errors="replace")
    text = "".join(c if c.isprintable() else " " for c in text)
    return redact(text, secrets)[:limit]
