"""The SQLite idempotency store's own cost per operation, alone (no HTTP). Prints a table.

    uv run python bench/sqlite_store.py [--count 2000] [--rounds 5]
    uv run python bench/sqlite_store.py --instructions [--count 500]   (valgrind; slow)

A payment makes two store writes: the reservation of its key (``reserve``, before the send)
and its outcome (``replace`` to SUCCEEDED, after the answer). Each row runs ``--count`` of one
operation on a fresh store file (the reservations first, then their outcomes), one at a time,
from an event loop (``async``: the caller's-thread fast path, or the writer thread with
``durability="power"``'s reservations) or through the ``*_sync`` methods. The memory store is
the baseline: what the keeper costs with no durable store at all.

Columns: CPU µs per operation (``time.process_time``, this process, all threads, so the kernel's
work for the file writes and locks is in it), wall µs, and with ``--instructions`` the CPU
instructions per operation counted by valgrind (cachegrind, user space only: the system calls'
kernel work is not in it): each case runs in a fresh process with ``--count`` and
``3 × --count`` operations, and the difference is divided by the extra operations, so start-up
cancels out and the machine's load does not move it. CPU and wall figures are medians of
``--rounds`` rounds, which alternate the cases so that a loaded machine's drift spreads evenly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from egress.payments import IdempotencyRecord, RecordState
from egress.stores.idempotency_memory import MemoryIdempotencyStore
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore

#: (store, durability, face)
CASES = [("memory", "-", "async"), ("sqlite", "process", "async"), ("sqlite", "power", "async"),
         ("sqlite", "process", "sync"), ("sqlite", "power", "sync")]
OPS = ("reserve", "outcome")


def _records(count: int) -> tuple[list[IdempotencyRecord], list[IdempotencyRecord]]:
    """``count`` fresh reservations, and the outcome (SUCCEEDED) of each."""
    now = time.time()
    records = [IdempotencyRecord.new("stripe-test", "create", f"order-{n:07d}", "f" * 64, now)
               for n in range(count)]
    return records, [r.with_state(RecordState.SUCCEEDED, now + 1, "pi_3MtwBwLkdIwHu7ix28a3tqPa")
                     for r in records]


def _open(store_name: str, durability: str, folder: str) -> Any:
    if store_name == "memory":
        return MemoryIdempotencyStore()
    return SqliteIdempotencyStore(Path(folder) / "keys.db", durability=durability)  # type: ignore[arg-type]


def _payments(store: Any, face: str, records: list[IdempotencyRecord],
              outcomes: list[IdempotencyRecord] | None) -> tuple[list[float], list[float]]:
    """One payment at a time: reserve its key, then (with ``outcomes``) write its outcome.

    Returns the CPU and wall seconds spent in each kind of write, ``[reserve, outcome]``
    (the timer's own cost included: see :func:`_timer_cost`). Without ``outcomes`` each
    reservation is forgotten as settled, without the write, so that each is alone as a
    concurrency-1 payment's is (the store sends writes beside other payments in flight to its
    writer thread).
    """
    cpu, wall = [0.0, 0.0], [0.0, 0.0]
    clock, perf = time.process_time, time.perf_counter

    def settle(record: IdempotencyRecord) -> None:
        getattr(store, "_open", {}).pop(record.ident, None)

    if face == "sync":
        for n, record in enumerate(records):
            c0, w0 = clock(), perf()
            store.reserve_sync(record)
            c1, w1 = clock(), perf()
            if outcomes is None:
                settle(record)
                c2, w2 = c1, w1
            else:
                store.replace_sync(outcomes[n], expected_key=record.key)
                c2, w2 = clock(), perf()
            cpu[0] += c1 - c0
            cpu[1] += c2 - c1
            wall[0] += w1 - w0
            wall[1] += w2 - w1
        return cpu, wall

    async def run() -> None:
        for n, record in enumerate(records):
            c0, w0 = clock(), perf()
            await store.reserve(record)
            c1, w1 = clock(), perf()
            if outcomes is None:
                settle(record)
                c2, w2 = c1, w1
            else:
                await store.replace(outcomes[n], expected_key=record.key)
                c2, w2 = clock(), perf()
            cpu[0] += c1 - c0
            cpu[1] += c2 - c1
            wall[0] += w1 - w0
            wall[1] += w2 - w1

    asyncio.run(run())
    return cpu, wall


def _timer_cost(count: int = 2000) -> tuple[float, float]:
    """CPU and wall seconds of one ``process_time()`` + ``perf_counter()`` pair."""
    clock, perf = time.process_time, time.perf_counter
    c0, w0 = clock(), perf()
    for _ in range(count):
        clock(), perf()
    return (clock() - c0) / count, (perf() - w0) / count


def _case(store_name: str, durability: str, face: str, count: int, *, warm: int = 200,
          outcomes: bool = True) -> dict[str, tuple[float, float]]:
    """CPU and wall µs per operation, ``{op: (cpu, wall)}``, after ``warm`` payments."""
    folder = tempfile.mkdtemp(prefix="egress-bench-")
    store = _open(store_name, durability, folder)
    records, settled = _records(warm + count)
    try:
        _payments(store, face, records[:warm], settled[:warm] if outcomes else None)
        cpu, wall = _payments(store, face, records[warm:], settled[warm:] if outcomes else None)
    finally:
        if store_name != "memory":
            store.close()
        shutil.rmtree(folder, ignore_errors=True)
    timer_cpu, timer_wall = _timer_cost()
    return {op: ((cpu[i] / count - timer_cpu) * 1e6, (wall[i] / count - timer_wall) * 1e6)
            for i, op in enumerate(OPS)}


def _instructions(case: tuple[str, str, str], ops: str, count: int) -> float:
    totals = []
    for n in (count, 3 * count):
        out = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
             sys.executable, __file__, "--worker", *case, ops, str(n)],
            capture_output=True, text=True, timeout=1800, check=False,
            env=dict(os.environ, PYTHONHASHSEED="0"))
        found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
        if out.returncode != 0 or found is None:
            raise RuntimeError(f"{case} {ops} under valgrind failed:\n{out.stderr[-2000:]}")
        totals.append(int(found.group(1).replace(",", "")))
    return (totals[1] - totals[0]) / (2 * count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="operations per case and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="count with valgrind")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        store_name, durability, face, ops, count = args.worker
        _case(store_name, durability, face, int(count), warm=100, outcomes="," in ops)
        return
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{os.getloadavg()[0]:.1f}; {args.count} operations per case", flush=True)
    if args.instructions:
        print("\n| store | durability | face | instructions/reserve | /outcome | /payment |")
        print("|---|---|---|---:|---:|---:|")
        for case in CASES:
            reserve = _instructions(case, "reserve", args.count)
            payment = _instructions(case, "reserve,outcome", args.count)
            print(f"| {' | '.join(case)} | {reserve:,.0f} | {payment - reserve:,.0f} | "
                  f"{payment:,.0f} |", flush=True)
        return
    samples: dict[tuple[str, str, str], list[dict[str, tuple[float, float]]]] = {
        case: [] for case in CASES}
    for _ in range(args.rounds):
        for case in CASES:
            samples[case].append(_case(*case, args.count))
    print("\n| store | durability | face | CPU µs/reserve | /outcome | wall µs/reserve "
          "| /outcome |\n|---|---|---|---:|---:|---:|---:|")
    for case, rounds in samples.items():
        def median(op: str, which: int, rounds: list[dict[str, tuple[float, float]]] = rounds,
                   ) -> float:
            return statistics.median(r[op][which] for r in rounds)
        print(f"| {' | '.join(case)} | {median('reserve', 0):.1f} | {median('outcome', 0):.1f} "
              f"| {median('reserve', 1):.1f} | {median('outcome', 1):.1f} |")


if __name__ == "__main__":
    main()
