"""httpx 0.28.1's own client tests, unmodified, run through ResilientTransport.

The vendored tree (tests/third_party/httpx, BSD licence) runs in its own pytest process with its
own settings; its harness (tests/third_party/httpx/conftest.py) wraps transports and runs every
async test on asyncio and trio. ``all`` wraps every client's default transport *and* every
transport a test hands in, except in the 17 tests that inspect a mounted transport object itself
(a wrapper is not the object it wraps): those run with the default transports wrapped, and
fail, as strict xfails, when wrapped too.
The three tests marked ``network`` need the internet and are left out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HTTPX_TESTS = Path(__file__).resolve().parents[1] / "third_party" / "httpx"


def _run(*args: str) -> tuple[int, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTEST_", "HYPOTHESIS_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-m", "not network", *args],
        cwd=HTTPX_TESTS, env=env, capture_output=True, text=True, timeout=600, check=False)
    return done.returncode, done.stdout + done.stderr


def _counts(output: str) -> dict[str, int]:
    last = output.strip().splitlines()[-1]
    return {word: int(number) for number, word in re.findall(r"(\d+) (\w+)", last)}


@pytest.mark.slow
def test_httpx_client_suite_passes_with_every_transport_wrapped() -> None:
    code, output = _run("--egress-wrap=all", "tests/client")
    counts = _counts(output)
    assert code == 0, output[-6000:]
    assert set(counts) <= {"passed", "skipped", "deselected"}, output[-3000:]
    assert counts["passed"] >= 300  # 307 with httpx 0.28.1 on Python 3.11
    for backend in ("asyncio", "trio"):
        ran = len(re.findall(rf"^PASSED .*\[{backend}[\]-]", output, re.MULTILINE))
        assert ran >= 60, f"{backend}: only {ran} async tests passed"  # 67 in 0.28.1


@pytest.mark.slow
def test_the_one_difference_is_that_a_wrapper_is_not_the_object_it_wraps() -> None:
    code, output = _run("--egress-wrap=all", "--egress-identity-xfail",
                        "tests/client/test_proxies.py", "-k",
                        "test_transport_for_request or test_proxy_with_mounts")
    counts = _counts(output)
    assert code == 0, output[-6000:]
    assert counts.get("xfailed") == 17, output[-3000:]  # strict: each must fail
    assert set(counts) <= {"passed", "xfailed", "deselected"}, output[-3000:]
