"""Helpers for tests/reliability/test_payments_*.py.

Reuses the Stripe unit tests' recording wire (``tests/unit/_recording_wire.py``) and the issue 9
edge-status matrix (``tests/unit/test_stripe_settlement.py``) rather than copying them.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_UNIT = str(Path(__file__).resolve().parent.parent / "unit")
if _UNIT not in sys.path:
    sys.path.insert(0, _UNIT)

import test_stripe_settlement as _settlement  # noqa: E402
from _recording_wire import RecordingWire, header, record  # noqa: E402

from egress._clock import SYSTEM_CLOCK  # noqa: E402
from egress.testing import RecordingSink  # noqa: E402
from egress.testing.fake_stripe import FakeStripe  # noqa: E402

# Every 4xx and 5xx an edge (or Stripe) may answer (39 codes), from the issue 9 matrix.
EDGE_STATUSES: tuple[int, ...] = _settlement.STATUSES
# Its fixtures too: one FakeStripe per module, reset before each test (``server``, ``fake``), and
# Stripe's retry rules with next to no backoff (these scenarios test decisions, not waiting).
server, fake, FAST = _settlement.server, _settlement.fake, _settlement.FAST
__all__ = ["EDGE_STATUSES", "FAST", "RecordingWire", "ShiftedWall", "counts", "digest", "fake",
           "header", "live_charges", "record", "server"]


class ShiftedWall:
    """The system clock, with a wall time a test can move on (``offset``) to pass a window
    such as ``settle_after``; monotonic time, sleeps and timers stay real."""

    def __init__(self) -> None:
        self.offset = 0.0

    def wall(self) -> float:
        return SYSTEM_CLOCK.wall() + self.offset

    def __getattr__(self, name: str) -> Any:
        return getattr(SYSTEM_CLOCK, name)


def live_charges(fake: FakeStripe, reference: str) -> int:
    return sum(1 for c in fake.ledger.charges if c.reference == reference and c.live)


def digest(body: bytes | None) -> str:
    return hashlib.sha256(body or b"").hexdigest()


def counts(sink: RecordingSink) -> Counter[str]:
    """How many events of each kind the sink received (``kind`` names, as metrics count them)."""
    return Counter(sink.kinds())
