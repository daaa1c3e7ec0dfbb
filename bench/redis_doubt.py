"""Records in doubt on Redis: what each way of finding them costs, and what the index costs writes.

``egress.status(idempotency=[RedisIdempotencyStore(...)])`` must list the records in doubt
(UNKNOWN) without reading the whole store: a dashboard asks every second or so, and a store
holds a week of payments. Three ways are measured on one private ``redis-server``, over the same
records (``--records`` of them, one in ``--every`` in doubt):

* **index** (what the store does): each write script keeps a per-scope sorted set of the records
  in doubt; the query is one ``SMEMBERS`` of the scope set and one script per scope
  (``ZCARD`` + ``ZRANGE`` of the ``limit`` oldest + their ``GET``\\ s);
* **SCAN for the indexes**: the same sorted sets, found by ``SCAN MATCH`` instead of a scope set
  (O(keyspace) round trips);
* **SCAN every record**: no index at all; ``SCAN`` + ``MGET`` of every record, decoded and
  filtered in Python.

Client wall time (median of ``--repeat``) and the microseconds Redis itself spent (INFO
commandstats: this does not move with the load on the client's machine). Then the write path:
Redis-side cost of a reserve and of a replace with and without the doubt bookkeeping.

    uv run --frozen python bench/redis_doubt.py [--records 100000] [--url redis://...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis

from egress.payments import IdempotencyRecord, RecordState
from egress.stores.redis import LocalRedisServer, RedisIdempotencyStore
from egress.stores.redis._idempotency import _IN_DOUBT, _REPLACE, _RESERVE

LIMIT = 20


def record(i: int, every: int) -> IdempotencyRecord:
    new = IdempotencyRecord.new(f"acct-{i % 3}", "create", f"order-{i}", "fp", 1e9 + i)
    return new.with_state(RecordState.UNKNOWN, new.updated_at) if i % every == 0 else new


def fill(client: Any, store: RedisIdempotencyStore, records: int, every: int) -> None:
    reserve = client.register_script(_RESERVE)
    for scope in ("acct-0", "acct-1", "acct-2"):
        client.sadd(store._scope_set, scope)
    pipe = client.pipeline(transaction=False)
    for i in range(records):
        r = record(i, every)
        reserve(keys=store._keys(*r.ident), args=store._written(r), client=pipe)
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def scan_indexes(client: Any, prefix: str) -> tuple[int, list[Any]]:
    query = client.register_script(_IN_DOUBT)
    total, found = 0, []
    for key in client.scan_iter(match=f"{prefix}:idem:{{*}}:doubt", count=500):
        count, raws = query(keys=[key], args=[LIMIT])
        total += int(count)
        found += [json.loads(raw) for raw in raws]
    found.sort(key=lambda d: d["updated_at"])
    return total, found[:LIMIT]


def scan_records(client: Any, prefix: str) -> tuple[int, list[Any]]:
    keys = [k for k in client.scan_iter(match=f"{prefix}:idem:*", count=500)
            if not k.endswith((b":index", b":doubt"))]
    doubt = []
    for start in range(0, len(keys), 500):
        for raw in client.mget(keys[start:start + 500]):
            data = json.loads(raw) if raw is not None else None
            if data is not None and data["state"] == "unknown":
                doubt.append(data)
    doubt.sort(key=lambda d: d["updated_at"])
    return len(doubt), doubt[:LIMIT]


def timed(admin: Any, fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    walls, usecs, result = [], [], None
    for _ in range(repeat):
        admin.config_resetstat()
        start = time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - start)
        stats = admin.info("commandstats")
        usecs.append(sum(v["usec"] for k, v in stats.items() if "config" not in k))
    return statistics.median(walls) * 1e3, statistics.median(usecs), result


def untracked(source: str) -> str:
    """The script without its doubt bookkeeping (the lines marked ``-- doubt``)."""
    return "\n".join(line for line in source.splitlines() if "-- doubt" not in line)


def write_cost(admin: Any, client: Any, store: RedisIdempotencyStore, ops: int,
               rounds: int) -> None:
    print(f"\nwrite path: us inside Redis per call (INFO commandstats; {ops} calls, best of "
          f"{rounds} interleaved rounds)")
    print(f"{'script':<22} {'with doubt index':>17} {'without':>9}")
    claim = client.register_script(_RESERVE)
    for name, source in (("reserve", _RESERVE), ("replace", _REPLACE),
                         ("replace to UNKNOWN", _REPLACE)):
        scripts = [client.register_script(source), client.register_script(untracked(source))]
        state = RecordState.UNKNOWN if name.endswith("UNKNOWN") else RecordState.SUCCEEDED
        best = [float("inf"), float("inf")]
        for turn in range(rounds * 2):  # with, without, with, ...: load drifts hit both alike
            which = turn % 2
            made = [IdempotencyRecord.new("w", "create", f"{name}-{turn}-{i}", "fp", 1e9 + i)
                    for i in range(ops)]
            if name != "reserve":
                for r in made:
                    claim(keys=store._keys(*r.ident), args=store._written(r))
            admin.config_resetstat()
            for r in made:
                if name == "reserve":
                    args = store._written(r)
                else:
                    args = [*store._written(r.with_state(state, r.updated_at + 1, "pi_1")), r.key]
                scripts[which](keys=store._keys(*r.ident), args=args)
            stats = admin.info("commandstats")
            spent = sum(v["usec"] for k, v in stats.items() if "config" not in k) / ops
            best[which] = min(best[which], spent)
        print(f"{name:<22} {best[0]:>17.1f} {best[1]:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an existing Redis (default: a private redis-server)")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=1000, help="one record in N is in doubt")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    server = None if args.url else LocalRedisServer().start()
    url = args.url or server.url  # type: ignore[union-attr]
    prefix = f"bench-doubt-{time.time_ns()}"
    admin = redis.Redis.from_url(url)
    client = redis.Redis.from_url(url)
    store = RedisIdempotencyStore(url, prefix=prefix)
    try:
        fill(client, store, args.records, args.every)
        print(f"{args.records} records in 3 scopes, {args.records // args.every} in doubt; "
              f"list the {LIMIT} oldest (median of {args.repeat})")
        print(f"{'way':<24} {'client ms':>10} {'us in Redis':>12} {'count':>7}")
        cases = {"index (the store)": lambda: store.in_doubt_sync(LIMIT),
                 "SCAN for the indexes": lambda: scan_indexes(client, prefix),
                 "SCAN every record": lambda: scan_records(client, prefix)}
        for name, fn in cases.items():
            wall, usec, (count, _) = timed(admin, fn, args.repeat)
            print(f"{name:<24} {wall:>10.2f} {usec:>12.0f} {count:>7}")
        write_cost(admin, client, store, 2000, 3)
    finally:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.unlink(key)
        store.close()
        admin.close()
        client.close()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
