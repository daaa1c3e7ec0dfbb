"""What importing egress costs. Prints a table.

    uv run python bench/imports.py [--runs 11] [--min] [--compare SRC] [--source]

Each row runs a fresh interpreter ``runs`` times with ``python -X importtime -c STATEMENT`` and
reports the median of the cumulative import time of the statement's modules (what
``-X importtime`` attributes to them, so interpreter start-up is excluded), and the median wall
time of the whole process. Rows for ``asyncio`` and an empty statement give the machine's
baseline: egress cannot load faster than the asyncio it needs once a call runs. The "beyond
asyncio" column runs ``import asyncio`` first and counts only what the statement adds: egress's
own part (and any library it pulls in besides asyncio).

Modules are read from compiled bytecode, as after ``pip install`` (which compiles every module):
each tree's ``.pyc`` files go to a temporary ``PYTHONPYCACHEPREFIX`` on an unmeasured first run,
so ``PYTHONDONTWRITEBYTECODE`` in the environment (or a read-only tree) cannot turn the
measurement into one of the compiler. ``--source`` measures compiling from source instead.

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
import tempfile
import time

CASES = [
    ("(interpreter only)", "pass"),
    ("import asyncio", "import asyncio"),
    ("import egress", "import egress"),
    ("from egress import Pipeline, Retry, Timeout, CircuitBreaker",
     "from egress import Pipeline, Retry, Timeout, CircuitBreaker"),
    ("import egress.http", "import egress.http"),
    ("from egress.http import ApiClient", "from egress.http import ApiClient"),
    ("import egress.payments", "import egress.payments"),
    ("import egress.adapters.stripe", "import egress.adapters.stripe"),
    ("import egress.testing", "import egress.testing"),
    ("import httpx (for scale)", "import httpx"),
    ("import aiohttp (for scale)", "import aiohttp"),
]

_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)")


def measure(statement: str, src: str | None = None, *, pycache: str | None = None,
            after_asyncio: bool = False) -> tuple[float, float]:
    """(import ms, wall ms) of one fresh interpreter running ``statement``.

    With ``after_asyncio``, asyncio is imported first and only what the statement adds counts.
    """
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src  # ahead of the installed (editable) egress
    if pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = pycache
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    code = f"import asyncio; {statement}" if after_asyncio else statement
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                          capture_output=True, text=True, check=True, timeout=60, env=env)
    wall = (time.perf_counter() - started) * 1000
    # Top-level rows (one space of indent) are what the statement imported itself; site and
    # encodings are imported by every interpreter before the statement runs, so they are skipped
    # by taking only rows after the last start-up module (and after asyncio's, if asked).
    lines = done.stderr.splitlines()
    last = "| asyncio" if after_asyncio else "| site"
    start = max((i for i, line in enumerate(lines) if line.endswith(last)), default=-1)
    total_us = sum(int(m.group(1)) for line in lines[start + 1:]
                   if (m := _LINE.match(line)) and len(m.group(2)) == 1)
    return total_us / 1000, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--compare", metavar="SRC", default=None,
                        help="another egress source tree to measure alongside")
    parser.add_argument("--min", action="store_true",
                        help="the fastest run instead of the median (steadier on a busy machine)")
    parser.add_argument("--source", action="store_true",
                        help="compile from source on every run (no .pyc), as a read-only tree")
    args = parser.parse_args()
    stat = min if args.min else statistics.median
    with tempfile.TemporaryDirectory(prefix="egress-bench-pyc-") as cache:
        pycache = None if args.source else cache
        how = "from source" if args.source else "from .pyc"
        print(f"python {sys.version.split()[0]}; {stat.__name__} of {args.runs} fresh "
              f"interpreters each, {how}; cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}\n")
        other = " | SRC ms | SRC beyond asyncio" if args.compare else ""
        print(f"| {'statement':<60} | import ms | beyond asyncio | process ms{other} |")
        print(f"|{'-' * 62}|----------:|---------------:|-----------:"
              + ("|-------:|-------------------:" if args.compare else "") + "|")
        trees: list[str | None] = [None, args.compare] if args.compare else [None]
        for label, statement in CASES:
            own = label.startswith(("import egress", "from egress"))
            for src in trees:  # the unmeasured run that writes the .pyc files
                measure(statement, src, pycache=pycache, after_asyncio=own)
            rows: dict[str | None, list[tuple[float, float, float]]] = {t: [] for t in trees}
            for _ in range(args.runs):
                for src in trees:  # interleaved, so that machine load hits both trees alike
                    ms, wall = measure(statement, src, pycache=pycache)
                    added = (measure(statement, src, pycache=pycache, after_asyncio=True)[0]
                             if own else 0.0)
                    rows[src].append((ms, added, wall))

            mine = [stat(column) for column in zip(*rows[None], strict=True)]
            beyond = f"{mine[1]:14.1f}" if own else f"{'-':>14}"
            row = f"| {label:<60} | {mine[0]:9.1f} | {beyond} | {mine[2]:10.1f}"
            if args.compare:
                theirs = [stat(column) for column in zip(*rows[args.compare], strict=True)]
                beyond = f"{theirs[1]:18.1f}" if own else f"{'-':>18}"
                row += f" | {theirs[0]:6.1f} | {beyond}"
            print(row + " |", flush=True)


if __name__ == "__main__":
    main()
