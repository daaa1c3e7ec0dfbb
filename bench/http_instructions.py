"""CPU instructions per GET: egress ApiClient (default pipeline, aiohttp) against raw aiohttp.

    uv run python bench/http_instructions.py [--small 200] [--large 600] [--repeat 2]
                                             [--concurrency 1 64] [--cases aiohttp egress ...]

Wall-clock rates on a shared, loaded machine wander by 2x from one round to the next; the number
of instructions the client process executes per request does not depend on the load. Each case
runs in a child process under ``valgrind --tool=cachegrind --cache-sim=no`` (it counts every
instruction the process executes, interpreter and C extensions included), once with ``small``
and once with ``large`` GETs after the same warm-up; the difference divided by ``large - small``
is the cost of one GET, with start-up, imports and warm-up cancelled out (the children run with
a fixed ``PYTHONHASHSEED``, so that start-up is the same in both). nginx (started here,
as in ``bench/http_client.py``) is a separate process and is not counted. ``repeat`` runs each
pair that many times, interleaving the cases, and the table shows the median and the range.
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
from pathlib import Path
from typing import Any

# egress-public: the same ApiClient with the aiohttp backend's fast path turned off (its
# fallback, ``session.request``; docs/http-client.md): what the fast path saves. The pyreqwest
# cases (raw Client, egress on its backend) count reqwest's tokio threads too; how many
# instructions those spend waiting for work depends a little on timing, so their counts move
# more from run to run than the pure-Python cases'.
CASES = ("aiohttp", "egress", "egress-public", "pyreqwest", "egress-pyreqwest")
DEFAULT_CASES = CASES[:3]


async def child(case: str, url: str, count: int, concurrency: int, warmup: int) -> None:
    target = url + "/x"
    if case == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession()

        async def call() -> Any:
            async with session.get(target) as response:
                return await response.read()

        async def close() -> None:
            await session.close()
    elif case == "pyreqwest":
        from pyreqwest.client import ClientBuilder

        reqwest = ClientBuilder().max_connections(100).build()

        async def call() -> Any:
            return bytes(await (await reqwest.get(target).build().send()).bytes())

        async def close() -> None:
            await reqwest.close()
    elif case == "egress-pyreqwest":
        from egress.http import ApiClient

        client = ApiClient(url, backend="pyreqwest")

        async def call() -> Any:
            return await client.get("/x")

        async def close() -> None:
            await client.aclose()
    else:
        import egress.http._aiohttp
        from egress.http import ApiClient

        egress.http._aiohttp._fast_path_allowed = case == "egress"
        client = ApiClient(url)

        async def call() -> Any:
            return await client.get("/x")

        async def close() -> None:
            await client.aclose()

    async def run(n: int) -> None:
        per_worker = max(1, n // concurrency)

        async def worker() -> None:
            for _ in range(per_worker):
                await call()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    await run(warmup)
    await run(count)
    await close()


def instructions(case: str, url: str, count: int, concurrency: int, warmup: int) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("valgrind not found: apt-get install -y valgrind")
    command = [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
               sys.executable, __file__, "--child", case, "--url", url, "--count", str(count),
               "--concurrency", str(concurrency), "--warmup", str(warmup)]
    # A fixed hash seed: with a random one, start-up alone (dict and set layouts) moves by
    # millions of instructions from one process to the next, which the difference would keep.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=True,
                          env=env)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=192)
    parser.add_argument("--large", type=int, default=576)
    parser.add_argument("--warmup", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), choices=CASES)
    parser.add_argument("--child", choices=CASES)
    parser.add_argument("--url")
    parser.add_argument("--count", type=int)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child, args.url, args.count, args.concurrency[0], args.warmup))
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from http_client import nginx  # the same server as the throughput bench

    per_get: dict[tuple[str, int], list[float]] = {}
    with nginx() as url:
        for _ in range(args.repeat):
            for concurrency in args.concurrency:
                for case in args.cases:
                    small = instructions(case, url, args.small, concurrency, args.warmup)
                    large = instructions(case, url, args.large, concurrency, args.warmup)
                    value = (large - small) / (args.large - args.small)
                    per_get.setdefault((case, concurrency), []).append(value)
                    print(f"  {case:13} c={concurrency:<3} {value / 1000:8.1f} k instructions/GET",
                          file=sys.stderr, flush=True)
    print(f"\nCPU instructions per GET (valgrind cachegrind, {args.large} - {args.small} GETs "
          f"after {args.warmup} warm-up, {args.repeat} runs: median (min-max))\n")
    print("| case | concurrency | k instructions per GET | raw aiohttp / case |")
    print("|---|---:|---:|---:|")
    for concurrency in args.concurrency:
        raw = per_get.get(("aiohttp", concurrency))
        for case in args.cases:
            values = per_get[(case, concurrency)]
            ratio = ""
            if raw is not None:
                ratios = [r / v for r in raw for v in values]
                ratio = (f"{statistics.median(ratios):.3f}× "
                         f"({min(ratios):.3f}–{max(ratios):.3f})")
            print(f"| {case} | {concurrency} | {statistics.median(values) / 1000:.1f} "
                  f"({min(values) / 1000:.1f}–{max(values) / 1000:.1f}) | {ratio} |")


if __name__ == "__main__":
    main()
