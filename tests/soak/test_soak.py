"""The soak, CI-sized: three rounds (ambiguous as warm-up, outage, ambiguous) of the demo's
payments at 64 in flight through one client; every round's ledger is checked, and the heap,
sockets, file descriptors and tasks must not leak (tests/soak/_soak.py says how).

``EGRESS_SOAK_SECONDS=600`` makes it a ten-minute soak of 300 payments a round (as
``scripts/soak --minutes 10`` does, with a row printed per round)."""

from __future__ import annotations

import os
from dataclasses import asdict

import pytest
from _soak import Round, Sample, SoakReport, check, run_soak

LONG = os.environ.get("EGRESS_SOAK_SECONDS")


@pytest.mark.slow
@pytest.mark.timeout(120 + 2 * int(LONG or 0))
def test_soak_keeps_the_ledger_and_leaks_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    if LONG:
        report = run_soak(seconds=float(LONG), size=300, concurrency=64)
    else:
        report = run_soak(rounds=3, size=60, concurrency=64)
    with capsys.disabled():  # the numbers, for the record (pytest -s not needed)
        print()
        for r in report.rounds:
            print(f"soak round {r.index} {r.chaos}: {r.payments} payments in {r.seconds:.1f} s,"
                  f" {r.verdict}; {asdict(r.after)}")
        print(f"soak before: {report.before}; after close: {report.closed}")
    assert [r.chaos for r in report.rounds[:3]] == ["ambiguous", "outage", "ambiguous"]
    outage = report.rounds[1].outcomes
    assert outage.get("provider unavailable", 0) + outage.get("outcome unknown", 0) > 0, \
        "the outage round saw no outage"
    assert check(report, concurrency=64) == []


def test_check_flags_each_kind_of_leak() -> None:
    """The judge itself can fail: a report with each leak planted gets each one named."""
    def sample(heap: int = 0, sockets: int = 10, fds: int = 20, tasks: int = 0) -> Sample:
        return Sample(rss_kb=50_000, traced_kb=heap, fds=fds, sockets=sockets, threads=2,
                      tasks=tasks)

    def round_(index: int, after: Sample, ok: bool = True) -> Round:
        return Round(index, "ambiguous", 100, 1.0, (1.0, 0.0, 0.0), {"succeeded": 100}, 0, 0,
                     ok, "ledger OK" if ok else "ledger FAILED: 1 double-charged", after)

    clean = SoakReport(before=sample(sockets=2, fds=9), closed=sample(sockets=2, fds=9),
                       rounds=[round_(i, sample(heap=100 * min(i, 4))) for i in range(9)])
    assert check(clean) == []
    leaky = SoakReport(
        before=sample(sockets=2, fds=9), closed=sample(sockets=3, fds=12),
        rounds=[round_(0, sample()), round_(1, sample(heap=400)),
                round_(2, sample(heap=1400), ok=False), round_(3, sample(heap=2400, tasks=2)),
                round_(4, sample(heap=3400, sockets=200))]
        + [round_(i, sample(heap=1000 * i)) for i in range(5, 9)])
    problems = "\n".join(check(leaky))
    for planted in ("round 2 (ambiguous): ledger FAILED", "the heap grew", "no plateau",
                    "round 3: 2 tasks left", "round 4: 200 sockets", "1 sockets still open",
                    "3 file descriptors still open"):
        assert planted in problems
