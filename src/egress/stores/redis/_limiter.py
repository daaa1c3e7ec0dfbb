"""A rate limiter's state in Redis: GCRA decided by one Lua script, one round trip per acquire.

The script reads the server's ``TIME``, so the fleet shares one clock whatever the instances'
clocks say. Times travel as integer microseconds (Lua numbers are doubles: exact to 2**53 us).
One key holds the limiter's ``tat`` (theoretical arrival time), another the end of a server hint's
pause (set by any instance); a sorted set next to them counts the instances using the limiter
(each one refreshes its entry at most once a second, inside the same script), so that when Redis
fails each instance falls back to a local limiter at its *share* of the rate.
"""

from __future__ import annotations

import math
import uuid
from typing import Any, Final

from egress.policies.ratelimit import LimiterState
from egress.stores.redis._link import REDIS_ERRORS, RedisLink

__all__ = ["RedisLimiterState"]

_US: Final = 1_000_000
_PAUSE_SLACK_US: Final = 1_000  # the same hint seen twice a moment apart is the same pause
_BEAT_EVERY: Final = 1.0  # seconds between an instance's membership refreshes

# KEYS: tat, pause end, members (zset). Each key holds a plain string with its own expiry, so an
# acquire is TIME, MGET, SET: the fewest commands that decide and record. Numbers go to
# redis.call as numbers: Redis writes them with 17 digits, exact for integer microseconds. The
# limiter's interval and tolerance (us) are written into its script: fewer arguments to send and
# parse on every call; each limiter's script is loaded once per Redis.
# ARGV: max_wait_us, deadline_us ('' = none), member ('' = no beat).
# Returns {wait_us (granted) or -1 - wait_us (refused), server_now_us, tat_us, paused_us,
# members (0 = not counted)}.
_ACQUIRE: Final = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local st = redis.call('MGET', KEYS[1], KEYS[2])
local tat = tonumber(st[1]) or 0
local paused = tonumber(st[2]) or 0
local allow = tat - %(tolerance)d
if allow < now then allow = now end
if allow < paused then allow = paused end
local wait = allow - now
local members = 0
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[3], now, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 5000000)  -- silent 5 s: gone
  redis.call('PEXPIRE', KEYS[3], 10000)
  members = redis.call('ZCARD', KEYS[3])
end
if wait > tonumber(ARGV[1]) or (ARGV[2] ~= '' and wait > tonumber(ARGV[2])) then
  return {-1 - wait, now, tat, paused, members}
end
if tat < allow then tat = allow end
tat = tat + %(interval)d
-- Kept a second past the tat: an expired tat is one in the past, the same as a full bucket.
redis.call('SET', KEYS[1], tat, 'PX', math.floor((tat - now) / 1000) + 1000)
return {wait, now, tat, paused, members}
"""

# KEYS: tat, pause end. ARGV: seconds_us from now, tolerance_us.
# Returns {extended 0/1, paused_us, server_now_us}. The bucket starts empty when the pause ends.
_PAUSE: Final = f"""
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local untl = now + tonumber(ARGV[1])
local st = redis.call('MGET', KEYS[1], KEYS[2])
local tat = tonumber(st[1]) or 0
local paused = tonumber(st[2]) or 0
if untl <= paused + {_PAUSE_SLACK_US} then return {{0, paused, now}} end
local empty = untl + tonumber(ARGV[2])
if tat < empty then tat = empty end
redis.call('SET', KEYS[2], untl, 'PX', math.floor((untl - now) / 1000) + 1000)
redis.call('SET', KEYS[1], tat, 'PX', math.floor((tat - now) / 1000) + 1000)
return {{1, untl, now}}
"""

# KEYS: tat. ARGV: the tat this instance's reservation left, interval_us.
_REFUND: Final = """
if tonumber(redis.call('GET', KEYS[1])) == tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], tonumber(ARGV[1]) - tonumber(ARGV[2]), 'KEEPTTL')
  return 1
