"""The fuzz harness: one call per input, only documented egress errors may escape, each input
fast, and a tally per parser class for the closing report.

``EGRESS_FUZZ_EXAMPLES`` (default 200) sets the examples per property; raise it for a long run
(``EGRESS_FUZZ_EXAMPLES=20000 uv run --frozen pytest tests/fuzz -q``).

Time: each input is timed with ``time.perf_counter`` (wall) and ``time.thread_time`` (CPU of
this thread). An input over :data:`SLOW_MS` of wall time is run again twice; it fails only if
even its cheapest run used more than :data:`SLOW_MS` of *CPU*: on a loaded 2-core machine the
wall clock of a 10 ms parse can read 60 ms (the thread waits for a core), which is no finding,
while a parser that is slow on an input (quadratic, a huge int) burns the CPU every time. The
worst wall time per parser is printed in the terminal summary.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

EXAMPLES = int(os.environ.get("EGRESS_FUZZ_EXAMPLES", "200"))
SLOW_MS = 50.0

#: parser class -> [inputs tried, worst time in ms (fastest of the reruns for a slow one)]
TALLY: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

Allowed = type[BaseException] | tuple[type[BaseException], ...]


def _once(fn: Callable[[], Any], allowed: Allowed) -> tuple[float, float, BaseException | None]:
    """(wall ms, CPU ms, the allowed error raised or None)."""
    start, cpu = time.perf_counter(), time.thread_time()
    caught: BaseException | None = None
    try:
        fn()
    except allowed as exc:
        caught = exc
    return (time.perf_counter() - start) * 1000, (time.thread_time() - cpu) * 1000, caught


def attempt(parser: str, fn: Callable[[], Any], allowed: Allowed = ()) -> BaseException | None:
    """Run ``fn`` once on one input: it returns, or raises one of ``allowed`` (returned).

    Anything else propagates (hypothesis shrinks it and reports the input). Raises
    ``AssertionError`` if the input stays slower than :data:`SLOW_MS` over three runs.
    """
    elapsed, cpu, caught = _once(fn, allowed)
    if elapsed > SLOW_MS:
        reruns = [_once(fn, allowed) for _ in range(2)]
        elapsed = min(elapsed, *(run[0] for run in reruns))
        cpu = min(cpu, *(run[1] for run in reruns))
        assert cpu <= SLOW_MS, f"{parser}: one input used {cpu:.1f} ms of CPU (limit {SLOW_MS})"
    tally = TALLY[parser]
    tally[0] += 1
    tally[1] = max(tally[1], elapsed)
    return caught


def exactly(*types: type[BaseException]) -> Callable[[BaseException | None], None]:
    """A check that an escaped error is exactly one of ``types`` or an egress error (a bare
    ``ValueError`` is the documented contract of the Stripe parsers; a ``UnicodeDecodeError``,
    also a ``ValueError``, is not)."""
    from egress.errors import EgressError

    def check(exc: BaseException | None) -> None:
        if exc is not None and not isinstance(exc, EgressError):
            assert type(exc) in types, f"{type(exc).__name__} escaped: {exc}"

    return check
