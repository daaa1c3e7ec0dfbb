"""Test doubles, public and typed: deterministic time, event recording, fakes of every port."""

from egress.testing._clock import FakeClock
from egress.testing._sink import RecordingSink

__all__ = ["FakeClock", "RecordingSink"]
