"""``redis+sentinel://`` URLs, opened with redis-py's own Sentinel support.

redis-py has Sentinel clients but no URL for them; fleets configure Redis by one URL, so egress
reads the de facto form (as Sidekiq, Jedis and others spell it)::

    redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]
    rediss+sentinel://...   (TLS to the master and to the sentinels)

and hands the parts to ``redis.sentinel.Sentinel(...).master_for(service)`` (or its asyncio
twin). The master is found through the sentinels on every new connection, so after a failover
the store's next probe reaches the new master by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import redis.asyncio.sentinel
import redis.sentinel

from egress._secret import Secret
from egress.errors import ConfigurationError

__all__ = ["SentinelTarget", "aclose_owned", "close_owned", "is_sentinel_url", "parse_sentinel_url"]

_SCHEMES: Final = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS
# redis-py's Sentinel classes are untyped; held as Any so strict typing stays on around them.
_SYNC_SENTINEL: Final[Any] = redis.sentinel.Sentinel
_ASYNC_SENTINEL: Final[Any] = redis.asyncio.sentinel.Sentinel


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() in _SCHEMES


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """A parsed ``redis+sentinel://`` URL. The password is a :class:`Secret`: no repr shows it."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: Secret | None = field(default=None)
    tls: bool = False

    def _connection(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options = dict(kwargs, db=self.db)
        if self.username is not None:
            options["username"] = self.username
        if self.password is not None:
            options["password"] = self.password.reveal()
        if self.tls:
            options["ssl"] = True
        return options

    def _sentinel_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        # The sentinels get the same timeouts (a dead sentinel must not hang a call) and TLS;
        # they rarely share the master's password, so none is sent to them.
        options = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
        if self.tls:
            options["ssl"] = True
        return options

    def sync_client(self, kwargs: dict[str, Any]) -> Any:
        sentinel = _SYNC_SENTINEL(list(self.sentinels),
                                  sentinel_kwargs=self._sentinel_kwargs(kwargs))
        return sentinel.master_for(self.service, **self._connection(kwargs))

    def async_client(self, kwargs: dict[str, Any]) -> Any:
        sentinel = _ASYNC_SENTINEL(list(self.sentinels),
                                   sentinel_kwargs=self._sentinel_kwargs(kwargs))
        return sentinel.master_for(self.service, **self._connection(kwargs))


def _bad(why: str) -> ConfigurationError:
    # The URL itself is never echoed: it may hold a password.
    return ConfigurationError(f"RedisStore: not a Sentinel URL: {why}; expected "
                              "redis+sentinel://[[user]:password@]host:port[,host:port]/service[/db]")


def parse_sentinel_url(url: str) -> SentinelTarget:
    scheme, sep, rest = url.partition("://")
    tls = _SCHEMES.get(scheme.lower())
    if not sep or tls is None:
        raise _bad("the scheme is not redis+sentinel or rediss+sentinel")
    if "?" in rest or "#" in rest:
        raise _bad("query strings and fragments are not supported")
    authority, _, path = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if not at:
        hosts, userinfo = authority, ""
    username = password = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = Secret(unquote(secret)) if colon and secret else None
    sentinels = tuple(_host_port(part) for part in hosts.split(","))
    parts = path.split("/") if path else []
    if not parts or not parts[0]:
        raise _bad("no service (master) name")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise _bad("the path must be /service or /service/db (db a number)")
    return SentinelTarget(sentinels=sentinels, service=unquote(parts[0]),
                          db=int(parts[1]) if len(parts) == 2 else 0,
                          username=username, password=password, tls=tls)


def _host_port(part: str) -> tuple[str, int]:
    try:
        split = urlsplit("//" + part)
        port = split.port
    except ValueError:  # an unbalanced IPv6 bracket, or a port that is not 0..65535
        raise _bad("a sentinel is not host[:port] with a port in 1..65535") from None
    if port == 0:
        raise _bad("a sentinel is not host[:port] with a port in 1..65535")
    if not split.hostname:
        raise _bad("a sentinel host is empty")
    return split.hostname, port or 26379


# A client made from a URL owns its pool, but redis-py closes a pool on ``close()`` only when the
# client created it, and ``master_for`` hands the client a pool it made itself (with the
# sentinels' own clients behind it). So whoever made the client closes all three.


def close_owned(client: Any) -> None:
    pool = getattr(client, "connection_pool", None)
    client.close()
    if pool is not None:
        pool.disconnect()
        for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
            sentinel.close()


async def aclose_owned(client: Any) -> None:
    pool = getattr(client, "connection_pool", None)
    await client.aclose()
    if pool is not None:
        await pool.disconnect()
        for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
            await sentinel.aclose()
