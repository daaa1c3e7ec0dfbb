"""The fault matrix (issue 17 §1): one end-to-end scenario per row item, on loopback servers.

Every scenario carries ``@pytest.mark.reliability(area=..., fault=..., expected=...)``;
``scripts/reliability-report`` runs this folder and writes ``docs/reliability.md`` from those
marks and the outcomes, and ``test_reliability_page.py`` fails when a marked scenario is missing
from the page.

The loopback helpers and the every-backend ``make`` fixture live with the integration tests
(``tests/integration/_loopback.py``, ``test_http_client.py``); this folder reuses them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_INTEGRATION = str(Path(__file__).resolve().parent.parent / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)

from egress.testing import fake_stripe_fixture  # noqa: E402, F401  (registers ``fake_stripe``)

#: The rows of issue 17 §1; a mark naming another area is a typo, refused at collection.
AREAS = ("Retries and deadlines", "Breaker, limiter, bulkhead", "Transport", "Security",
         "Payments", "Hostile servers")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability(area, fault, expected): a scenario of the fault matrix "
        "(issue 17), listed in docs/reliability.md")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        mark = item.get_closest_marker("reliability")
        if mark is None:
            continue
        missing = {"area", "fault", "expected"} - set(mark.kwargs)
        if missing or mark.kwargs["area"] not in AREAS:
            raise pytest.UsageError(f"{item.nodeid}: reliability mark needs area (one of "
                                    f"{AREAS}), fault and expected; got {mark.kwargs}")
