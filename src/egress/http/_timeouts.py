"""Per-attempt time limits, and how the call's deadline narrows them.

Every attempt gets connect, read, write and pool timeouts plus a *total* limit for the whole
exchange (headers and body), so a server dripping one byte at a time cannot hold an attempt past
it. Each is the smaller of its own setting and what remains of the call's deadline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from egress.errors import ConfigurationError, DeadlineExceededError

__all__ = ["AttemptLimits", "Timeouts", "DEFAULT_TIMEOUTS"]

DEFAULT_CONNECT = 5.0
DEFAULT_READ = 30.0
DEFAULT_WRITE = 30.0
DEFAULT_POOL = 5.0
DEFAULT_TOTAL = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Time limits of one attempt, in seconds.

    ===========  =======  ==============================================================
    setting      default  meaning
    ===========  =======  ==============================================================
    ``connect``  5.0      open the TCP connection (and TLS handshake)
    ``read``     30.0     longest wait for any byte of the answer
    ``write``    30.0     longest wait to send a chunk of the request (httpx, stdlib)
    ``pool``     5.0      wait for a free pooled connection
    ``total``    30.0     the whole attempt, from send to the last byte of the body
    ===========  =======  ==============================================================
    """

    connect: float = DEFAULT_CONNECT
    read: float = DEFAULT_READ
    write: float = DEFAULT_WRITE
    pool: float = DEFAULT_POOL
    total: float = DEFAULT_TOTAL

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool", "total"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value) or value <= 0):
                raise ConfigurationError(
                    f"Timeouts: {name} must be a positive finite number of seconds, got {value!r}"
                )

    def limits(self, now: float, deadline: float | None) -> AttemptLimits:
        """The limits of an attempt starting at ``now`` under an absolute ``deadline``."""
        end = now + self.total
        by_deadline = False
        if deadline is not None:
            if deadline <= now:
                raise DeadlineExceededError("deadline exceeded before the attempt could start")
            if deadline < end:
                end = deadline
                by_deadline = True
        return AttemptLimits(self, end, by_deadline, now)  # (positional: on every attempt)


DEFAULT_TIMEOUTS = Timeouts()


class AttemptLimits:
    """The limits of one attempt: absolute end (clock time) and the per-operation timeouts."""

    __slots__ = ("by_deadline", "end", "start", "timeouts")

    def __init__(self, timeouts: Timeouts, end: float, by_deadline: bool,
                 start: float) -> None:
        self.timeouts = timeouts
        #: Clock time the attempt started; ``end - start`` is how long it was allowed.
        self.start = start
        self.end = end
        #: True when the call's deadline, not the attempt's own total, set ``end``.
        self.by_deadline = by_deadline

    def at(self, now: float) -> tuple[float, float, float, float, float]:
        """(connect, read, write, pool, total) seconds, each capped by what remains at ``now``."""
        left = self.end - now
        if left <= 0:
            left = 1e-3  # the backend times out at once; mapped to the right error by the caller
        t = self.timeouts
        return (min(t.connect, left), min(t.read, left), min(t.write, left), min(t.pool, left),
                left)

    def __repr__(self) -> str:
        return f"AttemptLimits(end={self.end!r}, by_deadline={self.by_deadline})"
