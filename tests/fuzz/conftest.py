"""Prints the fuzz tally (inputs tried and worst time per parser class) after the run."""

from __future__ import annotations

from typing import Any

from _fuzz import EXAMPLES, SLOW_MS, TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY:
        return
    write = terminalreporter.write_line
    write("")
    write(f"egress fuzz: {EXAMPLES} examples per property; every input under {SLOW_MS:.0f} ms "
          f"of CPU (worst wall time below)")
    write(f"{'parser class':<44} {'inputs':>8} {'worst ms':>9}")
    for name, (count, worst) in sorted(TALLY.items()):
        write(f"{name:<44} {int(count):>8} {worst:>9.2f}")
    write(f"{'total':<44} {int(sum(c for c, _ in TALLY.values())):>8}")
