"""A token bucket over an injected clock (pure): the fake's own rate limiter."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked; each request takes one."""

    def __init__(self, *, rate: float, burst: int, now: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._now = now
        self._tokens = float(burst)
        self._stamp = now()
        self._lock = threading.Lock()

    def take(self) -> float | None:
        """``None`` if a token was taken, else the seconds until one will be available."""
        with self._lock:
            now = self._now()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return (1.0 - self._tokens) / self.rate
