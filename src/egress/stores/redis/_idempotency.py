"""Idempotency records in Redis: one claim per reference across every machine of a fleet.

Each record is a JSON string under ``prefix:idem:{scope}:<hash of operation and reference>``;
a sorted set per scope indexes records by ``updated_at`` for :meth:`purge`. Every write is one
Lua script (claim if absent, compare-and-set on the key, compare-and-delete), so two processes
racing on one reference both get the one record that won. All keys of a scope share a hash tag:
a Redis Cluster keeps them in one slot.

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
from typing import Any, Final

from egress.errors import ConfigurationError, SharedStateUnavailableError
from egress.payments.idempotency import IdempotencyRecord, RecordState
from egress.stores.redis._link import REDIS_ERRORS, RedisLink

__all__ = ["DEFAULT_RETENTION", "RedisIdempotencyStore"]

#: Seconds a record is kept after its last update.
DEFAULT_RETENTION: Final = 7 * 24 * 3600.0
#: Seconds a command may take before the store fails closed. Longer than the policies' store
#: timeout: a claim precedes a provider call of hundreds of milliseconds, and failing it refuses
#: a payment, where a slow limiter only falls back to a local limit.
DEFAULT_IDEMPOTENCY_TIMEOUT: Final = 2.0

# KEYS: record, scope index. ARGV: record json, updated_at, ttl_ms.
_RESERVE: Final = """
local current = redis.call('GET', KEYS[1])
if current then return {0, current} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1])
return {1, ARGV[1]}
"""

# KEYS: record, scope index. ARGV: record json, updated_at, ttl_ms, expected key.
_REPLACE: Final = """
local current = redis.call('GET', KEYS[1])
if not current or cjson.decode(current)['key'] ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1])
return 1
"""

# KEYS: record, scope index. ARGV: expected key ('' = any).
_DELETE: Final = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if ARGV[1] ~= '' and cjson.decode(current)['key'] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
return 1
"""

# KEYS: scope index. ARGV: older_than (exclusive). Returns how many records were deleted.
_PURGE: Final = """
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local n = 0
for _, key in ipairs(old) do
  n = n + redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], key)
end
return n
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


class RedisIdempotencyStore:
    """Satisfies :class:`~egress.payments.IdempotencyStore` with records in Redis.

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
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"RedisIdempotencyStore(prefix={self._link.prefix!r})"

    def _keys(self, scope: str, operation: str, reference: str) -> list[str]:
        index = self._link.key("idem", scope)
        digest = hashlib.sha256(f"{operation}\x00{reference}".encode()).hexdigest()[:40]
        return [f"{index}:{digest}", f"{index}:index"]

    async def _call(self, source: str, keys: list[str], args: list[object]) -> Any:
        # Every call tries Redis (no backoff gate): a fail-closed store must not refuse claims
        # for a while because one command was slow; each try is bounded by the timeout.
        link = self._link
        client = link.async_client()
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        try:
            result = await script(keys=keys, args=args, client=client)
        except REDIS_ERRORS as exc:
            await link.failed_async(exc)
            raise SharedStateUnavailableError(
                f"idempotency store: Redis failed ({type(exc).__name__}); nothing was sent"
            ) from None
        link.succeeded()
        return result

    async def reserve(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        inserted, raw = await self._call(
            _RESERVE, self._keys(*record.ident),
            [_encode(record), repr(record.updated_at), self._ttl_ms])
        return _decode(raw), bool(inserted)

    async def get(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        link = self._link
        try:
            raw = await link.async_client().get(self._keys(scope, operation, reference)[0])
        except REDIS_ERRORS as exc:
            await link.failed_async(exc)
            raise SharedStateUnavailableError(
                f"idempotency store: Redis failed ({type(exc).__name__})") from None
        link.succeeded()
        return None if raw is None else _decode(raw)

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        return bool(await self._call(
            _REPLACE, self._keys(*record.ident),
            [_encode(record), repr(record.updated_at), self._ttl_ms, expected_key]))

    async def delete(self, scope: str, operation: str, reference: str, *,
                     expected_key: str | None = None) -> bool:
        return bool(await self._call(_DELETE, self._keys(scope, operation, reference),
                                     [expected_key or ""]))

    async def purge(self, older_than: float) -> int:
        client = self._link.async_client()
        pattern = f"{self._link.prefix}:idem:{{*}}:index"
        total = 0
        try:
            indexes = [key async for key in client.scan_iter(match=pattern, count=500)]
        except REDIS_ERRORS as exc:
            await self._link.failed_async(exc)
            raise SharedStateUnavailableError(
                f"idempotency store: Redis failed ({type(exc).__name__})") from None
        for index in indexes:
            total += int(await self._call(_PURGE, [index.decode() if isinstance(index, bytes)
                                                   else str(index)], [repr(older_than)]))
        return total

    async def aclose(self) -> None:
        await self._link.aclose()

    def close(self) -> None:
        self._link.close()
