"""The link to Redis: the clients, a short timeout, and a backoff while Redis is unreachable.

Every shared state of one :class:`~egress.stores.redis.RedisStore` goes through one link. When a
command fails (refused, reset, or slower than ``timeout``), the link is *down*: callers use their
local fallback without touching the network, and one caller probes again after a backoff
(doubling from ``retry_min`` to ``retry_max``). The first success brings every state back to
shared. Each change emits an event, so going local is never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import redis
import redis.asyncio
from redis.backoff import NoBackoff

from egress._clock import SYSTEM_CLOCK, Clock
from egress.errors import ConfigurationError
from egress.events import NULL_SINK, Event, EventSink
from egress.stores.redis._sentinel import (
    aclose_owned,
    close_owned,
    is_sentinel_url,
    parse_sentinel_url,
)

__all__ = ["DEFAULT_TIMEOUT", "REDIS_ERRORS", "RedisLink", "SharedStateRestored",
           "SharedStateUnavailable"]

#: Seconds a Redis command may take before the caller falls back to local state.
# Short, yet above the scheduling stalls of a busy host: a falsely "down" Redis costs only a
# moment of local limits, but a flapping one costs events and probes.
DEFAULT_TIMEOUT: Final = 0.25
DEFAULT_RETRY_MIN: Final = 0.5
DEFAULT_RETRY_MAX: Final = 10.0

#: What a Redis call may raise when Redis is down, slow or refusing (redis-py's cluster client
#: raises RedisClusterException, which is not a RedisError).
REDIS_ERRORS: Final = (redis.RedisError, redis.exceptions.RedisClusterException, OSError,
                       asyncio.TimeoutError)


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedStateUnavailable(Event):
    """Redis failed; shared policies use local state until it answers again."""

    kind: ClassVar[str] = "store.unavailable"
    store: str
    error: str  # the exception's type name only (never its text: it may carry a URL)
    retry_in: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedStateRestored(Event):
    """Redis answers again; shared policies are back on shared state."""

    kind: ClassVar[str] = "store.restored"
    store: str
    down_for: float


def _no_retry() -> Any:
    # redis-py retries a failed command 3 times with backoff by default; the link has its own
    # backoff, and a caller must not wait longer than ``timeout`` for a dead Redis.
    return redis.retry.Retry(NoBackoff(), 0)


class RedisLink:
    """Clients plus up/down state. Thread-safe; cheap when up (one attribute read)."""

    def __init__(self, *, url: str | None, client: Any, async_client: Any, timeout: float,
                 retry_min: float, retry_max: float, prefix: str, clock: Clock = SYSTEM_CLOCK,
                 sink: EventSink = NULL_SINK, label: str = "redis") -> None:
        for what, value in (("timeout", timeout), ("retry_min", retry_min),
                            ("retry_max", retry_max)):
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value) or value <= 0):
                raise ConfigurationError(f"RedisStore: {what} must be a positive number, "
                                         f"got {value!r}")
        if retry_max < retry_min:
            raise ConfigurationError("RedisStore: retry_max must be >= retry_min")
        if url is None and client is None:
            raise ConfigurationError("RedisStore: give a url or a client")
        self.url = url
        self.timeout = float(timeout)
        self.retry_min = float(retry_min)
        self.retry_max = float(retry_max)
        self.prefix = prefix
        self.clock = clock
        self.sink = sink
        self.label = label
        self._owns_client = client is None
        self._client = client if client is not None else self._new_sync()
        self._given_async = async_client
        self._async: tuple[asyncio.AbstractEventLoop, Any] | None = None
        self._background: set[asyncio.Task[None]] = set()  # strong refs until each one ends
        self._lock = threading.Lock()
        self.down = False
        self._down_since = 0.0
        self._backoff = self.retry_min
        self._probe_at = 0.0

    def _kwargs(self) -> dict[str, Any]:
        return {"socket_timeout": self.timeout, "socket_connect_timeout": self.timeout,
                "retry": _no_retry()}

    def _new_sync(self) -> Any:
        assert self.url is not None
        if is_sentinel_url(self.url):
            return parse_sentinel_url(self.url).sync_client(self._kwargs())
        try:
            return redis.Redis.from_url(self.url, **self._kwargs())
        except ValueError as exc:
            raise ConfigurationError(f"RedisStore: not a Redis URL ({exc.__class__.__name__}); "
                                     "expected redis://, rediss://, unix:// or "
                                     "redis+sentinel://") from None

    @property
    def client(self) -> Any:
        """The sync client (``redis.Redis`` or whatever was given)."""
        return self._client

    def async_client(self) -> Any:
        """The asyncio client for the running loop (a redis.asyncio client is bound to the loop
        that opened its connections, so each loop gets its own unless one was given)."""
        if self._given_async is not None:
            return self._given_async
        loop = asyncio.get_running_loop()
        current = self._async
        if current is not None and current[0] is loop:
            return current[1]
        if self.url is None:
            raise ConfigurationError("RedisStore: async use needs a url or an async_client")
        kwargs = self._kwargs()
        kwargs["retry"] = redis.asyncio.retry.Retry(NoBackoff(), 0)
        client = (parse_sentinel_url(self.url).async_client(kwargs) if is_sentinel_url(self.url)
                  else redis.asyncio.Redis.from_url(self.url, **kwargs))
        self._async = (loop, client)
        return client

    def key(self, kind: str, name: str) -> str:
        """``prefix:kind:{name}``: the braces make every key of one state hash to one Redis
        Cluster slot, so one script may touch them all."""
        safe = name.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
        return f"{self.prefix}:{kind}:{{{safe}}}"

    # -- health ----------------------------------------------------------------------------------

    def usable(self) -> bool:
        """Whether to try Redis now: always when up; when down, once per backoff (a probe)."""
        if not self.down:
            return True
        now = self.clock.now()
        with self._lock:
            if now < self._probe_at:
                return False
            # This caller probes; the others stay local until it is known how that went.
            self._probe_at = now + 2 * self.timeout
            return True

    def failed(self, exc: BaseException) -> None:
        now = self.clock.now()
        with self._lock:
            first = not self.down
            if first:
                self.down = True
                self._down_since = now
                self._backoff = self.retry_min
            else:
                self._backoff = min(self._backoff * 2, self.retry_max)
            self._probe_at = now + self._backoff
            retry_in = self._backoff
        self._drop_connections()
        if first:
            self.sink.emit(SharedStateUnavailable(operation=self.label, at=now, store=self.label,
                                                  error=type(exc).__name__, retry_in=retry_in))

    def succeeded(self) -> None:
        if not self.down:
            return
        now = self.clock.now()
        with self._lock:
            if not self.down:
                return
            self.down = False
            down_for = now - self._down_since
        self.sink.emit(SharedStateRestored(operation=self.label, at=now, store=self.label,
                                           down_for=down_for))

    def _drop_connections(self) -> None:
        # Pooled connections to a Redis that died are all broken: drop the idle ones so the next
        # probe connects afresh instead of failing once per stale connection. Connections in use
        # are left to their callers: one slow command must not break the others in flight.
        pool = getattr(self._client, "connection_pool", None)
        if pool is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                pool.disconnect(inuse_connections=False)

    async def failed_async(self, exc: BaseException) -> None:
        """:meth:`failed`, and drop the asyncio client's connections too."""
        self.failed(exc)
        current = self._async
        client = self._given_async if self._given_async is not None else (
            current[1] if current is not None else None)
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await pool.disconnect(inuse_connections=False)

    # -- writes nobody awaits -------------------------------------------------------------------

    def in_background(self, write: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run ``write`` as a task when this thread runs an event loop; False when it does not
        (the caller then writes through the sync client). For writes a policy makes without
        ``await`` (a refund, a server hint's pause): a sync round trip would block the loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        task = loop.create_task(write())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return True

    async def settle(self) -> None:
        """Wait for the background writes of the running loop (each is bounded by ``timeout``)."""
        loop = asyncio.get_running_loop()
        mine = [task for task in self._background if task.get_loop() is loop]
        if mine:
            await asyncio.wait(mine)

    async def aclose(self) -> None:
        """Close the asyncio client of the running loop (call before the loop ends), after its
        background writes."""
        await self.settle()
        current, self._async = self._async, None
        if self._given_async is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._given_async.aclose()
        elif current is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await aclose_owned(current[1])

    def close(self) -> None:
        if self._owns_client:
            close_owned(self._client)
        else:  # given: its owner decides about its pool
            self._client.close()
