"""The soak, CI-sized: three rounds (ambiguous as warm-up, outage, ambiguous) of the demo's
payments at 64 in flight through one client; every round's ledger is checked, and the heap,
sockets, file descriptors and tasks must not leak (tests/soak/_soak.py says how).

``EGRESS_SOAK_SECONDS=600`` makes it a ten-minute soak of 300 payments a round (as
``scripts/soak --minutes 10`` does, with a row printed per round)."""

from __future__ import annotations

import os
from dataclasses import asdict

import pytest
from _soak import check, run_soak

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
