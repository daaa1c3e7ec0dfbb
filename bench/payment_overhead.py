"""egress's own CPU work per payment, over a raw aiohttp POST + json.loads. Prints a table.

    uv run python bench/payment_overhead.py [--batch 200] [--rounds 15] [--store memory sqlite]
    uv run python bench/payment_overhead.py --instructions [--store memory]   (valgrind; slow)
    uv run python bench/payment_overhead.py --instructions --store offwire    (payment work only)
    uv run python bench/payment_overhead.py --instructions --store memory sqlite --sdk
                                            [--concurrency 32]   (and the stripe SDK's count)

The same canned nginx as bench/payments.py answers every ``POST /v1/payment_intents``; nginx runs
on its own CPU and in its own process, so none of its work is counted. Both clients run at
concurrency 1 in one process and one event loop, in alternating batches (raw, egress, raw, ...),
and each batch's CPU time (``time.process_time``: this process only, all threads) is divided by
its payments. The difference of neighbouring batches is egress's own work per payment: building
and validating the request, the fingerprint, the idempotency keeper and its store, the HTTP
client's pipeline (deadline, retry, breaker, bulkhead), and parsing the answer into a
``Payment``. Alternating batches, and the median of many, keep a loaded machine's drift out of
the difference (the spread column shows what is left).

``--store offwire`` answers every POST in process (bench/payments.py's ``egress-memory-offwire``):
no HTTP client, no socket, so its whole count is egress's payment work alone (the request and
its fingerprint, the keeper and the memory store, parsing the answer into a ``Payment``, the
events), without the HTTP path's share, which moves with the backend.

``--instructions`` counts CPU instructions instead (valgrind's cachegrind, no cache model): each
mode runs twice in a fresh process under valgrind, with ``--count`` and ``3 × --count``
payments after the same warm-up, and the difference of the two totals, divided by the extra
payments, is the instructions per payment: start-up and imports cancel out, and other work on
the machine does not move the count. About two minutes per run on a quiet machine. ``--sdk``
adds the stripe SDK on its aiohttp client (bench/payments.py's reference) and a ratio column:
the SDK's instructions over each mode's, a load-independent reading of bench/payments.py's "per
CPU-second" ratio, except that it counts no time in the kernel (system calls: the SQLite
store's writes to its file show there, and not here).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from http_client import nginx, pin
from payments import LOCATIONS, OFFWIRE, RAW_MODE, REFERENCE_MODE, _async_case

STORES = {"memory": "egress-memory", "sqlite": "egress-sqlite",
          "offwire": "egress-memory" + OFFWIRE}


async def _interleaved(url: str, stores: list[str], batch: int, rounds: int,
                       ) -> dict[str, list[float]]:
    """CPU µs per payment of each batch, by mode."""
    stack: list[Callable[[], Awaitable[Any]]] = []
    modes = [RAW_MODE, *(STORES[name] for name in stores)]
    calls = {mode: await _async_case(mode, url, stack) for mode in modes}
    numbers = itertools.count()
    cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    try:
        for call in calls.values():  # warm up: connections, caches, first-call imports
            for _ in range(200):
                await call(f"warm-{next(numbers)}")
        for _ in range(rounds):
            for mode, call in calls.items():
                started = time.process_time()
                for _ in range(batch):
                    await call(f"order-{next(numbers)}")
                cpu[mode].append((time.process_time() - started) / batch * 1e6)
    finally:
        for close in reversed(stack):
            await close()
    return cpu


def _cpu_table(cpu: dict[str, list[float]]) -> str:
    raw = cpu[RAW_MODE]
    lines = ["| mode | CPU µs/payment (median) | over raw aiohttp: median | spread (p10-p90) |",
             "|---|---:|---:|---|"]
    for mode, values in cpu.items():
        if mode == RAW_MODE or mode.endswith(OFFWIRE):
            lines.append(f"| {mode} | {statistics.median(values):.0f} | - | - |")
            continue
        over = sorted(v - r for v, r in zip(values, raw, strict=True))
        low, high = over[len(over) // 10], over[-1 - len(over) // 10]
        lines.append(f"| {mode} | {statistics.median(values):.0f} | "
                     f"{statistics.median(over):.0f} | {low:.0f} to {high:.0f} |")
    return "\n".join(lines)


def _instructions(mode: str, url: str, count: int, concurrency: int = 1) -> float:
    # A fixed hash seed: a random one moves start-up (and so the difference) by thousands.
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    totals = []
    for n in (count, 3 * count):
        out = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
             sys.executable, str(Path(__file__).with_name("payments.py")), "--worker", mode, url,
             str(n), str(concurrency)],
            capture_output=True, text=True, env=env, timeout=1800, check=False)
        found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
        if out.returncode != 0 or found is None:
            raise RuntimeError(f"{mode} under valgrind failed:\n{out.stderr[-2000:]}")
        totals.append(int(found.group(1).replace(",", "")))
    return (totals[1] - totals[0]) / (2 * count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=200, help="payments per batch")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--store", nargs="*", choices=sorted(STORES), default=["memory"])
    parser.add_argument("--instructions", action="store_true", help="count with valgrind")
    parser.add_argument("--count", type=int, default=200,
                        help="with --instructions: payments of the shorter run")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="with --instructions: payments in flight at once")
    parser.add_argument("--sdk", action="store_true",
                        help=f"with --instructions: also count the stripe SDK ({REFERENCE_MODE})")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args()
    affinity, pinning = ("", "not pinned") if args.no_pin else pin()
    with nginx(affinity, LOCATIONS) as url:
        print(f"nginx on {url} ({pinning}); "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
        if args.instructions:
            modes = [RAW_MODE, *(STORES[name] for name in args.store)]
            modes += [REFERENCE_MODE] if args.sdk else []
            counts = {mode: _instructions(mode, url, args.count, args.concurrency)
                      for mode in modes}
            print(f"\nconcurrency {args.concurrency}\n\n| mode | instructions/payment | "
                  f"over raw aiohttp | {REFERENCE_MODE} ÷ this |\n|---|---:|---:|---:|")
            for mode, value in counts.items():
                # offwire sends nothing: its whole count is egress's payment work
                over = ("-" if mode in (RAW_MODE, REFERENCE_MODE) or mode.endswith(OFFWIRE)
                        else f"{value - counts[RAW_MODE]:,.0f}")
                # User-space work only: the system calls' time in the kernel is not counted
                # (with the SQLite store, its writes to the WAL file).
                sdk = (f"{counts[REFERENCE_MODE] / value:.2f}×" if REFERENCE_MODE in counts
                       and not mode.endswith(OFFWIRE) else "-")
                print(f"| {mode} | {value:,.0f} | {over} | {sdk} |")
            return
        cpu = asyncio.run(_interleaved(url, args.store, args.batch, args.rounds))
    print(f"\n{args.rounds} rounds of {args.batch} payments per mode, concurrency 1\n")
    print(_cpu_table(cpu))


if __name__ == "__main__":
    main()
