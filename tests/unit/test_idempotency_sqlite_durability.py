"""SqliteIdempotencyStore: what each durability mode syncs, group commit, the fast path's
fallback, fork, and a real process killed at random points (one charge per reference)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from egress.errors import ConfigurationError
from egress.payments import IdempotencyRecord, RecordState
from egress.payments.keeper import IdempotencyKeeper, KeyedCall
from egress.stores import idempotency_sqlite
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
from egress.testing.fake_stripe import FakeStripe

WORKER = Path(__file__).with_name("_sqlite_kill_worker.py")


def rec(reference: str = "o-1", *, now: float = 1000.0) -> IdempotencyRecord:
    return IdempotencyRecord.new("scope", "create", reference, "fp", now)


def test_durability_must_be_a_known_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="durability"):
        SqliteIdempotencyStore(tmp_path / "k.db", durability="disk")  # type: ignore[arg-type]
    assert "power" in repr(SqliteIdempotencyStore(tmp_path / "k.db", durability="power"))


def _spy(monkeypatch: pytest.MonkeyPatch, name: str, seen: list[tuple[str, int]]) -> None:
    """Record the ``synchronous`` level each statement of ``name`` ran under (0/1/2/3)."""
    inner: Callable[..., Any] = getattr(idempotency_sqlite, name)

    def spied(*args: Any) -> Any:
        conn: sqlite3.Connection = args[-1]
        seen.append((name, conn.execute("PRAGMA synchronous").fetchone()[0]))
        return inner(*args)

    monkeypatch.setattr(idempotency_sqlite, name, spied)


async def _one_payment(store: SqliteIdempotencyStore, reference: str) -> None:
    async def send(key: str, resumed: bool) -> str:
        return "pi_1"

    async def nothing(*args: object) -> None:
        return None

    keeper = IdempotencyKeeper(store, scope="s")
    await keeper.run(KeyedCall(operation="create", reference=reference, fingerprint="f",
                               send=send, fetch=nothing, settle=nothing,
                               result_id=lambda result: result))


@pytest.mark.parametrize(("durability", "reserve_level", "outcome_level"),
                         [("process", 1, 1), ("power", 2, 1)])
async def test_what_each_mode_syncs(durability: Any, reserve_level: int, outcome_level: int,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, int]] = []
    _spy(monkeypatch, "_reserve", seen)
    _spy(monkeypatch, "_replace", seen)
    store = SqliteIdempotencyStore(tmp_path / "k.db", durability=durability)
    await _one_payment(store, "o-1")
    # A key is written FULL (fsync before the send) in "power"; the outcome never waits.
    assert seen == [("_reserve", reserve_level), ("_replace", outcome_level)]
    # A renewal or a re-sent key (the record stays PENDING) is a key: synced like a reserve.
    seen.clear()
    (stored,) = store.records_sync()
    assert stored.state is RecordState.SUCCEEDED
    pending = stored.renewed("f", 2000.0)
    assert await store.replace(pending, expected_key=stored.key)
    assert seen == [("_replace", reserve_level)]
    store.close()


async def test_the_sync_methods_keep_the_same_rule(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, int]] = []
    _spy(monkeypatch, "_reserve", seen)
    _spy(monkeypatch, "_replace", seen)
    with SqliteIdempotencyStore(tmp_path / "k.db", durability="power") as store:
        record, _ = store.reserve_sync(rec())
        store.replace_sync(record.with_state(RecordState.SUCCEEDED, 1001.0, "pi_1"),
                           expected_key=record.key)
    assert seen == [("_reserve", 2), ("_replace", 1)]


def _batches(store: SqliteIdempotencyStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each batch the store commits off the fast path (writer thread, sync)."""
    batches: list[int] = []
    transact = store._transact

    def counted(jobs: list[Any]) -> Any:
        batches.append(len(jobs))
        return transact(jobs)

    monkeypatch.setattr(store, "_transact", counted)
    return batches


async def test_concurrent_keys_share_one_commit(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteIdempotencyStore(tmp_path / "k.db", durability="power")
    batches = _batches(store, monkeypatch)
    with store._lock:  # the writer thread waits here while every reservation queues up
        tasks = [asyncio.ensure_future(store.reserve(rec(f"o-{n}"))) for n in range(64)]
        await asyncio.sleep(0.05)
    results = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert all(inserted for _, inserted in results)
    assert sum(batches) == 64 and len(batches) <= 2, batches  # 64 fsyncs would be 64 batches
    assert len(store.records_sync()) == 64
    store.close()


async def test_a_failing_operation_fails_alone(tmp_path: Path) -> None:
    store = SqliteIdempotencyStore(tmp_path / "k.db", durability="power")

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    with store._lock:
        good = [asyncio.ensure_future(store.reserve(rec(f"o-{n}"))) for n in range(5)]
        bad = asyncio.ensure_future(store._run(broken, (), True))
        await asyncio.sleep(0.05)
    with pytest.raises(sqlite3.OperationalError):
        await asyncio.wait_for(bad, 30)
    assert all(inserted for _, inserted in await asyncio.wait_for(asyncio.gather(*good), 30))
    assert len(store.records_sync()) == 5
    store.close()


async def test_a_lock_held_elsewhere_never_blocks_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    store = SqliteIdempotencyStore(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        reserve = asyncio.ensure_future(store.reserve(rec()))
        ticks = 0
        for _ in range(10):  # the loop keeps running while the reservation waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 10 and not reserve.done()
    finally:
        other.execute("COMMIT")
        other.close()
    stored, inserted = await asyncio.wait_for(reserve, 30)
    assert inserted
    # The outcome write too: a single autocommit statement that finds the lock taken fails
    # whole, and is handed to the writer thread, which waits for the lock.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        outcome = asyncio.ensure_future(store.replace(
            stored.with_state(RecordState.SUCCEEDED, 1001.0, "pi_1"), expected_key=stored.key))
        await asyncio.sleep(0.02)
        assert not outcome.done()
    finally:
        other.execute("COMMIT")
        other.close()
    assert await asyncio.wait_for(outcome, 30)
    (record,) = store.records_sync()
    assert record.state is RecordState.SUCCEEDED
    store.close()


