"""One atheris (libFuzzer) run of one target: ``python fuzz/run_target.py TARGET [libFuzzer
flags] [corpus dirs]``; ``TARGET`` ``all`` lets the first byte of each input pick the parser.
``scripts/fuzz`` starts one of these per target; run it by hand only to pass libFuzzer flags of
your own.

Only the parser modules are instrumented for coverage. Each input is timed (CPU of this thread,
so a loaded machine does not fake a finding); one slower than ``EGRESS_FUZZ_SLOW_MS`` on its
cheapest of three runs is a finding like an escaped exception: libFuzzer saves it and stops.
The run's tally per parser goes to the JSON file ``EGRESS_FUZZ_STATS`` names.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _parsers  # imports no egress module: the list of modules to instrument


def _others() -> list[str]:
    """Every egress module but the parsers, found on disk without importing any (an imported
    module can no longer be instrumented): instrumenting all of egress costs seconds of CPU at
    each start, and their coverage tells the fuzzer nothing."""
    spec = importlib.util.find_spec("egress")
    assert spec is not None and spec.origin is not None
    root = Path(spec.origin).parent
    names = {".".join(("egress", *path.relative_to(root).with_suffix("").parts)).removesuffix(
        ".__init__") for path in root.rglob("*.py")}
    return sorted(names - set(_parsers.MODULES))


with atheris.instrument_imports(include=["egress"], exclude=_others()):
    import targets

QUIET_MS = 50.0  # the contract, on a quiet machine and uninstrumented code
SLOW_MS = float(os.environ.get("EGRESS_FUZZ_SLOW_MS", "250"))
STATS = os.environ.get("EGRESS_FUZZ_STATS")
NAME = sys.argv.pop(1) if len(sys.argv) > 1 else ""
if NAME != "all" and NAME not in targets.TARGETS:
    sys.exit(f"usage: run_target.py TARGET [libFuzzer args]; TARGET: all, "
             f"{', '.join(targets.TARGETS)}")
STARTED = time.monotonic()
tally: dict[str, dict[str, Any]] = {}
_last_write = 0.0


def _timed(name: str, data: bytes) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.thread_time()
    targets.run_one(name, data)
    return (time.perf_counter() - start) * 1000, (time.thread_time() - cpu) * 1000


def _write() -> None:
    if STATS:
        Path(STATS).write_text(json.dumps({"seconds": time.monotonic() - STARTED,
                                           "targets": tally}))


def test_one_input(data: bytes) -> None:
    global _last_write
    name, data = targets.pick(data) if NAME == "all" else (NAME, data)
    row = tally.setdefault(name, {"inputs": 0, "max_wall_ms": 0.0, "max_cpu_ms": 0.0,
                                  "over_50ms_cpu": 0})
    wall, cpu = _timed(name, data)
    if cpu > QUIET_MS:
        reruns = [_timed(name, data) for _ in range(2)]
        cpu = min(cpu, *(run[1] for run in reruns))
        wall = min(wall, *(run[0] for run in reruns))
        if cpu > QUIET_MS:
            row["over_50ms_cpu"] += 1
        if cpu > SLOW_MS:
            _write()
            raise AssertionError(f"{name}: one input used {cpu:.1f} ms of CPU "
                                 f"(limit {SLOW_MS:.0f} ms instrumented)")
    row["inputs"] += 1
    row["max_wall_ms"] = max(row["max_wall_ms"], wall)
    row["max_cpu_ms"] = max(row["max_cpu_ms"], cpu)
    now = time.monotonic()
    if now - _last_write > 0.25:  # libFuzzer ends the process itself: keep the file current
        _last_write = now
        _write()


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
