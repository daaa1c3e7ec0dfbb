"""The default pipeline of an HTTP client, outermost first:

1. ``Bulkhead(max_connections, max_queue=10 × max_connections)``: private to the client; a flood of
   callers waits in a bounded queue (at most ``max_wait``, never past the deadline) or fails fast.
2. ``Retry(on=retry_on(retry_hook), budget=RetryBudget(name="http:<origin>"))``: three attempts,
   full-jitter backoff, server hints honoured; the budget is shared by every client of that origin.
3. ``CircuitBreaker("http:<origin>")``: one per origin, shared; counts 5xx, transport failures and
   timeouts, never 4xx.
4. the client's ``rate_limiter``, if any: one token per attempt.

The call's deadline (``deadline=`` per call, or the client's default) is set on the call context
by ``Pipeline.execute``; every layer reads it, and each attempt's wire timeouts are capped by it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from egress._pipeline import Pipeline, Policy
from egress.http._safety import retry_on
from egress.policies.breaker import CircuitBreaker
from egress.policies.budget import RetryBudget
from egress.policies.bulkhead import Bulkhead
from egress.policies.retry import Retry

if TYPE_CHECKING:
    from egress.http._core import ClientCore

__all__ = ["default_pipeline"]

QUEUE_FACTOR = 10


def default_pipeline(core: ClientCore) -> Pipeline:
    """The pipeline a client gets when it is given none."""
    origin = core.base.origin
    connections = core.wire_options.max_connections
    policies: list[Policy] = [
        Bulkhead(connections, max_queue=connections * QUEUE_FACTOR),
        Retry(on=retry_on(core.retry_hook), budget=RetryBudget(name=f"http:{origin}")),
        CircuitBreaker(f"http:{origin}", clock=core.clock, sink=core.sink),
    ]
    if core.rate_limiter is not None:
        policies.append(core.rate_limiter)
    return Pipeline(*policies, clock=core.clock, sink=core.sink)
