"""Test doubles, public and typed: deterministic time, event recording, fakes of every port."""

from typing import TYPE_CHECKING, Any

from egress.testing._clock import FakeClock
from egress.testing._sink import RecordingSink
from egress.testing._state import isolated_state
from egress.testing.payments import InMemoryPayments, PaymentFault

if TYPE_CHECKING:
    from egress.testing.fake_stripe import FakeStripe
    from egress.testing.pytest_plugin import fake_stripe_fixture

__all__ = ["FakeClock", "FakeStripe", "InMemoryPayments", "PaymentFault", "RecordingSink",
           "fake_stripe_fixture", "isolated_state"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the fake server pulls in aiohttp, the fixture pulls in pytest.
    if name == "FakeStripe":
        from egress.testing.fake_stripe import FakeStripe

        return FakeStripe
    if name == "fake_stripe_fixture":
        from egress.testing.pytest_plugin import fake_stripe_fixture

        return fake_stripe_fixture
    raise AttributeError(f"module 'egress.testing' has no attribute {name!r}")