@pytest.mark.parametrize("durability", ["process", "power"])
async def test_a_write_is_committed_when_it_returns(durability: Any, tmp_path: Path) -> None:
    """What returned is committed (in the WAL), not held in an open transaction: another
    connection sees it at once, on the fast path and through the writer thread alike."""
    path = tmp_path / "k.db"
    store = SqliteIdempotencyStore(path, durability=durability)
    reader = sqlite3.connect(path, isolation_level=None)

    def state(reference: str) -> str | None:
        row = reader.execute("SELECT state FROM egress_idempotency WHERE reference = ?",
                             (reference,)).fetchone()
        return None if row is None else str(row[0])

    for n in range(3):
        record, inserted = await store.reserve(rec(f"o-{n}"))
        assert inserted and state(f"o-{n}") == "pending"
        assert await store.replace(record.with_state(RecordState.SUCCEEDED, 1001.0, "pi_1"),
                                   expected_key=record.key)
        assert state(f"o-{n}") == "succeeded"
        assert not store._conn.in_transaction  # type: ignore[union-attr]
    record, inserted = store.reserve_sync(rec("sync"))
    assert inserted and state("sync") == "pending"
    reader.close()
    store.close()


async def test_a_payment_abandoned_in_flight_does_not_slow_the_next_ones_for_ever(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reservation never settled (its task cancelled mid-send, an unexpected error) counts as
    a payment in flight only for a while: then a lone payment is on the caller's thread again
    (one commit each, no thread hop) instead of paying the writer thread's hop for ever."""
    now = [0.0]
    monkeypatch.setattr(idempotency_sqlite, "_monotonic", lambda: now[0], raising=False)
    store = SqliteIdempotencyStore(tmp_path / "k.db")
    hops = _batches(store, monkeypatch)
    await store.reserve(rec("abandoned"))  # never settled
    now[0] = 1.0
    await _one_payment(store, "o-1")  # one other payment still counts as in flight
    assert hops, "a payment beside one in flight goes through the writer thread"
    hops.clear()
    now[0] = 1000.0
    for n in range(3):
        await _one_payment(store, f"later-{n}")
    assert hops == [], hops
    assert {r.reference for r in store.records_sync()} >= {"abandoned", "o-1", "later-2"}
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
async def test_a_forked_child_gets_its_own_connection_and_writer(tmp_path: Path) -> None:
    store = SqliteIdempotencyStore(tmp_path / "k.db", durability="power")
    await store.reserve(rec("parent"))  # the writer thread and both connections exist now
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            _, inserted = asyncio.run(store.reserve(rec("child")))
            code = 0 if inserted else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert {r.reference for r in store.records_sync()} == {"parent", "child"}
    store.close()


def _start(url: str, key: str, path: Path, references: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WORKER), url, key, str(path), str(references)],
                            stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("durability", ["process", "power"])
def test_killed_at_random_points_then_restarted_one_charge_each(durability: str,
                                                                tmp_path: Path) -> None:
    """A real process, SIGKILLed twice mid-run (after a random number of payments, so at any
    point of one), then run to the end: FakeStripe holds exactly one charge per reference."""
    references = 20
    path = tmp_path / f"keys-{durability}.db"
    SqliteIdempotencyStore(path, durability=durability).close()  # type: ignore[arg-type]
    rng = random.Random(len(durability))
    with FakeStripe() as fake:
        for _ in range(2):
            child = _start(fake.url, fake.api_key, path, references)
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 60
            target = len(fake.ledger.charges) + rng.randint(1, 6)
            while len(fake.ledger.charges) < target and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.random() * 0.02)
            child.send_signal(signal.SIGKILL)
            child.wait(30)
            child.stdout.close()
        final = _start(fake.url, fake.api_key, path, references)
        out, _ = final.communicate(timeout=120)
        assert final.returncode == 0, out
        charged = [charge.reference for charge in fake.ledger.charges]
    assert sorted(charged) == sorted(f"order-{n}" for n in range(references))
