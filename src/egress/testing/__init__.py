"""Test doubles, public and typed: deterministic time, event recording, fakes of every port."""

from __future__ import annotations

from egress._lazy import lazy_names

# Every name loads on first use: the pytest plugin (loaded by every pytest run of a project
# that installs egress) imports this package, and must not pull in asyncio, the payments stack,
# aiohttp (FakeStripe) or pytest fixtures before a test asks for them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from egress.testing._clock import FakeClock
    from egress.testing._sink import RecordingSink
    from egress.testing._state import isolated_state
    from egress.testing.fake_stripe import FakeStripe
    from egress.testing.payments import InMemoryPayments, PaymentFault, SyncInMemoryPayments
    from egress.testing.pytest_plugin import fake_stripe_fixture

__all__ = ["FakeClock", "FakeStripe", "InMemoryPayments", "PaymentFault", "RecordingSink",
           "SyncInMemoryPayments", "fake_stripe_fixture", "isolated_state"]

_LAZY = {
    "FakeClock": "egress.testing._clock",
    "FakeStripe": "egress.testing.fake_stripe",
    "InMemoryPayments": "egress.testing.payments",
    "PaymentFault": "egress.testing.payments",
    "RecordingSink": "egress.testing._sink",
    "SyncInMemoryPayments": "egress.testing.payments",
    "fake_stripe_fixture": "egress.testing.pytest_plugin",
    "isolated_state": "egress.testing._state",
}


__getattr__, __dir__ = lazy_names(globals(), _LAZY)
