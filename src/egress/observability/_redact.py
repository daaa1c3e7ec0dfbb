"""Redaction by construction for everything observability writes (log records, labels, spans).

Values are reduced before they reach a record, not scrubbed after: a typed :class:`Secret`
renders ``***``; mappings of headers keep only allow-listed names; bytes never appear (only
their length); and every string is passed through :func:`redact_text`, which drops query
strings and masks card numbers (Luhn-valid runs of 13-19 digits, spaced or not), CVC values,
bearer/basic credentials and provider key shapes (``sk_live_…``, ``whsec_…``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from egress._secret import Secret

__all__ = ["ALLOWED_HEADERS", "MASK", "redact_headers", "redact_text", "redact_value"]

MASK: Final = "***"

#: The only headers observability ever records (lower-case). Everything else is dropped.
ALLOWED_HEADERS: Final = frozenset({
    "accept", "content-type", "content-length", "content-encoding", "date", "retry-after",
    "request-id", "x-request-id", "idempotent-replayed", "stripe-should-retry",
    "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "x-ratelimit-limit",
    "x-ratelimit-remaining", "x-ratelimit-reset", "user-agent", "location",
})

_QUERY = re.compile(r"(?<=[\w/.\-\]])\?[^\s\"'<>#]+")
_CARD = re.compile(r"(?<![\w])(?:\d[ -]?){12,18}\d(?![\w])")
_CVC = re.compile(
    r"(?i)((?:cvc|cvv|cvc2|cvv2|csc|security[_ ]?code)[\"'\]]?\s*[:=]\s*[\"']?)\d{3,4}")
_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+")
_KEY = re.compile(r"\b((?:sk|rk|pk)_(?:live|test)_|whsec_)[A-Za-z0-9]+")
_KEYED = re.compile(
    r"(?i)\b((?:api[_-]?key|access[_-]?token|client[_-]?secret|password|secret|token)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return "[card]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def redact_text(text: str) -> str:
    """``text`` with query strings dropped and secret shapes masked."""
    if "?" in text:
        text = _QUERY.sub("", text)
    if any(c.isdigit() for c in text):
        text = _CARD.sub(_card, text)
        text = _CVC.sub(lambda m: m.group(1) + MASK, text)
    text = _CREDENTIAL.sub(lambda m: m.group(1) + " " + MASK, text)
    text = _KEY.sub(lambda m: m.group(1) + MASK, text)
    return _KEYED.sub(lambda m: m.group(1) + MASK, text)


def redact_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Only the allow-listed headers, their values redacted."""
    return {str(name).lower(): redact_text(str(value)) for name, value in headers.items()
            if str(name).lower() in ALLOWED_HEADERS}


def redact_value(value: Any) -> Any:
    """A value made safe for a record: scalars kept, strings redacted, the rest reduced."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"  # bodies never reach a record
    if isinstance(value, Mapping):
        return redact_headers(value)
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return redact_text(str(value))
