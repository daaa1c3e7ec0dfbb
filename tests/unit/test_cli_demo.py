"""The CLI runs end to end."""

from __future__ import annotations

import pytest

from egress.cli import main


def test_policy_demo_runs_and_accounts_for_every_call(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--calls", "200", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "succeeded" in out
    assert "wire attempts" in out
