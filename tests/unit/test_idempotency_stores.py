"""Both idempotency stores honour one contract; SQLite also across connections and processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _idempotency_worker import reserve_many

from egress.errors import ConfigurationError
from egress.payments import IdempotencyRecord, IdempotencyStore, RecordState
from egress.payments._drive import BlockingStore
from egress.stores.idempotency_memory import MemoryIdempotencyStore
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
from egress.stores.redis import RedisIdempotencyStore


def rec(reference: str = "o-1", *, now: float = 1000.0, fp: str = "fp") -> IdempotencyRecord:
    return IdempotencyRecord.new("scope", "create", reference, fp, now)


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-sync"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IdempotencyStore]:
    if request.param == "memory":
        yield MemoryIdempotencyStore()
    elif request.param.startswith("redis"):  # a real redis-server (tests/_redis_fixtures.py)
        redis = RedisIdempotencyStore(request.getfixturevalue("redis_url"),
                                      prefix=request.getfixturevalue("prefix"))
        # redis-sync: the same contract through the *_sync methods the sync faces use
        yield BlockingStore(redis) if request.param == "redis-sync" else redis
        await redis.aclose()
        redis.close()
    else:
        sqlite = SqliteIdempotencyStore(tmp_path / "keys.db")
        yield sqlite
        sqlite.close()


async def test_protocol_is_satisfied(store: IdempotencyStore) -> None:
    assert isinstance(store, IdempotencyStore)


async def test_reserve_inserts_once(store: IdempotencyStore) -> None:
    first, inserted = await store.reserve(rec())
    assert inserted and first == rec()
    second, inserted = await store.reserve(rec(now=2000.0, fp="other"))
    assert not inserted
    assert second == first  # the stored record wins, unchanged
    assert await store.get("scope", "create", "o-1") == first
    assert await store.get("scope", "create", "nope") is None
    assert await store.get("scope", "capture", "o-1") is None


async def test_replace_is_compare_and_set_on_the_key(store: IdempotencyStore) -> None:
    original, _ = await store.reserve(rec())
    done = original.with_state(RecordState.SUCCEEDED, 1001.0, "pi_1")
    assert await store.replace(done, expected_key=original.key)
    assert await store.get(*original.ident) == done
    renewed = done.renewed("fp2", 1002.0)
    assert renewed.key != original.key and renewed.generation == 1
    assert not await store.replace(renewed, expected_key="someone-else")
    assert await store.replace(renewed, expected_key=original.key)
    got = await store.get(*original.ident)
    assert got == renewed and got is not None and got.result_id is None
    assert not await store.replace(rec("missing"), expected_key=rec("missing").key)


async def test_delete_and_purge(store: IdempotencyStore) -> None:
    await store.reserve(rec("a", now=100.0))
    await store.reserve(rec("b", now=200.0))
    await store.reserve(rec("c", now=300.0))
    assert not await store.delete("scope", "create", "a", expected_key="wrong")
    assert await store.delete("scope", "create", "a", expected_key=rec("a").key)
    assert not await store.delete("scope", "create", "a")
    assert await store.purge(250.0) == 1
    assert await store.get("scope", "create", "b") is None
    assert await store.get("scope", "create", "c") is not None


async def test_all_fields_round_trip(store: IdempotencyStore) -> None:
    record = IdempotencyRecord(scope="s", operation="refund", reference="r-ü-1", key="k",
                               generation=7, fingerprint="f" * 64, state=RecordState.UNKNOWN,
                               created_at=1.5, updated_at=2.25, result_id="re_9")
    await store.reserve(record)
    assert await store.get("s", "refund", "r-ü-1") == record


async def test_concurrent_reserves_in_one_process(store: IdempotencyStore) -> None:
    results = await asyncio.gather(*(store.reserve(rec(fp=str(i))) for i in range(20)))
    assert sum(inserted for _, inserted in results) == 1
    assert len({r.fingerprint for r, _ in results}) == 1


def test_sqlite_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    with SqliteIdempotencyStore(path) as first:
        first.reserve_sync(rec())
    with SqliteIdempotencyStore(path) as second:
        stored, inserted = second.reserve_sync(rec(fp="later"))
        assert not inserted and stored.fingerprint == "fp"
        assert second.records_sync() == [stored]


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    # What each durability mode syncs: test_idempotency_sqlite_durability.py.
    store = SqliteIdempotencyStore(tmp_path / "keys.db")
    with store._lock:
        conn = store._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_sqlite_connections_race_in_threads(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    stores = [SqliteIdempotencyStore(path) for _ in range(4)]
    won: list[bool] = []
    barrier = threading.Barrier(4)

    def worker(store: SqliteIdempotencyStore, i: int) -> None:
        barrier.wait()
        for n in range(25):
            _, inserted = store.reserve_sync(rec(f"o-{n}", fp=str(i)))
            won.append(inserted)

    threads = [threading.Thread(target=worker, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert won.count(True) == 25
    for s in stores:
        s.close()


def test_sqlite_is_safe_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "keys.db")
    SqliteIdempotencyStore(path).close()
    references = [f"o-{n}" for n in range(30)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.starmap(reserve_many, [(path, w, references) for w in range(3)])
    winners = [ref for won in results for ref in won]
    assert sorted(winners) == sorted(references)  # each reference inserted exactly once
    records = SqliteIdempotencyStore(path).records_sync()
    assert len(records) == 30


def test_sqlite_bad_path_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot open"):
        SqliteIdempotencyStore(tmp_path / "missing-dir" / "keys.db")
    with pytest.raises(ConfigurationError):
        SqliteIdempotencyStore(tmp_path / "k.db", timeout=0)


def test_repr_shows_no_records(tmp_path: Path) -> None:
    assert "keys.db" in repr(SqliteIdempotencyStore(tmp_path / "keys.db"))
    assert repr(MemoryIdempotencyStore()) == "MemoryIdempotencyStore(0 records)"
