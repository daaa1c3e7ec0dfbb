"""Server hints, parsed in pure code: how long the server asks us to wait.

* ``Retry-After`` in both forms (RFC 9110 §10.2.3): delay-seconds (``"120"``) or an HTTP-date,
  turned into seconds from ``wall`` (the clock's Unix time). A date in the past gives ``0.0``;
  negative, fractional or malformed values give ``None`` (the caller's own backoff applies); huge
  values are capped at :data:`MAX_HINT` so they stay finite (Retry then refuses to wait that long).
* ``RateLimit`` / ``RateLimit-Policy`` (the IETF httpapi drafts, structured-field form
  ``"default";r=0;t=30`` and the older ``limit=100, remaining=0, reset=30``) and the older
  ``RateLimit-Remaining`` / ``RateLimit-Reset`` fields.
* ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset``: a reset above one billion is read as a Unix
  time (GitHub), anything smaller as seconds.

Nothing here raises on hostile input: every parser returns ``None`` for what it cannot read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from egress.http._headers import Headers

__all__ = ["MAX_HINT", "RateLimitInfo", "parse_rate_limit", "parse_retry_after", "server_hint"]

#: The largest wait a hint can express (one day); larger values are capped to it.
MAX_HINT = 86_400.0
_EPOCH_THRESHOLD = 1_000_000_000
_MAX_FIELD = 1024
# asctime-date (RFC 9110 §5.6.7): "Sun Nov  6 08:49:37 1994" (the day of month space-padded).
_ASCTIME = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}", re.ASCII)


def parse_retry_after(value: str | None, wall: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or ``None`` if absent or malformed."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # Digit-count check first: int() of thousands of digits is refused by CPython anyway.
        return MAX_HINT if len(text) > 9 else min(float(int(text)), MAX_HINT)
    if not text or len(text) > _MAX_FIELD:
        return None
    if not any(c.isalpha() for c in text):
        return None  # "-1", "1.0", "+5", "²": not delay-seconds, not a date
    from email.utils import parsedate_to_datetime  # here: email costs ~5% of egress.http's import

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is not None and when.tzinfo is None and _ASCTIME.fullmatch(text):
        # asctime-date carries no zone and is GMT by definition; RFC 9110 §5.6.7: a recipient
        # MUST accept all three HTTP-date forms. Any other zoneless date stays refused.
        from datetime import UTC  # loaded already, by email.utils

        when = when.replace(tzinfo=UTC)
    if when is None or when.tzinfo is None:
        return None
    try:
        delta = when.timestamp() - wall
    except (OverflowError, OSError, ValueError):
        return None
    if not math.isfinite(delta):
        return None
    return min(max(delta, 0.0), MAX_HINT)


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What the server said about its quota. Fields are ``None`` when not given."""

    limit: float | None = None
    remaining: float | None = None
    reset: float | None = None  # seconds from now until the quota refills
    window: float | None = None  # the policy's window, seconds


_KEYS = {
    "q": "limit", "limit": "limit", "l": "limit",
    "r": "remaining", "remaining": "remaining",
    "t": "reset", "reset": "reset",
    "w": "window", "window": "window",
}


def _number(text: str) -> float | None:
    text = text.strip().strip('"')
    if not text or len(text) > 20:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def _fields(value: str) -> dict[str, float]:
    """Numbers from a structured-field or ``key=value`` list; the first value of each key wins."""
    found: dict[str, float] = {}
    for item in value[: _MAX_FIELD * 4].split(","):
        for param in item.split(";"):
            key, sep, raw = param.partition("=")
            if not sep:
                continue
            name = _KEYS.get(key.strip().lower())
            number = _number(raw)
            if name is not None and number is not None and name not in found:
                found[name] = number
    return found


def parse_rate_limit(headers: Headers, wall: float) -> RateLimitInfo | None:
    """The quota the server described, from any of the header families, or ``None``."""
    found: dict[str, float] = {}
    combined = headers.get("ratelimit")
    if combined:
        found.update(_fields(combined))
    policy = headers.get("ratelimit-policy")
    if policy:
        for key, value in _fields(policy).items():
            found.setdefault(key, value)
    for prefix in ("ratelimit-", "x-ratelimit-"):
        for name in ("limit", "remaining", "reset"):
            if name in found:
                continue
            raw = headers.get(prefix + name)
            number: float | None = _number(raw) if raw is not None else None
            if number is not None:
                found[name] = number
    if not found:
        return None
    reset = found.get("reset")
    if reset is not None and reset >= _EPOCH_THRESHOLD:
        reset = max(reset - wall, 0.0)
    if reset is not None:
        reset = min(reset, MAX_HINT)
    return RateLimitInfo(limit=found.get("limit"), remaining=found.get("remaining"), reset=reset,
                         window=found.get("window"))


def server_hint(status: int, headers: Headers, wall: float) -> float | None:
    """Seconds the server asks us to wait before trying again, or ``None``.

    ``Retry-After`` wins; otherwise, on a 429 or 503, the reset of an exhausted quota.
    """
    retry_after = parse_retry_after(headers.get("retry-after"), wall)
    if retry_after is not None:
        return retry_after
    if status not in (429, 503):
        return None
    info = parse_rate_limit(headers, wall)
    if info is None or info.reset is None:
        return None
    if info.remaining is None or info.remaining < 1 or status == 429:
        return info.reset
    return None
