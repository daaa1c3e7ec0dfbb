"""What importing egress costs. Prints a table.

    uv run python bench/imports.py [--runs 11]

Each row runs a fresh interpreter ``runs`` times with ``python -X importtime -c STATEMENT`` and
reports the median of the cumulative import time of the statement's modules (what
``-X importtime`` attributes to them, so interpreter start-up is excluded), and the median wall
time of the whole process. Rows for ``asyncio`` and an empty statement give the machine's
baseline: egress cannot load faster than the asyncio it needs once a call runs.

``--compare DIR`` adds a column for another source tree (say an older checkout's ``src``),
measured interleaved with this one so that machine load hits both alike::

    git archive v0.1.0 src | tar -x -C /tmp/old
    uv run python bench/imports.py --compare /tmp/old/src
"""

from __future__ import annotations

import argparse
import os
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


def measure(statement: str, src: str | None = None) -> tuple[float, float]:
    """(import ms, wall ms) of one fresh interpreter running ``statement``."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src  # ahead of the installed (editable) egress
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement],
                          capture_output=True, text=True, check=True, timeout=60, env=env)
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
    parser.add_argument("--compare", metavar="SRC", default=None,
                        help="another egress source tree to measure alongside")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; median of {args.runs} fresh interpreters each; "
          f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}\n")
    other = " | SRC import ms | SRC process ms" if args.compare else ""
    print(f"| {'statement':<60} | import ms | process ms{other} |")
    print(f"|{'-' * 62}|----------:|-----------:" + ("|--------------:|---------------:"
                                                       if args.compare else "") + "|")
    for label, statement in CASES:
        runs, before = [], []
        for _ in range(args.runs):
            runs.append(measure(statement))
            if args.compare:
                before.append(measure(statement, args.compare))
        row = (f"| {label:<60} | {statistics.median(r[0] for r in runs):9.1f} | "
               f"{statistics.median(r[1] for r in runs):10.1f}")
        if args.compare:
            row += (f" | {statistics.median(r[0] for r in before):13.1f} | "
                    f"{statistics.median(r[1] for r in before):14.1f}")
        print(row + " |")


if __name__ == "__main__":
    main()
