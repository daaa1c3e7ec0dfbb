"""``egress demo --workers N``: worker processes sharing a limit, a budget and idempotency."""

from __future__ import annotations

import pytest

from egress.cli import main
from egress.demo import DemoOptions, run_demo
from egress.demo import _fleet as fleet_module
from egress.demo._fleet import FLEET_BURST, FLEET_RATE_LIMIT, FleetOptions

pytestmark = pytest.mark.slow


def test_workers_share_the_limit_and_the_ledger_holds(redis_url: str) -> None:
    report = run_demo(DemoOptions(payments=80, concurrency=8, chaos="ambiguous"),
                      fleet=FleetOptions(workers=2, redis_url=redis_url))
    assert report.invariant_ok, report.verdict
    assert report.ledger["double_charged_references"] == 0
    fleet = report.fleet
    assert fleet is not None and fleet["workers"] == 2
    assert fleet["submitted_twice"] == 8  # every tenth payment, by a second worker: one charge
    # What the shared GCRA allows on average over the run: the rate, plus the burst spread over
    # the span from the workers' release (no slot is reserved before it) to the last request.
    # A flat "rate * 1.1" failed once on a loaded machine: 80 payments make a short run, where
    # the burst alone lifts the mean. (The exact sharing proof is
    # tests/fleet/test_fleet_processes.py: 4 processes held to 50/s within 5 %.)
    span = fleet["busy_seconds"]
    allowed = (FLEET_RATE_LIMIT * span + FLEET_BURST + 1) / span
    assert 0 < fleet["aggregate_rate_mean"] <= allowed, (fleet, allowed)
    assert report.as_dict()["fleet"] == fleet


def test_no_redis_is_a_clear_message(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(fleet_module, "redis_server_binary", lambda: None)
    assert main(["demo", "--workers", "2", "--payments", "5"]) == 2
    assert "apt-get install redis-server" in capsys.readouterr().err


def test_an_unreachable_redis_is_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 on loopback: nothing listens there (connection refused at once).
    assert main(["demo", "--workers", "2", "--redis", "redis://127.0.0.1:1/0",
                 "--payments", "5"]) == 2
    assert "cannot reach the Redis" in capsys.readouterr().err
