"""A retry budget shared by the fleet: the ratio budget's counts in one Redis hash.

Calls are counted locally and added to Redis in batches (at most every ``_FLUSH_EVERY`` seconds
per instance, and with every retry asked for), so the happy path costs no round trip per call.
A retry is decided atomically in Redis against the fleet's calls and retries of the window.
While Redis is unreachable the local budget decides (fail-open: it still caps this instance's
retries at its own ratio); ``fail_open=False`` refuses retries instead.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Final

from egress.policies.budget import RatioBudgetState
from egress.stores.redis._link import REDIS_ERRORS, RedisLink

__all__ = ["RedisRatioBudgetState"]

_BUCKETS: Final = 10
_FLUSH_EVERY: Final = 0.5

# KEYS: budget hash (fields c<epoch>, r<epoch>).
# ARGV: bucket_width_us, calls to add, take a retry ('1'/'0'), percent, floor.
# Returns 1 when the retry is granted (or none was asked), 0 when refused.
_BUDGET: Final = f"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local width = tonumber(ARGV[1])
local epoch = math.floor(now / width)
local oldest = epoch - {_BUCKETS} + 1
local all = redis.call('HGETALL', KEYS[1])
local calls, retries = 0, 0
for i = 1, #all, 2 do
  local e = tonumber(string.sub(all[i], 2))
  if e < oldest then
    redis.call('HDEL', KEYS[1], all[i])
  elseif string.sub(all[i], 1, 1) == 'c' then
    calls = calls + tonumber(all[i + 1])
  else
    retries = retries + tonumber(all[i + 1])
  end
end
local add = tonumber(ARGV[2])
if add > 0 then
  redis.call('HINCRBY', KEYS[1], 'c' .. epoch, add)
  calls = calls + add
end
local granted = 1
if ARGV[3] == '1' then
  if retries + 1 > tonumber(ARGV[4]) * calls + tonumber(ARGV[5]) then
    granted = 0
  else
    redis.call('HINCRBY', KEYS[1], 'r' .. epoch, 1)
  end
end
redis.call('PEXPIRE', KEYS[1], math.floor(width * {_BUCKETS} / 1000) * 2 + 1000)
return granted
"""


class RedisRatioBudgetState:
    """The methods of :class:`~egress.policies.budget.RatioBudgetState`, counts in Redis.

    ``record_call_async`` and ``try_retry_async`` are the same decisions through the asyncio
    client (Retry's async pump awaits them when present), so an async caller never blocks its
    event loop on a Redis round trip.
    """

    def __init__(self, link: RedisLink, name: str, local: RatioBudgetState,
                 fail_open: bool) -> None:
        percent, min_per_second, window = local.settings
        self.settings = local.settings
        self._link = link
        self._keys = [link.key("budget", name)]
        self._local = local
        self._fail_open = fail_open
        self._width_us = max(1, round(window * 1_000_000 / _BUCKETS))
        self._percent = percent
        self._floor = min_per_second * window
        self._pending = 0
        self._next_flush = -math.inf
        self._lock = threading.Lock()
        self._script = link.client.register_script(_BUDGET)
        self._script_async: Any = None

    def __repr__(self) -> str:
        return f"RedisRatioBudgetState({self._keys[0]!r})"

    # -- the decisions (shared by the sync and the async pump) -----------------------------------

    def _args(self, take: bool) -> list[object]:
        """The script's arguments: the pending calls (handed over now), maybe take a retry."""
        with self._lock:
            pending, self._pending = self._pending, 0
        return [self._width_us, pending, "1" if take else "0", repr(self._percent),
                repr(self._floor)]

    def _due(self, now: float) -> bool:
        """Count a call locally; whether its batch is due for Redis now."""
        self._local.record_call(now)
        with self._lock:
            self._pending += 1
            due = now >= self._next_flush
            if due:
                self._next_flush = now + _FLUSH_EVERY
        return due and self._link.usable()

    def _verdict(self, local: float | None, granted: bool | None) -> float | None:
        """Redis's answer when it gave one; else the local budget's (fail-open) or a refusal."""
        if granted is not None:
            return 1.0 if granted else None
        return local if self._fail_open else None

    # -- the pumps: one round trip each ----------------------------------------------------------

    def _run(self, take: bool) -> bool | None:
        """One round trip: add the pending calls, maybe take a retry. None when Redis failed."""
        try:
            granted = self._script(keys=self._keys, args=self._args(take))
        except REDIS_ERRORS as exc:
            self._link.failed(exc)
            return None
        self._link.succeeded()
        return bool(granted)

    async def _run_async(self, take: bool) -> bool | None:
        """:meth:`_run` through the asyncio client."""
        link = self._link
        client = link.async_client()
        script = self._script_async
        if script is None:
            script = self._script_async = client.register_script(_BUDGET)
        try:
            granted = await script(keys=self._keys, args=self._args(take), client=client)
        except REDIS_ERRORS as exc:
            await link.failed_async(exc)
            return None
        link.succeeded()
        return bool(granted)

    def record_call(self, now: float) -> None:
        if self._due(now):
            self._run(take=False)

    async def record_call_async(self, now: float) -> None:
        if self._due(now):
            await self._run_async(take=False)

    def try_retry(self, now: float, timeout: bool) -> float | None:
        local = self._local.try_retry(now, timeout)  # kept in step: the fallback when needed
        return self._verdict(local, self._run(take=True) if self._link.usable() else None)

    async def try_retry_async(self, now: float, timed_out: bool) -> float | None:
        local = self._local.try_retry(now, timed_out)
        return self._verdict(local,
                             await self._run_async(take=True) if self._link.usable() else None)

    def record_success(self, now: float, refund: float) -> None:
        return None

    def snapshot(self, now: float) -> dict[str, float]:
        return self._local.snapshot(now)
