"""Idempotency records in Redis: one claim per reference across every machine of a fleet.

Each record is a JSON string under ``prefix:idem:{scope}:<hash of operation and reference>``;
a sorted set per scope indexes records by ``updated_at`` for :meth:`purge`. Every write is one
Lua script (claim if absent, compare-and-set on the key, compare-and-delete), so two processes
racing on one reference both get the one record that won. All keys of a scope share a hash tag:
a Redis Cluster keeps them in one slot.

**Records in doubt** (UNKNOWN) are also kept, by the same scripts, in a sorted set per scope
(``prefix:idem:{scope}:doubt``); the scopes are listed in ``prefix:idem-scopes``. So
:meth:`~RedisIdempotencyStore.in_doubt_sync` (what ``egress.status`` reads) costs one round trip
per scope, however many records the store holds.

**Two faces, one logic.** Each operation is one coroutine doing its I/O through a face: the
async methods run it on ``redis.asyncio``; the ``*_sync`` methods (for ``SyncStripePayments``)
run it with :func:`~egress.payments._drive.drive` on ``redis.Redis``, where it never suspends.

**Fail-closed.** When Redis cannot answer within the store's timeout, every method raises
:class:`~egress.errors.SharedStateUnavailableError` and nothing is sent: a payment must never go
out without its key being claimed. Records are kept ``retention`` seconds after their last
update (7 days by default, well past providers' 24 h key lifetime, for reconciliation), or until
:meth:`purge`.

Durability is Redis's: with the default snapshotting a crash of Redis loses the last writes; run
it with ``appendonly yes`` and ``appendfsync always`` (or ``everysec``, accepting a second) when
records must survive that, and never with an eviction policy that may drop these keys.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from typing import Any, Final

from egress.errors import ConfigurationError, SharedStateUnavailableError
from egress.payments._drive import drive
from egress.payments.idempotency import IdempotencyRecord, RecordState
from egress.stores.redis._link import REDIS_ERRORS, RedisLink

__all__ = ["DEFAULT_RETENTION", "RedisIdempotencyStore"]

#: Seconds a record is kept after its last update.
DEFAULT_RETENTION: Final = 7 * 24 * 3600.0
#: Seconds a command may take before the store fails closed. Longer than the policies' store
#: timeout: a claim precedes a provider call of hundreds of milliseconds, and failing it refuses
#: a payment, where a slow limiter only falls back to a local limit.
DEFAULT_IDEMPOTENCY_TIMEOUT: Final = 2.0
#: Seconds between two ``SADD``\ s of one scope to the scope set by one store (one a minute per
#: scope and process: nothing next to the claims, and a lost set heals within a minute).
SCOPE_REFRESH: Final = 60.0

# Every write keeps the scope's doubt index (``{scope}:doubt``: UNKNOWN records by updated_at)
# in step with its record, in the same script, so status() reads the records in doubt from it
# instead of scanning the keyspace (bench/redis_doubt.py measures both). Lines marked ``-- doubt``
# are that bookkeeping; they touch the index only when a record enters or leaves UNKNOWN, so the
# common writes (PENDING, then SUCCEEDED) pay one string compare. A stale entry (its record
# expired, then was claimed again) is dropped by the query, which checks every record it lists.

# KEYS: record, scope index, doubt index. ARGV: record json, updated_at, ttl_ms, in doubt (1/0).
_RESERVE: Final = """
local current = redis.call('GET', KEYS[1])
if current then return {0, current} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1])
if ARGV[4] == '1' then redis.call('ZADD', KEYS[3], ARGV[2], KEYS[1]) end -- doubt
return {1, ARGV[1]}
"""

# KEYS: record, scope index, doubt index. ARGV: record json, updated_at, ttl_ms, in doubt (1/0),
# expected key.
_REPLACE: Final = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local old = cjson.decode(current)
if old['key'] ~= ARGV[5] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1])
if ARGV[4] == '1' then redis.call('ZADD', KEYS[3], ARGV[2], KEYS[1]) -- doubt
elseif old['state'] == 'unknown' then redis.call('ZREM', KEYS[3], KEYS[1]) end -- doubt
return 1
"""

