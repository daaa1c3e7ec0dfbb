"""The fuzz harness: one call per input, only documented egress errors may escape, each input
fast, and a tally per parser class for the closing report.

``EGRESS_FUZZ_EXAMPLES`` (default 200) sets the examples per property; raise it for a long run
(``EGRESS_FUZZ_EXAMPLES=20000 uv run --frozen pytest tests/fuzz -q``).

Time: each input is timed with ``time.perf_counter``. An input over :data:`SLOW_MS` is run again
twice and judged by its fastest run, so a scheduler hiccup on a loaded machine is not a
finding but a parser that is slow on that input (quadratic, a huge int) is. The worst time per
parser is printed in the terminal summary.
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


def _once(fn: Callable[[], Any], allowed: Allowed) -> tuple[float, BaseException | None]:
    start = time.perf_counter()
    try:
        fn()
    except allowed as exc:
        return (time.perf_counter() - start) * 1000, exc
    return (time.perf_counter() - start) * 1000, None


def attempt(parser: str, fn: Callable[[], Any], allowed: Allowed = ()) -> BaseException | None:
    """Run ``fn`` once on one input: it returns, or raises one of ``allowed`` (returned).

    Anything else propagates (hypothesis shrinks it and reports the input). Raises
    ``AssertionError`` if the input stays slower than :data:`SLOW_MS` over three runs.
    """
    elapsed, caught = _once(fn, allowed)
    if elapsed > SLOW_MS:
        elapsed = min(elapsed, *(_once(fn, allowed)[0] for _ in range(2)))
    tally = TALLY[parser]
    tally[0] += 1
    tally[1] = max(tally[1], elapsed)
    assert elapsed <= SLOW_MS, f"{parser}: one input took {elapsed:.1f} ms (limit {SLOW_MS} ms)"
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
