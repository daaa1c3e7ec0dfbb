"""An advisory breaker signal: each instance decides; the fleet only hurries a failing one.

Shared breaker *state* would let one sick instance (a bad network path, a broken pod) open the
breaker for the whole fleet, the reason resilience4j and Polly declined to share it. So every
instance keeps its own breaker state, and only reports, at most once a second and only when a
call of its own failed, "I am seeing failures" into a sorted set. When at least ``quorum``
instances reported within ``window`` seconds, an instance that is itself failing opens now
instead of waiting for its own minimum number of calls. A healthy instance never opens because
of the signal, and one failing instance alone never counts as a quorum.
"""

from __future__ import annotations

import math
import uuid
from typing import Any, Final

from egress.policies.breaker import CircuitState
from egress.stores.redis._link import REDIS_ERRORS, RedisLink

__all__ = ["RedisBreakerSignal"]

_REPORT_EVERY: Final = 1.0

# KEYS: failing instances (zset). ARGV: this instance, window_us. Returns how many reported.
_SIGNAL: Final = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.floor(ARGV[2] / 1000) + 1000)
return redis.call('ZCARD', KEYS[1])
"""


class RedisBreakerSignal:
    """A local breaker state plus the fleet's failure signal; every other attribute and method
    is the local state's own."""

    def __init__(self, link: RedisLink, name: str, local: Any, quorum: int,
                 window: float) -> None:
        self._local = local
        self._link = link
        self._keys = [link.key("breaker", name)]
        self._member = uuid.uuid4().hex
        self._quorum = quorum
        self._window_us = math.ceil(window * 1_000_000)
        self._next_report = -math.inf
        self._script = link.client.register_script(_SIGNAL)
        self._script_async: Any = None
        #: Instances that reported failures in the window, as last seen (0: none yet).
        self.failing_instances = 0

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._local, name)
        if callable(value):  # a bound method: look it up once
            object.__setattr__(self, name, value)
        return value

    def __repr__(self) -> str:
        return f"RedisBreakerSignal({self._keys[0]!r}, quorum={self._quorum})"

    def on_failure(self, gen: int, start: float, end: float) -> Any:
        """The local state's verdict, plus an early opening when the fleet has a quorum (the
        driver emits the notices of both)."""
        notices = self._local.on_failure(gen, start, end)
        if self._due(end):
            notices = self._hurry(notices, end, self._report())
        return notices

    async def on_failure_async(self, gen: int, start: float, end: float) -> Any:
        """:meth:`on_failure`, reporting through the asyncio client (the breaker's async
        drivers await it)."""
        notices = self._local.on_failure(gen, start, end)
        if self._due(end):
            notices = self._hurry(notices, end, await self._report_async())
        return notices

    # -- the decisions (shared by both pumps) ----------------------------------------------------

    def _due(self, end: float) -> bool:
        """Whether this failure reports (at most once a second) and Redis is worth trying."""
        if end < self._next_report:
            return False
        self._next_report = end + _REPORT_EVERY
        return self._link.usable()  # Redis down: the local breaker alone decides

    def _hurry(self, notices: Any, end: float, count: int | None) -> Any:
        """Open now when a quorum of instances is failing and this one is still closed."""
        if count is None:
            return notices
        self.failing_instances = count
        if count >= self._quorum and self._local.state is CircuitState.CLOSED:
            notices = (*notices, *self._local.transition(CircuitState.OPEN, end))
        return notices

    # -- the pumps: one round trip each; how many instances reported, None when Redis failed ---

    def _report(self) -> int | None:
        link = self._link
        try:
            count = int(self._script(keys=self._keys, args=[self._member, self._window_us]))
        except REDIS_ERRORS as exc:
            link.failed(exc)
            return None
        link.succeeded()
        return count

    async def _report_async(self) -> int | None:
        link = self._link
        client = link.async_client()
        script = self._script_async
        if script is None:
            script = self._script_async = client.register_script(_SIGNAL)
        try:
            count = int(await script(keys=self._keys, args=[self._member, self._window_us],
                                     client=client))
        except REDIS_ERRORS as exc:
            await link.failed_async(exc)
            return None
        link.succeeded()
        return count