# KEYS: record, scope index, doubt index. ARGV: expected key ('' = any).
_DELETE: Final = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if ARGV[1] ~= '' and cjson.decode(current)['key'] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1]) -- doubt
return 1
"""

# KEYS: scope index, doubt index. ARGV: older_than (exclusive). Returns how many were deleted.
_PURGE: Final = """
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local n = 0
for _, key in ipairs(old) do
  n = n + redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], key)
  redis.call('ZREM', KEYS[2], key) -- doubt
end
return n
"""

# KEYS: doubt index. ARGV: limit. Returns {count, {record json, ...}}: the ``limit`` oldest
# records in doubt. An entry whose record expired (its TTL ran out) or is no longer UNKNOWN
# (written by a version without this index) is dropped on the way: those are the oldest, so
# at most a bounded number of them is cleaned per call.
_IN_DOUBT: Final = """
local limit = tonumber(ARGV[1])
local found = {}
local cleaned = 0
while #found < limit and cleaned < 1000 do
  local batch = redis.call('ZRANGE', KEYS[1], #found, limit - 1)
  if #batch == 0 then break end
  for _, key in ipairs(batch) do
    local raw = redis.call('GET', key)
    local ok, data = pcall(cjson.decode, raw or '')
    if ok and type(data) == 'table' and data['state'] == 'unknown' then
      found[#found + 1] = raw
    else
      redis.call('ZREM', KEYS[1], key)
      cleaned = cleaned + 1
      break
    end
  end
end
return {redis.call('ZCARD', KEYS[1]), found}
"""


def _encode(record: IdempotencyRecord) -> str:
    return json.dumps({
        "scope": record.scope, "operation": record.operation, "reference": record.reference,
        "key": record.key, "generation": record.generation, "fingerprint": record.fingerprint,
        "state": record.state.value, "created_at": record.created_at,
        "updated_at": record.updated_at, "result_id": record.result_id,
    }, ensure_ascii=False, separators=(",", ":"))


def _decode(raw: bytes | str) -> IdempotencyRecord:
    try:
        return _record(json.loads(raw))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        # Something else lives under the key (another writer, a foreign format): fail closed,
        # as for a Redis that cannot be reached. Never echo it: it is not ours to log.
        raise SharedStateUnavailableError(
            "idempotency store: the Redis value under a record's key is not an egress record; "
            "refusing to guess (nothing was sent)") from None


def _record(data: Any) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope=str(data["scope"]), operation=str(data["operation"]),
        reference=str(data["reference"]), key=str(data["key"]),
        generation=int(data["generation"]), fingerprint=str(data["fingerprint"]),
        state=RecordState(data["state"]), created_at=float(data["created_at"]),
        updated_at=float(data["updated_at"]),
        result_id=None if data["result_id"] is None else str(data["result_id"]))


def _unavailable(exc: BaseException, note: str) -> SharedStateUnavailableError:
    return SharedStateUnavailableError(
        f"idempotency store: Redis failed ({type(exc).__name__}){note}")


class _Face:
    """How one face of the store reaches Redis. The operations are written once, as coroutines
    doing their I/O through a face (see ``egress.payments._drive``): the async face awaits
    ``redis.asyncio``; the blocking face calls ``redis.Redis`` and returns without suspending,
    so :func:`~egress.payments._drive.drive` runs the same coroutine on the caller's thread."""

    __slots__ = ("link", "scripts")

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.scripts: dict[str, Any] = {}  # one registered script per source, per face

    def client(self) -> Any:
        raise NotImplementedError

    async def _do(self, call: Callable[[Any], Any]) -> Any:
        raise NotImplementedError

    async def _failed(self, exc: BaseException) -> None:
        raise NotImplementedError

    def _collect(self, keys: Any) -> Any:
        raise NotImplementedError

    async def run(self, call: Callable[[Any], Any], note: str = "") -> Any:
        # Every call tries Redis (no backoff gate): a fail-closed store must not refuse claims
        # for a while because one command was slow; each try is bounded by the timeout.
        try:
            result = await self._do(call)
        except REDIS_ERRORS as exc:
            await self._failed(exc)
            raise _unavailable(exc, note) from None
        self.link.succeeded()
        return result

    async def script(self, source: str, keys: list[str], args: list[object]) -> Any:
        script = self.scripts.get(source)
        if script is None:
            script = self.scripts[source] = self.client().register_script(source)
        return await self.run(lambda client: script(keys=keys, args=args, client=client),
                              "; nothing was sent")

    async def scan(self, pattern: str) -> list[str]:
        found = await self.run(lambda client: self._collect(
            client.scan_iter(match=pattern, count=500)))
        return [key.decode() if isinstance(key, bytes) else str(key) for key in found]


class _AsyncFace(_Face):
    __slots__ = ()

    def client(self) -> Any:
        return self.link.async_client()

    async def _do(self, call: Callable[[Any], Any]) -> Any:
        return await call(self.client())

    async def _failed(self, exc: BaseException) -> None:
        await self.link.failed_async(exc)

    async def _collect(self, keys: Any) -> list[Any]:
        return [key async for key in keys]


class _BlockingFace(_Face):
    __slots__ = ()

    def client(self) -> Any:
        return self.link.client

    async def _do(self, call: Callable[[Any], Any]) -> Any:
        return call(self.client())

    async def _failed(self, exc: BaseException) -> None:
        self.link.failed(exc)

    def _collect(self, keys: Any) -> list[Any]:
        return list(keys)


def _oldest(found: list[tuple[int, list[IdempotencyRecord]]],
            limit: int) -> tuple[int, list[IdempotencyRecord]]:
    records = sorted((r for _, listed in found for r in listed), key=lambda r: r.updated_at)
    return sum(count for count, _ in found), records[:limit]


class RedisIdempotencyStore:
    """Satisfies :class:`~egress.payments.IdempotencyStore` with records in Redis, and its
    blocking face (``*_sync`` methods, for ``SyncStripePayments``) with the same operations.

    ==============  ========  ====================================================
    setting         default   meaning
    ==============  ========  ====================================================
    ``url``         (req.)    ``redis://``, ``rediss://``, ``unix://``,
                              ``redis+sentinel://hosts/service`` (or give
                              ``client``/``async_client``: Cluster)
    ``prefix``      egress    first part of every key
    ``timeout``     2.0       seconds per command before failing closed
    ``retention``   7 days    seconds a record lives after its last update
    ==============  ========  ====================================================
    """

    def __init__(self, url: str | None = None, *, client: Any = None, async_client: Any = None,
                 prefix: str = "egress", timeout: float = DEFAULT_IDEMPOTENCY_TIMEOUT,
                 retention: float = DEFAULT_RETENTION, link: RedisLink | None = None) -> None:
        if (isinstance(retention, bool) or not isinstance(retention, int | float)
                or not math.isfinite(retention) or retention < 25 * 3600):
            raise ConfigurationError("RedisIdempotencyStore: retention must be at least 25 h "
                                     f"(past providers' 24 h key lifetime), got {retention!r}")
        self._link = link or RedisLink(url=url, client=client, async_client=async_client,
                                       timeout=timeout, retry_min=0.5, retry_max=5.0,
                                       prefix=prefix, label="redis-idempotency")
        self.retention = float(retention)
        self._ttl_ms = math.ceil(self.retention * 1000)
        self._async = _AsyncFace(self._link)
        self._blocking = _BlockingFace(self._link)
        # Scope -> when this store last added it to the scope set (status() finds doubt indexes
        # there). Added again every SCOPE_REFRESH seconds, so a set lost with a failover or a
        # flush comes back without a restart.
        self._scopes: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"RedisIdempotencyStore(prefix={self._link.prefix!r})"

    def _keys(self, scope: str, operation: str, reference: str) -> list[str]:
        index = self._link.key("idem", scope)
        digest = hashlib.sha256(f"{operation}\x00{reference}".encode()).hexdigest()[:40]
        return [f"{index}:{digest}", f"{index}:index", f"{index}:doubt"]

    @property
    def _scope_set(self) -> str:
        # Its own key (and Cluster slot): one SADD per scope and process, never inside a script.
        return f"{self._link.prefix}:idem-scopes"

    def _written(self, record: IdempotencyRecord) -> list[object]:
        return [_encode(record), repr(record.updated_at), self._ttl_ms,
                "1" if record.state is RecordState.UNKNOWN else "0"]

    # -- each operation, once ------------------------------------------------------------------

    async def _reserve(self, face: _Face,
                       record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        now = self._link.clock.now()
        if now >= self._scopes.get(record.scope, -math.inf) + SCOPE_REFRESH:
            # Before the scope's first record exists: status() can always find it.
            await face.run(lambda client: client.sadd(self._scope_set, record.scope),
                           "; nothing was sent")
            self._scopes[record.scope] = now
        inserted, raw = await face.script(_RESERVE, self._keys(*record.ident),
                                          self._written(record))
        return _decode(raw), bool(inserted)

    async def _get(self, face: _Face, scope: str, operation: str,
                   reference: str) -> IdempotencyRecord | None:
        key = self._keys(scope, operation, reference)[0]
        raw = await face.run(lambda client: client.get(key))
        return None if raw is None else _decode(raw)

    async def _replace(self, face: _Face, record: IdempotencyRecord, expected_key: str) -> bool:
        return bool(await face.script(_REPLACE, self._keys(*record.ident),
                                      [*self._written(record), expected_key]))

    async def _delete(self, face: _Face, ident: tuple[str, str, str],
                      expected_key: str | None) -> bool:
        return bool(await face.script(_DELETE, self._keys(*ident), [expected_key or ""]))

    async def _purge(self, face: _Face, older_than: float) -> int:
        total = 0
        for index in await face.scan(f"{self._link.prefix}:idem:{{*}}:index"):
            doubt = index.removesuffix(":index") + ":doubt"
            total += int(await face.script(_PURGE, [index, doubt], [repr(older_than)]))
        return total

    async def _in_doubt(self, face: _Face, limit: int) -> tuple[int, list[IdempotencyRecord]]:
        scopes = await face.run(lambda client: client.smembers(self._scope_set))
        found = []
        for scope in sorted(s.decode() if isinstance(s, bytes) else str(s) for s in scopes):
            doubt = f"{self._link.key('idem', scope)}:doubt"
            count, raws = await face.script(_IN_DOUBT, [doubt], [max(0, limit)])
            found.append((int(count), [_decode(raw) for raw in raws]))
        return _oldest(found, max(0, limit))

    # -- the async face --------------------------------------------------------------------------

    async def reserve(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        return await self._reserve(self._async, record)

    async def get(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        return await self._get(self._async, scope, operation, reference)

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        return await self._replace(self._async, record, expected_key)

    async def delete(self, scope: str, operation: str, reference: str, *,
                     expected_key: str | None = None) -> bool:
        return await self._delete(self._async, (scope, operation, reference), expected_key)

    async def purge(self, older_than: float) -> int:
        return await self._purge(self._async, older_than)

    async def in_doubt(self, limit: int) -> tuple[int, list[IdempotencyRecord]]:
        """How many records are UNKNOWN (in doubt, not reconciled), and the ``limit`` oldest:
        one ``SMEMBERS`` and one script per scope, each O(log n + limit)."""
        return await self._in_doubt(self._async, limit)

    # -- the blocking face: the same coroutines, run by drive() on redis.Redis -----------------

    def reserve_sync(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        return drive(self._reserve(self._blocking, record))

    def get_sync(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        return drive(self._get(self._blocking, scope, operation, reference))

    def replace_sync(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        return drive(self._replace(self._blocking, record, expected_key))

    def delete_sync(self, scope: str, operation: str, reference: str, *,
                    expected_key: str | None = None) -> bool:
        return drive(self._delete(self._blocking, (scope, operation, reference), expected_key))

    def purge_sync(self, older_than: float) -> int:
        return drive(self._purge(self._blocking, older_than))

    def in_doubt_sync(self, limit: int) -> tuple[int, list[IdempotencyRecord]]:
        """:meth:`in_doubt` on the sync client: what ``egress.status(idempotency=[store])``
        reads."""
        return drive(self._in_doubt(self._blocking, limit))

    async def aclose(self) -> None:
        await self._link.aclose()

    def close(self) -> None:
        self._link.close()