end
return 0
"""


class RedisLimiterState:
    """The methods of :class:`~egress.policies.ratelimit.LimiterState`, state in Redis.

    ``reserve_async`` is the same decision through the asyncio client (the limiter's async
    driver uses it when present). The other writes (a refund, a server hint's pause) are called
    without ``await`` by the policy; from a thread running an event loop they take effect here at
    once and reach Redis through the asyncio client in a background task, so a slow Redis never
    blocks the loop. When the link is down every method answers from a local
    ``LimiterState`` at ``rate / instances`` (the instances seen in the last seconds, or the
    store's ``fleet_size``), so the fleet as a whole stays near its limit.
    """

    def __init__(self, link: RedisLink, name: str, local: LimiterState,
                 fleet_size: int | None) -> None:
        rate, burst = local.settings
        self.settings = local.settings
        self._link = link
        self._key = link.key("rl", name)
        self._keys = [self._key, self._key + ":pause", self._key + ":members"]
        self._interval_us = max(1, round(_US / rate))
        self._tolerance_us = (burst - 1) * self._interval_us
        self._member = uuid.uuid4().hex
        self._fixed_share = fleet_size
        self._share = fleet_size or 1
        self._fallback = self._local(self._share)
        self._own = local  # this instance's "slow down" series (throttle, calm): kept locally
        self._next_beat = -math.inf
        self._offset = 0.0  # server seconds minus this process's clock seconds
        self._paused = -math.inf  # the shared pause end, on this process's clock
        self._last: tuple[float, float, int] | None = None  # (now, wait, tat_us) reserved here
        client = link.client
        self._source = _ACQUIRE % {"interval": self._interval_us,
                                   "tolerance": self._tolerance_us}
        self._acquire = client.register_script(self._source)
        self._pause = client.register_script(_PAUSE)
        self._refund = client.register_script(_REFUND)
        self._async_scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        rate, burst = self.settings
        return f"RedisLimiterState({self._key!r}, rate={rate}, burst={burst})"

    def _local(self, share: int) -> LimiterState:
        rate, burst = self.settings
        return LimiterState(rate / share, max(1, burst // share))

    @property
    def fallback(self) -> LimiterState:
        """The local limiter used while Redis is unreachable (this instance's share)."""
        return self._fallback

    # -- the acquire script ----------------------------------------------------------------------

    def _args(self, now: float, max_wait: float, deadline: float | None) -> list[object]:
        member = ""
        if now >= self._next_beat:
            self._next_beat = now + _BEAT_EVERY
            member = self._member
        until = "" if deadline is None else math.floor((deadline - now) * _US)
        return [math.floor(max_wait * _US), until, member]

    def _take(self, now: float, reply: list[int]) -> float:
        wait_us, server_us, tat_us, paused_us, members = reply
        offset = server_us / _US - now
        self._offset = offset
        if paused_us:
            self._paused = max(self._paused, paused_us / _US - offset)
        if members and self._fixed_share is None and members != self._share:
            self._share = members
            self._fallback = self._local(members)
        if wait_us >= 0:
            wait = wait_us / _US
            self._last = (now, wait, tat_us)
            return wait
        return (1 + wait_us) / _US if wait_us < -1 else -math.ulp(0.0)

    def reserve(self, now: float, max_wait: float, deadline: float | None = None) -> float:
        link = self._link
        if link.usable():
            try:
                reply = self._acquire(keys=self._keys, args=self._args(now, max_wait, deadline))
            except REDIS_ERRORS as exc:
                link.failed(exc)
            else:
                link.succeeded()
                return self._take(now, reply)
        return self._fallback.reserve(now, max_wait, deadline)

    async def reserve_async(self, now: float, max_wait: float,
                            deadline: float | None = None) -> float:
        link = self._link
        if link.usable():
            try:
                reply = await self._run_async(self._source, self._keys,
                                              self._args(now, max_wait, deadline))
            except REDIS_ERRORS as exc:
                await link.failed_async(exc)
            else:
                link.succeeded()
                return self._take(now, reply)
        return self._fallback.reserve(now, max_wait, deadline)

    async def _run_async(self, source: str, keys: list[str], args: list[object]) -> Any:
        client = self._link.async_client()
        script = self._async_scripts.get(source)
        if script is None:
            script = self._async_scripts[source] = client.register_script(source)
        # ``client=``: a script object serves every loop's client (each loop has its own).
        return await script(keys=keys, args=args, client=client)

    def refund(self, now: float, wait: float) -> None:
        self._fallback.refund(now, wait)
        last = self._last
        if last is None or last[0] != now or last[1] != wait or self._link.down:
            return
        args: list[object] = [last[2], self._interval_us]
        if self._link.in_background(lambda: self._refund_async(args)):
            return
        try:
            self._refund(keys=[self._key], args=args)
        except REDIS_ERRORS as exc:
            self._link.failed(exc)

    async def _refund_async(self, args: list[object]) -> None:
        try:
            await self._run_async(_REFUND, [self._key], args)
        except REDIS_ERRORS as exc:
            await self._link.failed_async(exc)

    # -- pauses (server hints) -------------------------------------------------------------------

    def paused_for(self, now: float) -> float:
        left = self._paused - now if not self._link.down else 0.0
        return max(left, self._fallback.paused_for(now), 0.0)

    @property
    def throttle_level(self) -> int:
        return self._own.throttle_level

    def throttle(self, now: float, pause: Any) -> float | None:
        return self._own.throttle(now, pause)

    def calm(self, sent: float) -> None:
        self._own.calm(sent)

    def pause_until(self, until: float) -> bool:
        self._own.pause_until(until)
        extended = self._fallback.pause_until(until)
        link = self._link
        if not link.usable():
            return extended
        now = link.clock.now()
        args: list[object] = [max(0, math.ceil((until - now) * _US)), self._tolerance_us]
        if self._link.in_background(lambda: self._pause_async(now, args)):
            # Honoured here at once; the fleet learns of it when the write lands (a round trip).
            later = until > self._paused + _PAUSE_SLACK_US / _US
            self._paused = max(self._paused, until)
            return later or extended
        try:
            reply = self._pause(keys=self._keys[:2], args=args)
        except REDIS_ERRORS as exc:
            link.failed(exc)
            return extended
        link.succeeded()
        return self._paused_by(now, reply)

    async def _pause_async(self, now: float, args: list[object]) -> None:
        try:
            reply = await self._run_async(_PAUSE, self._keys[:2], args)
        except REDIS_ERRORS as exc:
            await self._link.failed_async(exc)
        else:
            self._link.succeeded()
            self._paused_by(now, reply)

    def _paused_by(self, now: float, reply: list[Any]) -> bool:
        shared, paused_us, server_us = (int(x) for x in reply)
        self._offset = server_us / _US - now
        # Never shorten a pause already honoured here (the background path set it locally).
        self._paused = max(self._paused, paused_us / _US - self._offset)
        return bool(shared)
