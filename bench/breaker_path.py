"""The breaker's hot path in bytecode instructions: a guard that does not move with machine load.

    uv run python bench/breaker_path.py [--warmup 300]

Timings on a shared machine wander by 2x and more; the number of bytecode instructions one
success runs through a pump does not. This counts them (``sys.settrace`` with opcode events),
for each of the breaker's four pumps, with and without slow-call timing, after ``--warmup``
calls (so the window is quiet, the steady state of a healthy upstream). The count is the call
through the breaker minus the same call without it. Compare before and after a change to
``policies/_breaker_pump.py`` or ``_breaker_state.py``; the timed figures stay in
``bench/breaker.py``.

Target: no pump runs more than 10 % over :data:`RECORDED` (the counts before issue 11's reshaping,
Python 3.11); a change that makes the pumps cheaper should lower them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any

from egress import CircuitBreaker, Pipeline

#: pump -> (quiet untimed success, quiet success with slow-call timing), in instructions.
RECORDED: dict[str, tuple[int, int]] = {
    "@breaker, sync": (30, 46),
    "@breaker, async": (33, 49),
    "Pipeline step, sync": (29, 47),
    "Pipeline step, async": (32, 50),
}


def instructions(call: Callable[[], object], warmup: int) -> int:
    """Bytecode instructions one ``call()`` runs, after ``warmup`` calls."""
    for _ in range(warmup):
        call()
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        frame.f_trace_opcodes = True
        if event == "opcode":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(None)
    return count


def run_to_end(make: Callable[[], Coroutine[Any, Any, object]]) -> Callable[[], object]:
    """A coroutine that never suspends (a no-op through the pumps), run without a loop."""

    def call() -> object:
        try:
            make().send(None)
        except StopIteration as done:
            return done.value
        raise RuntimeError("the coroutine suspended")

    return call


def noop() -> None:
    return None


async def anoop() -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warmup", type=int, default=300)
    warmup = parser.parse_args().warmup

    def extra(guarded: Callable[[], object], bare: Callable[[], object]) -> int:
        return instructions(guarded, warmup) - instructions(bare, warmup)

    bare_pipeline = Pipeline()

    def counts(slow: float | None) -> dict[str, int]:
        def breaker(name: str) -> CircuitBreaker:
            return CircuitBreaker(name, store=None, slow_call_duration=slow)

        pipe = Pipeline(breaker("step"))
        return {
            "@breaker, sync": extra(breaker("sync")(noop), noop),
            "@breaker, async": extra(run_to_end(breaker("async")(anoop)), run_to_end(anoop)),
            "Pipeline step, sync": extra(lambda: pipe.execute_sync("op", noop),
                                         lambda: bare_pipeline.execute_sync("op", noop)),
            "Pipeline step, async": extra(run_to_end(lambda: pipe.execute("op", anoop)),
                                          run_to_end(lambda: bare_pipeline.execute("op", anoop))),
        }

    untimed, timed = counts(None), counts(60.0)
    print(f"{'pump':<24}{'quiet, untimed':>16}{'slow-call on':>14}{'recorded':>12}")
    missed = []
    for name, (was_untimed, was_timed) in RECORDED.items():
        now = (untimed[name], timed[name])
        print(f"{name:<24}{now[0]:>16}{now[1]:>14}{f'{was_untimed}/{was_timed}':>12}")
        if now[0] > was_untimed * 1.1 or now[1] > was_timed * 1.1:
            missed.append(name)
    print(f"\nTarget: every pump within 10 % of the recorded counts: "
          f"{'MISSED (' + ', '.join(missed) + ')' if missed else 'met'}")

if __name__ == "__main__":
    main()
