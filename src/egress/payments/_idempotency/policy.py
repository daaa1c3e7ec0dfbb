"""The idempotency policy, pure: what to do with a logical operation given its stored record."""

from __future__ import annotations

from enum import Enum

from egress.errors import IdempotencyMismatch
from egress.payments._idempotency.record import DEFAULT_MAX_KEY_AGE, IdempotencyRecord, RecordState

__all__ = ["Step", "decide"]


class Step(Enum):
    """What to do with a logical operation, given its stored record."""

    SEND = "send"  # send (again) with the stored key
    RETURN = "return"  # it already succeeded: fetch the stored result
    SETTLE = "settle"  # too old to re-send blindly: ask the provider first
    RENEW = "renew"  # proven to have had no effect: a new key, then send


def decide(record: IdempotencyRecord, *, fingerprint: str, now: float,
           max_age: float = DEFAULT_MAX_KEY_AGE) -> Step:
    """The idempotency policy, pure.

    Raises :class:`IdempotencyMismatch` when the same reference arrives with a different
    request while the first one counts (pending, unknown or succeeded): nothing is sent. After a
    proven failure (a decline) the reference may be tried again with other parameters, under a
    new key.
    """
    if record.state is RecordState.FAILED:
        return Step.RENEW
    if record.fingerprint != fingerprint:
        raise IdempotencyMismatch(
            f"reference already used for a different {record.operation} request "
            f"(state {record.state.value}); nothing was sent"
        )
    if record.state is RecordState.SUCCEEDED:
        return Step.RETURN
    if record.age(now) > max_age:
        return Step.SETTLE
    return Step.SEND
