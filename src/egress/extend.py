"""The extension API: what you need to write your own policy or clock.

Applications use the names in :mod:`egress`; code that extends egress uses these. A policy turns
an inner *step* into an outer one once, when the pipeline is built (``wrap_async`` and
``wrap_sync``); a step is called with the call's :class:`CallContext` and the operation. See
``docs/architecture.md``.

>>> from egress.extend import CallContext, Policy
"""

from egress._clock import SYSTEM_CLOCK, Clock, SystemClock, TimerHandle
from egress._pipeline import AsyncOp, AsyncStep, CallContext, Policy, SyncOp, SyncStep

__all__ = [
    "SYSTEM_CLOCK",
    "AsyncOp",
    "AsyncStep",
    "CallContext",
    "Clock",
    "Policy",
    "SyncOp",
    "SyncStep",
    "SystemClock",
    "TimerHandle",
]
