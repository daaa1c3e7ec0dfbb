"""`pip install egress` without extras: the demo (and both its modes) still runs.

httpx and the stripe SDK are blocked in a subprocess, as if not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_RUN = ("import sys; sys.modules['httpx'] = None; sys.modules['stripe'] = None; "
        "from egress.cli import main; "
        "sys.exit(main(['demo', '--payments', '30', '--chaos', 'flaky', '--json'] + sys.argv[1:]))")


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--no-resilience"]], ids=["resilient", "naive"])
def test_demo_runs_without_the_optional_packages(mode: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", _RUN, *mode], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["invariant_ok"] is True and sum(report["outcomes"].values()) == 30
