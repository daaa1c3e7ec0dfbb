"""What importing egress costs. Prints a table.

    uv run python bench/imports.py [--runs 11]

Each row runs a fresh interpreter ``runs`` times with ``python -X importtime -c STATEMENT`` and
reports the median of the cumulative import time of the statement's modules (what
``-X importtime`` attributes to them, so interpreter start-up is excluded), and the median wall
time of the whole process. Rows for ``asyncio`` and an empty statement give the machine's
baseline: egress cannot load faster than the asyncio it needs once a call runs.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time

CASES = [
    ("(interpreter only)", "pass"),
    ("import asyncio", "import asyncio"),
    ("import egress", "import egress"),
    ("from egress import Pipeline, Retry, Timeout, CircuitBreaker",
     "from egress import Pipeline, Retry, Timeout, CircuitBreaker"),
    ("import egress.http", "import egress.http"),
    ("import egress.payments", "import egress.payments"),
    ("import egress.adapters.stripe", "import egress.adapters.stripe"),
    ("import egress.testing", "import egress.testing"),
    ("import httpx (for scale)", "import httpx"),
    ("import aiohttp (for scale)", "import aiohttp"),
]

_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)")


def measure(statement: str) -> tuple[float, float]:
    """(import ms, wall ms) of one fresh interpreter running ``statement``."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement],
                          capture_output=True, text=True, check=True, timeout=60)
    wall = (time.perf_counter() - started) * 1000
    # Top-level rows (one space of indent) are what the statement imported itself; site and
    # encodings are imported by every interpreter before the statement runs, so they are skipped
    # by taking only rows after the last start-up module.
    lines = done.stderr.splitlines()
    start = max((i for i, line in enumerate(lines) if line.endswith("| site")), default=-1)
    total_us = sum(int(m.group(1)) for line in lines[start + 1:]
                   if (m := _LINE.match(line)) and len(m.group(2)) == 1)
    return total_us / 1000, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; median of {args.runs} fresh interpreters each\n")
    print(f"| {'statement':<62} | import ms | process ms |")
    print(f"|{'-' * 64}|----------:|-----------:|")
    for label, statement in CASES:
        runs = [measure(statement) for _ in range(args.runs)]
        imports = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        print(f"| {label:<62} | {imports:9.1f} | {wall:10.1f} |")


if __name__ == "__main__":
    main()
